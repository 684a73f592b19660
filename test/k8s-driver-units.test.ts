/** The kubernetes driver's pure parts: kstatus pinned to the applied generation, manifests, error mapping. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { KubernetesObjectApi } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { kubeConfigFor } from '../src/targets/kubernetes/connection.js';
import { deploymentState } from '../src/targets/kubernetes/kstatus.js';
import { conflictManagers, kubeError } from '../src/targets/kubernetes/kube-errors.js';
import { applySetId, foreignOwner, LABEL, specHash, trackObjects, type ManifestContext } from '../src/targets/kubernetes/manifests.js';
import { echoService, renderedCluster } from './fixtures/local-services/cluster.js';
import { tempDir } from './support/export-kit.js';

const done = {
  metadata: { generation: 3 },
  spec: { replicas: 2, progressDeadlineSeconds: 600 },
  status: {
    observedGeneration: 3,
    replicas: 2,
    updatedReplicas: 2,
    readyReplicas: 2,
    availableReplicas: 2,
    conditions: [
      { type: 'Available', status: 'True' },
      { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
    ],
  },
};

describe('kstatus, pinned to the generation Meridian applied', () => {
  it('is current only when the controller has observed the applied generation and every replica is updated and available', () => {
    expect(deploymentState(done, 3).state).toBe('current');
    // the status was written for generation 3, but Meridian's apply produced 4: stale, whatever it says
    expect(deploymentState(done, 4)).toMatchObject({ state: 'in-progress', reason: expect.stringContaining('generation 4') as string });
    expect(deploymentState({ ...done, metadata: { generation: 4 } }, 0).state).toBe('in-progress');
    expect(deploymentState({ ...done, status: { ...done.status, updatedReplicas: 1 } }, 3).reason).toMatch(/1 of 2 replicas updated/);
    expect(deploymentState({ ...done, status: { ...done.status, replicas: 3 } }, 3).reason).toMatch(/old replicas/);
    expect(deploymentState({ ...done, status: { ...done.status, availableReplicas: 1 } }, 3).reason).toMatch(/available/);
  });
  it('fails when the progress deadline is exceeded', () => {
    const stuck = {
      ...done,
      status: {
        ...done.status,
        conditions: [
          {
            type: 'Progressing',
            status: 'False',
            reason: 'ProgressDeadlineExceeded',
            message: 'ReplicaSet "web-1" has timed out progressing.',
          },
        ],
      },
    };
    expect(deploymentState(stuck, 3)).toMatchObject({ state: 'failed', reason: expect.stringContaining('timed out') as string });
  });
});

describe('manifests', () => {
  const ctx: ManifestContext = { cluster: 'eu-1', namespace: 'shop', applySetId: applySetId('meridian-eu-1', 'shop'), gateway: null };
  const state = renderedCluster({
    web: echoService({
      version: '1.2.3+b1',
      replicas: 3,
      env: { LOG: 'debug' },
      config: { A: '1' },
      secrets: { DB: { ref: 'k8s:shop/db#password' } },
    }),
  });

  it('labels every object, references Secrets without copying values, and hashes the spec so a relabel restarts nothing', () => {
    const objs = trackObjects(ctx, state, 'web', 'stable', 'rev-a');
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['ConfigMap/web-config', 'Deployment/web', 'Service/web']);
    const dep = objs[1];
    expect(dep?.metadata.labels).toMatchObject({
      [LABEL.name]: 'web',
      [LABEL.version]: '1.2.3_b1',
      [LABEL.track]: 'stable',
      [LABEL.revision]: 'rev-a',
      [LABEL.partOf]: ctx.applySetId,
      'app.kubernetes.io/managed-by': 'meridian',
    });
    const text = JSON.stringify(dep);
    expect(text).toContain('"secretKeyRef":{"name":"db","key":"password"}');
    const relabelled = trackObjects(ctx, state, 'web', 'stable', 'rev-b')[1];
    expect(JSON.stringify((relabelled?.['spec'] as { template: unknown }).template)).toBe(
      JSON.stringify((dep?.['spec'] as { template: unknown }).template),
    );
    expect(specHash(state.services['web'] ?? echoService({ version: 'x' }), 'stable')).not.toBe(
      specHash(state.services['web'] ?? echoService({ version: 'x' }), 'canary'),
    );
    expect(ctx.applySetId).toMatch(/^applyset-[A-Za-z0-9_-]{43}-v1$/);
  });

  it('refuses a secret that is not in the cluster, with a hint', () => {
    const bad = renderedCluster({ web: echoService({ version: '1', secrets: { DB: { ref: 'vault:kv/db#pw' } } }) });
    expect(() => trackObjects(ctx, bad, 'web', 'stable', 'r')).toThrow(
      expect.objectContaining({ code: 'MERIDIAN_E_TARGET_SECRET_PROVIDER' }) as Error,
    );
  });

  it('never claims an object another tool owns', () => {
    expect(foreignOwner({ metadata: { annotations: { 'argocd.argoproj.io/tracking-id': 'app:apps/Deployment:shop/web' } } })).toBe(
      'Argo CD',
    );
    expect(foreignOwner({ metadata: { labels: { 'kustomize.toolkit.fluxcd.io/name': 'apps' } } })).toBe('Flux');
    expect(foreignOwner({ metadata: { labels: { 'app.kubernetes.io/managed-by': 'meridian' } } })).toBeNull();
  });
});

describe('errors from the API', () => {
  it('names the cluster, the verb and the other field manager, each with a fix', () => {
    const forbidden = kubeError('eu-1', 'apply Deployment shop/web', 'patch', {
      code: 403,
      body: {
        message:
          'deployments.apps "web" is forbidden: User "limited" cannot patch resource "deployments" in API group "apps" in the namespace "shop"',
      },
    });
    expect(forbidden).toMatchObject({ code: 'MERIDIAN_E_TARGET_K8S_FORBIDDEN' });
    expect(forbidden.message).toMatch(/cluster eu-1: RBAC forbids Meridian to patch/);
    const conflict = kubeError('eu-1', 'apply Deployment shop/web', 'patch', {
      code: 409,
      body: { message: 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas' },
    });
    expect(conflict.message).toMatch(/owned by "kubectl-edit"/);
    expect(conflict.hint).toMatch(/--force-conflicts/);
    expect(conflictManagers('conflicts with "a" … conflict with "b"')).toEqual(['a', 'b']);
    expect(kubeError('eu-1', 'list', 'list', { code: 401, body: { message: 'Unauthorized' } }).code).toBe(
      'MERIDIAN_E_TARGET_K8S_UNAUTHORIZED',
    );
    const quota = kubeError('eu-1', 'apply Deployment shop/web-canary', 'create', {
      code: 403,
      body: {
        message: 'pods "web-canary-5d9c" is forbidden: exceeded quota: tight, requested: pods=1, used: pods=2, limited: pods=2',
      },
    });
    expect(quota).toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_QUOTA',
      message: expect.stringContaining('exceeds ResourceQuota "tight"') as string,
    });
    expect(quota.hint).toContain('kubectl describe resourcequota tight');
    // an admission webhook's denial (HTTP 403, as webhooks answer by default) is about the object, not RBAC
    const webhook = kubeError('eu-1', 'apply Deployment shop/web', 'patch', {
      code: 403,
      body: { message: 'admission webhook "validate.kyverno.svc" denied the request: image must be signed' },
    });
    expect(webhook).toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_INVALID',
      message: expect.stringMatching(/^cluster eu-1: the cluster's admission refused/) as string,
    });
    expect(
      kubeError('eu-1', 'x', 'patch', {
        code: 404,
        body: { message: 'namespaces "nope" not found', details: { kind: 'namespaces', name: 'nope' } },
      }).code,
    ).toBe('MERIDIAN_E_TARGET_K8S_NAMESPACE');
    expect(kubeError('eu-1', 'x', 'list', new Error('request to https://127.0.0.1:1/api failed, reason: connect ECONNREFUSED')).code).toBe(
      'MERIDIAN_E_TARGET_K8S_UNREACHABLE',
    );
  });
});

describe('the client library is loaded only for a fleet with a kubernetes cluster', () => {
  /** Every module the file loads at import time (static value imports, not `import type` or `await import()`). */
  function staticGraph(entry: string): Set<string> {
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      if (!file.startsWith(SRC)) return;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)';/gms)) {
        const spec = m[1] as string;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
        else seen.add(spec);
      }
    };
    visit(entry);
    return seen;
  }
  const SRC = resolve(import.meta.dirname, '..', 'src');

  it('is not reached by a static import from the CLI or the commands that may meet a kubernetes fleet', () => {
    // @kubernetes/client-node costs ~2.7 s of CPU at import; a local-only rollout must not pay it
    for (const entry of [
      'cli/main.ts',
      'cli/commands/rollout.ts',
      'cli/commands/rollback.ts',
      'cli/commands/plan.ts',
      'cli/commands/render.ts',
      'cli/commands/validate.ts',
    ]) {
      const graph = staticGraph(resolve(SRC, entry));
      expect(graph.size, entry).toBeGreaterThan(3);
      expect(
        [...graph].filter((m) => m.startsWith('@kubernetes/') || m.includes('/targets/kubernetes/kubernetes-target')),
        entry,
      ).toEqual([]);
    }
    // and the check sees the driver's own import of it
    expect(staticGraph(resolve(SRC, 'targets/kubernetes/kubernetes-target.ts')).has('@kubernetes/client-node')).toBe(true);
  });
});

