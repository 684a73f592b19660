/**
 * `meridian rollout` (a child process, from source) over a fleet of three Kubernetes clusters in three
 * regions and one local cluster, through waves with canary steps: a good release is promoted everywhere;
 * a release whose canary pods never become ready (a kwok stage) is rolled back and every object read
 * back equals the known-good one; a driver SIGKILLed in the middle of applying to a cluster is finished
 * by `meridian rollout --resume`.
 *
 * The three Kubernetes clusters are three namespaces of ONE real control plane (etcd, kube-apiserver,
 * controller-manager, scheduler, kwok: test/k8s-cluster-kit.ts), each reached through its own target
 * section, to keep the suite's time and the shared machine's load small; the driver treats them as
 * separate clusters (own namespace, own ApplySet, own status). The local cluster runs real processes
 * (test/fixtures/local-services/echo.mjs) behind the real control API, as `meridian up` serves them; its
 * router is the rollout kit's stand-in that records canary weights.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { render, type Revision } from '../src/render/render.js';
import { loadFleet } from '../src/spec/load.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { KubernetesTarget } from '../src/targets/kubernetes/kubernetes-target.js';
import { type ControlApi, startControlApi } from '../src/targets/local/control-api.js';
import { LocalTarget } from '../src/targets/local/local-target.js';
import { isHealthyAt, waitForStatus } from '../src/targets/target.js';
import { FIXTURE_DIR } from './fixtures/local-services/cluster.js';
import { createNamespace, installGatewayApi, servePods, startTestCluster, type TestCluster } from './support/k8s-cluster-kit.js';
import { eventLog, FakeRouter, type Fleet, meridian } from './support/rollout-fleet-kit.js';

vi.setConfig({ testTimeout: 240_000 });

const K8S = { 'k8s-eu': 'eu-west', 'k8s-us': 'us-east', 'k8s-ap': 'ap-south' } as const;
const FAST = ['--poll', '50ms', '--health-timeout', '20s', '--healthy-checks', '1'];

let kc: TestCluster;
let pods: ReturnType<typeof servePods>;
let local: LocalTarget;
let api: ControlApi;
let work: string;

function fleetYaml(version: string, extraEnv = ''): string {
  const clusters = Object.entries(K8S)
    .map(
      ([name, region]) =>
        `  ${name}:\n    region: ${region}\n    driver: kubernetes\n    labels: { tier: ${name === 'k8s-eu' ? 'canary' : 'main'} }\n` +
        // k8s-eu splits its canary by HTTPRoute weights on a Gateway; the others by replica ratio
        `    target: { kubeconfig: '${kc.kubeconfig}', namespace: ${name}${name === 'k8s-eu' ? ', gateway: { name: public, namespace: gateways }' : ''} }\n    capacity: { rps: 100 }`,
    )
    .join('\n');
  return `apiVersion: meridian/v1
fleet: mixed
regions:
  eu-west: { jurisdiction: EU, location: { lat: 53.35, lon: -6.26 }, countries: [IE] }
  us-east: { jurisdiction: US, location: { lat: 38.9, lon: -77.04 }, countries: [US] }
  ap-south: { jurisdiction: APAC, location: { lat: 19.08, lon: 72.88 }, countries: [IN] }
clusters:
${clusters}
  local-eu: { region: eu-west, driver: local, labels: { tier: main }, capacity: { rps: 100 } }
services:
  web:
    image: example.test/echo:${version}@sha256:${'0'.repeat(64)}
    version: ${version}
    port: 8080
    replicas: 2
    health: { path: /healthz }
    resources: { cpu: 50m, memory: 32Mi }
    env: { LOG_LEVEL: info${extraEnv} }
    config: { GREETING: hello }
    local: { command: [node, echo.mjs] }
rollout:
  waves:
    - name: canary
      clusters: { labels: { tier: canary } }
      steps: [{ weight: 50, pause: 50ms }, { weight: 100, pause: 50ms }]
    - name: rest
      maxParallel: 2
      steps: [{ weight: 100, pause: 50ms }]
  analysis: { interval: 50ms }
  onFailure: rollback-wave
policies:
  rules: [digest-pinned]
`;
}

/** A work directory with the fleet at `version`, its state store recording `running` as what runs, and up.json. */
async function workDir(name: string, running: Revision, version: string, extraEnv = ''): Promise<Fleet> {
  const dir = join(work, name);
  mkdirSync(join(dir, 'fleet'), { recursive: true });
  mkdirSync(join(dir, '.meridian'), { recursive: true });
  writeFileSync(join(dir, 'fleet', 'fleet.yaml'), fleetYaml(version, extraEnv));
  const state = join(dir, '.meridian', 'state.db');
  const store = await openSqliteStore(state);
  await store.putRevision(running, { id: 'up' });
  for (const [c, s] of Object.entries(running.clusters)) await store.recordClusterState(c, running.id, s, 'running', { id: 'up' });
  await store.close();
  writeFileSync(
    join(dir, '.meridian', 'up.json'),
    JSON.stringify({
      pid: process.pid,
      fleet: 'mixed',
      revision: running.id,
      router: '-',
      admin: '-',
      control: api.url,
      token,
      startedAt: '-',
    }),
  );
  // the fleet kit's shape; the driver and router fields are not used here
  return { dir, driver: undefined as never, router: undefined as never, api, v1: running, state };
}

