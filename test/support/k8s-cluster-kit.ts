/**
 * A real Kubernetes control plane for the kubernetes driver's tests: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler and kwok (simulated nodes and pods, so Deployments really
 * become Available), built by scripts/k8s-test-bins.sh and started here on loopback ports with generated
 * certificates and tokens. Stopped by PID. No mock API server anywhere.
 *
 * Pods get IPs from a loopback range (kwok `--cidr 127.x.y.0/24`), so a test can stand in for the
 * container runtime that kwok does not have: {@link servePods} answers HTTP on each running pod's IP and
 * port (see docs/kubernetes.md, "Testing").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Where scripts/k8s-test-bins.sh put the binaries (it prints the directory; a no-op once built). */
export function k8sBinDir(): string {
  const fromEnv = process.env['MERIDIAN_K8S_BIN'];
  if (fromEnv && existsSync(join(fromEnv, 'kube-apiserver'))) return fromEnv;
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'k8s-test-bins.sh')], {
    encoding: 'utf8',
    env: { ...process.env, MERIDIAN_K8S_CHECK_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return out.trim().split('\n').at(-1) ?? '';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** One running test cluster. */
export interface TestCluster {
  readonly name: string;
  readonly dir: string;
  readonly server: string;
  readonly caFile: string;
  /** A kubeconfig with the admin token (group system:masters). */
  readonly kubeconfig: string;
  /** Tokens: `admin` (system:masters), `limited` (no RBAC at all), `expired` (not accepted). */
  readonly tokens: { readonly admin: string; readonly limited: string };
  /** The loopback /24 pods get their IPs from. */
  readonly podCidr: string;
  /** kubectl against this cluster as admin; returns stdout. */
  kubectl(args: readonly string[], input?: string): string;
  /** A raw API request as admin. */
  api(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: unknown }>;
  /**
   * Watches a collection as admin (`GET path?watch=1&resourceVersion=…`): every change the API server
   * stores is delivered, in order, none skipped. Resolves once the watch is open; `stop()` ends it.
   */
  watch(path: string, onEvent: (e: { type: string; object: Record<string, unknown> }) => void): Promise<{ stop(): void }>;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a cluster (≈ 15–40 s on a loaded 2-core machine). `name` appears in its directory and node.
 * Call `stop()` in afterAll.
 */
export async function startTestCluster(name: string, opts: { bin?: string } = {}): Promise<TestCluster> {
  const bin = opts.bin ?? k8sBinDir();
  const dir = mkdtempSync(join(tmpdir(), `meridian-k8s-${name}-`));
  const procs: ChildProcess[] = [];
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const run = (cmd: string, args: string[]): ChildProcess => {
    const fd = openSync(join(logs, `${cmd}.log`), 'a');
    const p = spawn(join(bin, cmd), args, { stdio: ['ignore', fd, fd], cwd: dir });
    procs.push(p);
    return p;
  };
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) if (p.pid !== undefined && p.exitCode === null) p.kill('SIGTERM');
    const deadline = Date.now() + 10_000;
    while (procs.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < deadline) await sleep(50);
    for (const p of procs) if (p.pid !== undefined && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    if (!process.env['MERIDIAN_K8S_KEEP']) rmSync(dir, { recursive: true, force: true }); // MERIDIAN_K8S_KEEP=1 keeps logs and data
  };
  try {
    // certificates: a CA, the API server's serving certificate for 127.0.0.1, and the service-account key
    const ossl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
    ossl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=meridian-test-ca', '-days', '2', '-out', 'ca.crt']);
    ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key']);
    ossl(['req', '-new', '-key', 'server.key', '-subj', '/CN=kube-apiserver', '-out', 'server.csr']);
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    ossl([
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'san.ext',
      '-out',
      'server.crt',
    ]);
    ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key']);
    ossl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    const tok = (): string => execFileSync('openssl', ['rand', '-hex', '16'], { encoding: 'utf8' }).trim();
    const tokens = { admin: tok(), limited: tok() };
    writeFileSync(join(dir, 'tokens.csv'), `${tokens.admin},admin,1,"system:masters"\n${tokens.limited},limited,2,""\n`);

    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    run('etcd', [
      '--name=default',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const server = `https://127.0.0.1:${apiPort}`;
    run('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--tls-cert-file=${join(dir, 'server.crt')}`,
      `--tls-private-key-file=${join(dir, 'server.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=RBAC',
      // no node-lifecycle controller runs here to lift the not-ready taint this plugin puts on a new node
      '--disable-admission-plugins=TaintNodesByCondition',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      '--v=0',
    ]);
    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: ${name}, cluster: {server: "${server}", certificate-authority: "${join(dir, 'ca.crt')}"}}]`,
        `users: [{name: admin, user: {token: "${tokens.admin}"}}]`,
        `contexts: [{name: ${name}, context: {cluster: ${name}, user: admin}}]`,
        `current-context: ${name}`,
        '',
      ].join('\n'),
    );
    const ca = readFileSync(join(dir, 'ca.crt'));
    const api: TestCluster['api'] = async (method, path, body, contentType = 'application/json') => {
      const { request } = await import('node:https');
      return new Promise((resolve, reject) => {
        const req = request(
          `${server}${path}`,
          {
            method,
            ca,
            headers: { authorization: `Bearer ${tokens.admin}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
          },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => {
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // not JSON (readyz answers "ok")
              }
              resolve({ status: res.statusCode ?? 0, body: parsed });
            });
          },
        );
        req.on('error', reject);
        req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
        if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
        req.end();
      });
    };
    const watch: TestCluster['watch'] = async (path, onEvent) => {
      const list = (await api('GET', path)).body as { metadata?: { resourceVersion?: string } };
      const rv = list.metadata?.resourceVersion ?? '0';
      const { request } = await import('node:https');
      return new Promise((resolve, reject) => {
        const req = request(
          `${server}${path}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=false`,
          { method: 'GET', ca, headers: { authorization: `Bearer ${tokens.admin}` } },
          (res) => {
            if (res.statusCode !== 200) return reject(new Error(`watch ${path}: HTTP ${res.statusCode}`));
            let buf = '';
            res.on('data', (c: Buffer) => {
              buf += c.toString();
              for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                if (line.trim()) onEvent(JSON.parse(line) as { type: string; object: Record<string, unknown> });
              }
            });
            res.on('error', () => undefined);
            resolve({ stop: () => req.destroy() });
          },
        );
        req.on('error', (e) => reject(e));
        req.end();
      });
    };
    const deadline = Date.now() + 180_000;
    const waitFor = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
      for (;;) {
        if (await ok().catch(() => false)) return;
        const dead = procs.find((p) => p.exitCode !== null);
        if (dead) {
          const cmd = dead.spawnfile.split('/').at(-1) ?? dead.spawnfile;
          const tail = readFileSync(join(logs, `${cmd}.log`), 'utf8')
            .split('\n')
            .slice(-15)
            .join('\n');
          throw new Error(`${cmd} exited (${dead.exitCode}) while waiting for ${what}; its log ends:\n${tail}`);
        }
        if (Date.now() > deadline) throw new Error(`test cluster ${name}: timed out waiting for ${what}; see ${logs}`);
        await sleep(200);
      }
    };
    await waitFor('the API server', async () => (await api('GET', '/readyz')).status === 200);
    run('kube-controller-manager', [
      `--kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--secure-port=0',
      `--service-account-private-key-file=${join(dir, 'sa.key')}`,
      `--root-ca-file=${join(dir, 'ca.crt')}`,
      // only what Deployments, Services, namespaces and quotas need (fewer controllers, less CPU on a shared machine)
      '--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,endpointslice-controller,resourcequota-controller,root-ca-certificate-publisher-controller',
      '--concurrent-deployment-syncs=10',
      '--concurrent-replicaset-syncs=10',
    ]);
    run('kube-scheduler', [`--kubeconfig=${kubeconfig}`, '--leader-elect=false', '--secure-port=0']);
    const podCidr = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.0/24`;
    writeFileSync(join(dir, 'kwok.yaml'), readFileSync(join(ROOT, 'test', 'fixtures', 'k8s', 'kwok-stages.yaml')));
    run('kwok', [
      `--kubeconfig=${kubeconfig}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      `--cidr=${podCidr}`,
      '--node-ip=127.0.0.1',
      `--config=${join(dir, 'kwok.yaml')}`,
    ]);
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: `kwok-${name}`, annotations: { 'kwok.x-k8s.io/node': 'fake' }, labels: { type: 'kwok' } },
      // no NoSchedule taint (kwok's example node has one): the driver's pods carry no toleration, as in a real cluster
      status: { allocatable: { cpu: '32', memory: '256Gi', pods: '500' }, capacity: { cpu: '32', memory: '256Gi', pods: '500' } },
    };
    await waitFor('the node', async () => [200, 201, 409].includes((await api('POST', '/api/v1/nodes', node)).status));
    await waitFor('the node to be Ready', async () => {
      const r = (await api('GET', `/api/v1/nodes/kwok-${name}`)).body as { status?: { conditions?: { type: string; status: string }[] } };
      return r.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    });
    await waitFor(
      'the default service account',
      async () => (await api('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
    );
    const kubectl = (args: readonly string[], input?: string): string =>
      execFileSync(join(bin, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], {
        encoding: 'utf8',
        input,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    return { name, dir, server, caFile: join(dir, 'ca.crt'), kubeconfig, tokens, podCidr, kubectl, api, watch, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Creates a namespace (and waits for its default service account, which pods need). */
export async function createNamespace(c: TestCluster, ns: string): Promise<void> {
  const r = await c.api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  if (r.status !== 201 && r.status !== 409) throw new Error(`cannot create namespace ${ns}: ${JSON.stringify(r.body)}`);
  for (let i = 0; i < 600; i++) {
    if ((await c.api('GET', `/api/v1/namespaces/${ns}/serviceaccounts/default`)).status === 200) return;
    await sleep(100);
  }
  throw new Error(`namespace ${ns} got no default service account`);
}

/**
 * Stands in for the container runtime kwok does not have: every running pod of the cluster answers HTTP
 * on its pod IP and container port with `{service, version, track, pod}` from its own environment
 * (MERIDIAN_SERVICE, MERIDIAN_VERSION, MERIDIAN_TRACK), and `/healthz` with 200. Polls the pods list.
 */
export function servePods(
  c: TestCluster,
  opts: { intervalMs?: number } = {},
): { serving(host: string, port: number, timeoutMs?: number): Promise<void>; stop(): Promise<void> } {
  const servers = new Map<string, Server>();
  const listening = new Set<string>(); // host:port of the pods answering now
  let stopped = false;
  type Pod = {
    metadata: { uid: string; name: string; deletionTimestamp?: string };
    spec: { containers: { ports?: { containerPort: number }[]; env?: { name: string; value?: string }[] }[] };
    status: { podIP?: string; phase?: string };
  };
  const tick = async (): Promise<void> => {
    const r = await c.api('GET', '/api/v1/pods');
    const pods = ((r.body as { items?: Pod[] }).items ?? []).filter(
      (p) => p.status.podIP && p.status.phase === 'Running' && !p.metadata.deletionTimestamp,
    );
    const live = new Set(pods.map((p) => p.metadata.uid));
    for (const [uid, s] of servers) {
      if (!live.has(uid)) {
        const a = s.address();
        if (a && typeof a === 'object') listening.delete(`${a.address}:${a.port}`);
        s.close();
        servers.delete(uid);
      }
    }
    for (const p of pods) {
      if (servers.has(p.metadata.uid)) continue;
      const ct = p.spec.containers[0];
      const port = ct?.ports?.[0]?.containerPort;
      if (port === undefined) continue;
      const env = Object.fromEntries((ct?.env ?? []).map((e) => [e.name, e.value ?? '']));
      const s = createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            service: env['MERIDIAN_SERVICE'],
            version: env['MERIDIAN_VERSION'],
            track: env['MERIDIAN_TRACK'],
            pod: p.metadata.name,
          }),
        );
      });
      servers.set(p.metadata.uid, s);
      s.on('error', () => servers.delete(p.metadata.uid));
      const ip = p.status.podIP as string;
      s.listen(port, ip, () => listening.add(`${ip}:${port}`));
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await tick().catch(() => undefined);
      await sleep(opts.intervalMs ?? 100);
    }
  })();
  return {
    // kwok marks a pod ready at once; the stand-in runtime starts its server on the next poll
    serving: async (host, port, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!listening.has(`${host}:${port}`)) {
        if (Date.now() > deadline) throw new Error(`no pod of cluster ${c.name} serves ${host}:${port}`);
        await sleep(20);
      }
    },
    stop: async () => {
      stopped = true;
      listening.clear();
      await loop;
      for (const s of servers.values()) s.close();
      servers.clear();
    },
  };
}

/** Where scripts/k8s-gateway-crds.sh put the Gateway API CRDs (it prints the directory; a no-op once fetched). */
export function gatewayCrdDir(): string {
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'k8s-gateway-crds.sh')], {
    encoding: 'utf8',
    env: { ...process.env, MERIDIAN_K8S_CHECK_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return out.trim().split('\n').at(-1) ?? '';
}

/**
 * Installs the Gateway API CRDs (standard channel, from scripts/k8s-gateway-crds.sh) into the cluster by
 * server-side apply and waits until the API server serves them. No Gateway controller runs: Gateways stay
 * unaccepted and routes carry no status, but the objects are stored and validated by the real CRD schemas.
 */
export async function installGatewayApi(c: TestCluster): Promise<void> {
  c.kubectl(['apply', '--server-side', '-f', gatewayCrdDir()]);
  c.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/httproutes.gateway.networking.k8s.io',
    'crd/gateways.gateway.networking.k8s.io',
  ]);
  for (let i = 0; i < 300; i++) {
    if ((await c.api('GET', '/apis/gateway.networking.k8s.io/v1')).status === 200) return;
    await sleep(100);
  }
  throw new Error(`cluster ${c.name}: the Gateway API is not served after installing its CRDs`);
}