describe('ResourceQuota arithmetic (before anything is written)', () => {
  it('parses quantities, counts what an apply adds and names each quota it would exceed', async () => {
    const { parseQuantity, quotaAsk, quotaShortfalls, describeShortfall } = await import('../src/targets/kubernetes/quota.js');
    expect([
      parseQuantity('50m'),
      parseQuantity('2'),
      parseQuantity('1.5'),
      parseQuantity('32Mi'),
      parseQuantity('1G'),
      parseQuantity('1e3'),
    ]).toEqual([0.05, 2, 1.5, 32 * 2 ** 20, 1e9, 1000]);
    expect(parseQuantity('lots')).toBeNaN();
    const dep = (name: string, replicas: number | undefined, hash: string): Parameters<typeof quotaAsk>[0][number] => ({
      kind: 'Deployment',
      metadata: { name, labels: { 'meridian.dev/spec-hash': hash } },
      spec: {
        ...(replicas === undefined ? {} : { replicas }),
        template: { spec: { containers: [{ resources: { requests: { cpu: '50m', memory: '32Mi' } } }] } },
      },
    });
    // a new canary Deployment without replicas (replica ratio: 1 pod) and its ConfigMap; a changed stable rolls one extra pod
    const ask = quotaAsk(
      [dep('web-canary', undefined, 'b'), { kind: 'ConfigMap', metadata: { name: 'web-canary-config' } }, dep('web', 2, 'b')],
      [dep('web', 2, 'a')],
      'meridian.dev/spec-hash',
    );
    expect(ask.pods).toHaveLength(2);
    expect(ask.objects).toEqual({ Deployment: 1, ConfigMap: 1 });
    const short = quotaShortfalls(
      [
        {
          metadata: { name: 'tight' },
          status: {
            hard: { pods: '3', 'requests.cpu': '200m', configmaps: '10' },
            used: { pods: '2', 'requests.cpu': '100m', configmaps: '3' },
          },
        },
        { metadata: { name: 'scoped' }, spec: { scopes: ['BestEffort'] }, status: { hard: { pods: '0' }, used: { pods: '0' } } },
      ],
      ask,
    );
    expect(short.map(describeShortfall)).toEqual(['ResourceQuota "tight" allows pods: 3, 2 in use, this needs 2 more']); // cpu: 100m + 100m fits exactly
    // a quota on memory and pods that ask none: "must specify", as the API server would say
    expect(
      quotaShortfalls([{ metadata: { name: 'mem' }, status: { hard: { 'limits.memory': '1Gi' }, used: {} } }], {
        pods: [{}],
        objects: {},
      }).map(describeShortfall),
    ).toEqual(['ResourceQuota "mem" limits limits.memory, and the pods do not set memory (give the service resources)']);
  });
});