let token: string;

/** Renders the fleet at `version` (in a scratch directory). */
function revisionAt(version: string, extraEnv = ''): Revision {
  const dir = mkdtempSync(join(work, 'render-'));
  writeFileSync(join(dir, 'fleet.yaml'), fleetYaml(version, extraEnv));
  return render(loadFleet(dir)).revision;
}

/** What Meridian owns in a cluster's namespace, without what the API server writes (status, uids, times). */
function objects(ns: string): unknown {
  const list = JSON.parse(
    kc.kubectl(['get', 'deploy,svc,cm,httproutes', '-n', ns, '-l', 'app.kubernetes.io/managed-by=meridian', '-o', 'json']),
  ) as {
    items: {
      kind: string;
      metadata: { name: string; labels?: unknown; annotations?: Record<string, string> };
      spec?: unknown;
      data?: unknown;
    }[];
  };
  return list.items
    .map((o) => {
      const annotations = { ...o.metadata.annotations };
      delete annotations['deployment.kubernetes.io/revision'];
      return { kind: o.kind, name: o.metadata.name, labels: o.metadata.labels, annotations, spec: o.spec ?? null, data: o.data ?? null };
    })
    .sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
}

function images(): Record<string, string> {
  return Object.fromEntries(
    Object.keys(K8S).map((ns) => [
      ns,
      kc.kubectl(['get', 'deploy', '-n', ns, '-o', 'jsonpath={.items[*].spec.template.spec.containers[0].image}']),
    ]),
  );
}

async function localVersion(): Promise<string[]> {
  const s = await local.status('local-eu');
  return Object.values(s.services['web'] ?? {}).map((t) => `${t.track}:${t.version}`);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'meridian-rollout-k8s-'));
  kc = await startTestCluster('rollout');
  pods = servePods(kc);
  for (const ns of Object.keys(K8S)) await createNamespace(kc, ns);
  // the Gateway API (standard-channel CRDs from scripts/k8s-gateway-crds.sh) and the Gateway k8s-eu names;
  // no Gateway controller runs here, so the Gateway stays unaccepted: what is tested is the HTTPRoute Meridian owns
  await installGatewayApi(kc);
  await createNamespace(kc, 'gateways');
  kc.kubectl(
    ['apply', '--server-side', '-f', '-'],
    [
      'apiVersion: gateway.networking.k8s.io/v1',
      'kind: GatewayClass',
      'metadata: { name: test }',
      'spec: { controllerName: example.test/none }',
      '---',
      'apiVersion: gateway.networking.k8s.io/v1',
      'kind: Gateway',
      'metadata: { name: public, namespace: gateways }',
      'spec:',
      '  gatewayClassName: test',
      '  listeners: [{ name: http, protocol: HTTP, port: 80, allowedRoutes: { namespaces: { from: All } } }]',
      '',
    ].join('\n'),
  );
  local = new LocalTarget({ fleetDir: FIXTURE_DIR, graceMs: 1000, health: { intervalMs: 100, startupIntervalMs: 50, timeoutMs: 1000 } });
  token = randomBytes(16).toString('hex');
  api = await startControlApi({ target: local, router: new FakeRouter(), token });
  // what runs before the tests: 1.0.0 everywhere, applied by the drivers themselves
  const v1 = revisionAt('1.0.0');
  const k8s = new KubernetesTarget({ fleetDir: work });
  try {
    for (const [cluster, state] of Object.entries(v1.clusters)) {
      const t = state.driver === 'kubernetes' ? k8s : local;
      await t.apply({ cluster, revisionId: v1.id, state, track: 'stable' });
      await waitForStatus(t, cluster, (s) => isHealthyAt(s, 'web', 'stable', v1.id), { timeoutMs: 60_000 });
    }
  } finally {
    await k8s.close();
  }
}, 300_000);