describe('connections to the API server', () => {
  it('keeps one TLS connection for many requests (client-node 1.x alone opens one per request)', async () => {
    const tmp = tempDir('meridian-k8s-keepalive-');
    const ossl = (args: string[]): void => void execFileSync('openssl', args, { cwd: tmp.dir, stdio: 'ignore' });
    ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'key.pem']);
    ossl([
      'req',
      '-x509',
      '-key',
      'key.pem',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
      '-out',
      'ca.pem',
    ]);
    let connections = 0;
    const server = https.createServer(
      { key: readFileSync(join(tmp.dir, 'key.pem')), cert: readFileSync(join(tmp.dir, 'ca.pem')) },
      (req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(
          req.url === '/api/v1'
            ? JSON.stringify({
                kind: 'APIResourceList',
                groupVersion: 'v1',
                resources: [{ name: 'configmaps', singularName: 'configmap', namespaced: true, kind: 'ConfigMap', verbs: ['list'] }],
              })
            : JSON.stringify({ kind: 'ConfigMapList', apiVersion: 'v1', metadata: {}, items: [] }),
        );
      },
    );
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const kc = kubeConfigFor(
      'c1',
      { namespace: 'ns', server: `https://127.0.0.1:${port}`, caFile: 'ca.pem' },
      { fleetDir: tmp.dir, env: {} },
    );
    try {
      const api = KubernetesObjectApi.makeApiClient(kc);
      for (let i = 0; i < 10; i++) expect((await api.list('v1', 'ConfigMap', 'ns')).items).toEqual([]);
      expect(connections).toBe(1);
    } finally {
      kc.close();
      server.closeAllConnections();
      server.close();
      tmp.cleanup();
    }
  });
});