afterAll(async () => {
  await api?.close();
  await local?.close();
  await pods?.stop();
  await kc?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('a rollout over three kubernetes clusters and a local one', () => {
  let good: Revision;

  it('goes through its waves with canary steps and promotes the release on every cluster', async () => {
    const v1 = revisionAt('1.0.0');
    const f = await workDir('promote', v1, '1.1.0');
    const plan = await meridian(f, ['plan', 'fleet']).done;
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toContain('k8s-eu (namespace k8s-eu; canary by HTTPRoute weights)');
    expect(plan.out).toContain('k8s-us (namespace k8s-us; canary by replica ratio (no Gateway))');
    // every write to k8s-eu's HTTPRoutes, in order (a watch misses none), and the canary's size there
    const weights: number[][] = [];
    const routes = await kc.watch('/apis/gateway.networking.k8s.io/v1/namespaces/k8s-eu/httproutes', (e) => {
      const spec = e.object['spec'] as { rules: { backendRefs: { name: string; weight: number }[] }[] };
      weights.push(spec.rules[0]?.backendRefs.map((b) => b.weight) ?? []);
    });
    const canaryReplicas = new Set<number>();
    const deployments = await kc.watch('/apis/apps/v1/namespaces/k8s-eu/deployments', (e) => {
      const d = e.object as { metadata: { name: string }; spec: { replicas: number } };
      if (d.metadata.name === 'web-canary') canaryReplicas.add(d.spec.replicas);
    });
    const run = await meridian(f, ['rollout', 'fleet', '-o', 'jsonl', ...FAST]).done;
    routes.stop();
    deployments.stop();
    if (run.code !== 0) throw new Error(`exit ${run.code}: ${run.err}\n${run.out}`);
    // the canary wave's steps set the route's weights by server-side apply (stable, canary): 50/50, 0/100, then back to stable only
    expect(weights).toEqual([[50, 50], [0, 100], [100]]);
    expect(canaryReplicas).toEqual(new Set([2])); // with a Gateway the canary runs at full size; weights move traffic, not replicas
    const route = JSON.parse(kc.kubectl(['get', 'httproute', 'web', '-n', 'k8s-eu', '-o', 'json', '--show-managed-fields'])) as {
      metadata: { managedFields: { manager: string; operation: string }[] };
      spec: { parentRefs: unknown[]; rules: { backendRefs: unknown[] }[] };
    };
    expect(route.metadata.managedFields.map((m) => `${m.manager}:${m.operation}`)).toEqual(['meridian:Apply']);
    expect(route.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'public', namespace: 'gateways' }]);
    expect(route.spec.rules[0]?.backendRefs).toEqual([{ group: '', kind: 'Service', name: 'web-stable', port: 8080, weight: 100 }]);
    for (const ns of ['k8s-us', 'k8s-ap']) expect(kc.kubectl(['get', 'httproutes', '-n', ns, '-o', 'name'])).toBe(''); // replica-ratio clusters
    const events = (await eventLog(f)).map((e) => e.type);
    expect(events.at(-1)).toBe('promoted');
    expect(events.filter((e) => e === 'weight-set').length).toBeGreaterThanOrEqual(3); // 50 % and 100 % on the canary wave, then the rest
    const lines = run.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toMatchObject({ type: 'rollout.result', outcome: 'promoted', exitCode: 0 });
    expect(images()).toEqual(Object.fromEntries(Object.keys(K8S).map((c) => [c, `example.test/echo:1.1.0@sha256:${'0'.repeat(64)}`])));
    expect(await localVersion()).toEqual(['stable:1.1.0']);
    for (const ns of Object.keys(K8S)) expect(kc.kubectl(['get', 'deploy', '-n', ns, '-o', 'name'])).toBe('deployment.apps/web\n'); // no canary left
    good = revisionAt('1.1.0');
  });

  it('rolls back a canary whose pods never become ready; every object reads back equal to the known-good one', async () => {
    expect(good, 'runs after the promotion').toBeDefined();
    const before = Object.fromEntries(Object.keys(K8S).map((ns) => [ns, objects(ns)]));
    const f = await workDir('bad-canary', good, '1.2.0', ', FAULT_HEALTH: fail');
    const run = await meridian(f, ['rollout', 'fleet', ...FAST, '--health-timeout', '8s']).done;
    expect(run.code, run.err).toBe(4);
    // the canary's pods were there and never ready (kwok's pod-unready stage), and are gone now
    expect(run.err).toMatch(/the canary did not become healthy: .*k8s-eu\/web \(canary\) runs \S+, 0\/\d ready/);
    expect(run.err).toContain(`k8s-eu back on ${good.id} → rolled-back`);
    const after = Object.fromEntries(Object.keys(K8S).map((ns) => [ns, objects(ns)]));
    expect(after).toEqual(before);
    expect(images()['k8s-eu']).toBe(`example.test/echo:1.1.0@sha256:${'0'.repeat(64)}`);
    expect(await localVersion()).toEqual(['stable:1.1.0']);
    const store = await openSqliteStore(f.state);
    const states = await store.clusterStates();
    await store.close();
    expect(Object.fromEntries(Object.entries(states).map(([c, s]) => [c, s.revisionId]))).toEqual(
      Object.fromEntries(Object.keys(good.clusters).map((c) => [c, good.id])),
    );
  });

  it('finishes with --resume after the driver is SIGKILLed in the middle of applying to a cluster', async () => {
    expect(good, 'runs after the promotion').toBeDefined();
    const f = await workDir('killed', good, '1.3.0');
    const child = meridian(f, ['rollout', 'fleet', ...FAST]);
    // kill it as soon as the canary's first object is in the API server, before the canary is ready
    let seen = '';
    for (let i = 0; i < 2000 && !seen; i++) {
      const r = await kc.api('GET', '/apis/apps/v1/namespaces/k8s-eu/deployments/web-canary');
      if (r.status === 200) seen = 'deployment';
      else if ((await kc.api('GET', '/api/v1/namespaces/k8s-eu/configmaps/web-canary-config')).status === 200) seen = 'configmap';
      else await new Promise((res) => setTimeout(res, 10));
    }
    process.kill(child.pid, 'SIGKILL');
    const killed = await child.done;
    expect(seen, killed.err).not.toBe('');
    expect(killed.signal).toBe('SIGKILL');
    expect((await eventLog(f)).map((e) => e.type)).not.toContain('promoted');

    const resumed = await meridian(f, ['rollout', '--resume', ...FAST]).done;
    expect(resumed.code, resumed.err).toBe(0);
    expect((await eventLog(f)).map((e) => e.type).at(-1)).toBe('promoted');
    expect(images()).toEqual(Object.fromEntries(Object.keys(K8S).map((c) => [c, `example.test/echo:1.3.0@sha256:${'0'.repeat(64)}`])));
    expect(await localVersion()).toEqual(['stable:1.3.0']);
  });
});

describe('a token whose RBAC cannot create Deployments', () => {
  it('fails the rollout with an error naming the cluster and the verb', async () => {
    expect(readFileSync(kc.kubeconfig, 'utf8')).toContain('token');
    await createNamespace(kc, 'k8s-locked');
    kc.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'no-create', namespace: 'k8s-locked' },
        rules: [
          { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['get', 'list', 'watch', 'create', 'patch'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch', 'patch'] },
        ],
      }),
    );
    kc.kubectl(['create', 'rolebinding', 'no-create', '-n', 'k8s-locked', '--role=no-create', '--user=limited']);
    const dir = join(work, 'locked');
    mkdirSync(join(dir, 'fleet'), { recursive: true });
    const yaml = `apiVersion: meridian/v1
fleet: locked
regions:
  us-east: { jurisdiction: US, location: { lat: 38.9, lon: -77.04 }, countries: [US] }
clusters:
  k8s-locked:
    region: us-east
    driver: kubernetes
    target: { server: '${kc.server}', caFile: '${kc.caFile}', token: { ref: 'env:LOCKED_TOKEN' }, namespace: k8s-locked }
    capacity: { rps: 100 }
services:
  web: { image: 'example.test/echo:1.0.0@sha256:${'0'.repeat(64)}', version: 1.0.0, port: 8080, resources: { cpu: 50m, memory: 32Mi } }
rollout:
  waves: [{ name: all }]
policies:
  rules: [digest-pinned]
`;
    writeFileSync(join(dir, 'fleet', 'fleet.yaml'), yaml);
    const f = { dir } as Fleet;
    const run = await meridian(f, ['rollout', 'fleet', ...FAST], { LOCKED_TOKEN: kc.tokens.limited }).done;
    expect(run.code, run.err).not.toBe(0);
    // the rollout's event names the cluster, the verb and the resource RBAC refused
    expect(run.err).toMatch(
      /effect-failed → rolling back \["k8s-locked"\]: cluster k8s-locked: RBAC forbids Meridian to create deployments\.apps \(apply Deployment k8s-locked\/web-canary\)/,
    );
    expect(run.err).not.toMatch(/^\s+at /m); // no stack trace
  });
});

describe('a canary that a ResourceQuota of its namespace cannot hold', () => {
  it('fails the wave with an error naming the cluster, the quota and the fix, says nothing of it was applied, and rolls back', async () => {
    await createNamespace(kc, 'k8s-quota');
    kc.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ResourceQuota',
        metadata: { name: 'tight', namespace: 'k8s-quota' },
        spec: { hard: { pods: '2' } },
      }),
    );
    const dir = join(work, 'quota');
    mkdirSync(join(dir, 'fleet'), { recursive: true });
    mkdirSync(join(dir, '.meridian'), { recursive: true });
    const yaml = (version: string): string => `apiVersion: meridian/v1
fleet: quota
regions:
  us-east: { jurisdiction: US, location: { lat: 38.9, lon: -77.04 }, countries: [US] }
clusters:
  k8s-quota:
    region: us-east
    driver: kubernetes
    target: { kubeconfig: '${kc.kubeconfig}', namespace: k8s-quota }
    capacity: { rps: 100 }
services:
  web: { image: 'example.test/echo:${version}@sha256:${'0'.repeat(64)}', version: ${version}, port: 8080, replicas: 2, resources: { cpu: 50m, memory: 32Mi } }
rollout:
  waves: [{ name: all, steps: [{ weight: 50, pause: 50ms }] }]
  onFailure: rollback-wave
policies:
  rules: [digest-pinned]
`;
    // 1.0.0 runs with 2 pods: the quota is full
    writeFileSync(join(dir, 'fleet', 'fleet.yaml'), yaml('1.0.0'));
    const v1 = render(loadFleet(join(dir, 'fleet'))).revision;
    const k8s = new KubernetesTarget({ fleetDir: dir });
    const state = v1.clusters['k8s-quota'];
    if (!state) throw new Error('the fleet has k8s-quota');
    await k8s.apply({ cluster: 'k8s-quota', revisionId: v1.id, state, track: 'stable' });
    await waitForStatus(k8s, 'k8s-quota', (s) => isHealthyAt(s, 'web', 'stable', v1.id), { timeoutMs: 60_000 });
    await k8s.close();
    const store = await openSqliteStore(join(dir, '.meridian', 'state.db'));
    await store.putRevision(v1, { id: 'up' });
    await store.recordClusterState('k8s-quota', v1.id, state, 'running', { id: 'up' });
    await store.close();
    const before = objects('k8s-quota');

    writeFileSync(join(dir, 'fleet', 'fleet.yaml'), yaml('1.1.0'));
    const run = await meridian({ dir } as Fleet, ['rollout', 'fleet', ...FAST]).done;
    expect(run.code, run.err).not.toBe(0);
    expect(run.err).toMatch(
      /effect-failed → rolling back \["k8s-quota"\]: cluster k8s-quota: the canary track of web would exceed the quota of namespace k8s-quota: ResourceQuota "tight" allows pods: 2, 2 in use, this needs 1 more; nothing of it was applied/,
    );
    expect(run.err).toMatch(/k8s-quota back on \S+ → rolled-back/);
    expect(run.err).not.toMatch(/^\s+at /m); // no stack trace
    expect(objects('k8s-quota')).toEqual(before); // the cluster is as it was: no canary object left behind
  });
});
