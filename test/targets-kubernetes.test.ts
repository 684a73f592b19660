/**
 * The kubernetes driver against a real Kubernetes API (etcd + kube-apiserver + controller-manager +
 * scheduler + kwok, started once for this file by test/k8s-cluster-kit.ts): the target contract, exactly
 * as the local driver meets it, then what only Kubernetes has — server-side apply and its conflicts,
 * no writes on an unchanged re-apply, pruning, RBAC and the other refusals as typed errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KubernetesTarget } from '../src/targets/kubernetes/kubernetes-target.js';
import { isHealthyAt, waitForStatus } from '../src/targets/target.js';
import type { RenderedCluster } from '../src/render/render.js';
import { echoService, renderedCluster } from './fixtures/local-services/cluster.js';
import { createNamespace, servePods, startTestCluster, type TestCluster } from './support/k8s-cluster-kit.js';
import { targetContract } from './targets.contract.js';
import { runMeridian } from './support/cli-kit.js';

// the contract's waits are bounded by the harness's timeoutMs; a test may take a few of them on a loaded machine
vi.setConfig({ testTimeout: 180_000 });

let kc: TestCluster;
let pods: ReturnType<typeof servePods>;
let nsCount = 0;

beforeAll(async () => {
  kc = await startTestCluster('contract');
  pods = servePods(kc);
}, 300_000);

afterAll(async () => {
  await pods?.stop();
  await kc?.stop();
}, 60_000);

function k8sCluster(
  ns: string,
  services: Parameters<typeof echoService>[0][] | Record<string, Parameters<typeof echoService>[0]>,
  over: Record<string, unknown> = {},
): RenderedCluster {
  const svc = Object.fromEntries(Object.entries(services).map(([name, s]) => [name, echoService(s)]));
  return { ...renderedCluster(svc), driver: 'kubernetes', target: { kubeconfig: kc.kubeconfig, namespace: ns, ...over } };
}

async function freshNamespace(): Promise<string> {
  nsCount += 1;
  const ns = `t${process.pid}-${nsCount}`;
  await createNamespace(kc, ns);
  return ns;
}

targetContract('kubernetes (real API server, kwok nodes)', async () => {
  const ns = await freshNamespace();
  const t = new KubernetesTarget({ fleetDir: '.', pollMs: 100 });
  return {
    target: t,
    cluster: (services) =>
      k8sCluster(
        ns,
        Object.fromEntries(
          Object.entries(services).map(([name, s]) => [
            name,
            { version: s.version, replicas: s.replicas ?? 1, env: { ...s.env, ...(s.failHealth ? { FAULT_HEALTH: 'fail' } : {}) } },
          ]),
        ),
      ),
    fetch: async (e) => {
      await pods.serving(e.host, e.port);
      return (await (await fetch(`http://${e.host}:${e.port}/`)).json()) as Record<string, unknown>;
    },
    timeoutMs: 90_000,
    settleMs: 1500,
    close: () => t.close(),
  };
});

describe('kubernetes driver: server-side apply', () => {
  it('writes nothing when the same revision is applied again, and names the manager of a conflicting field until --force-conflicts', async () => {
    const ns = await freshNamespace();
    const t = new KubernetesTarget({ fleetDir: '.' });
    const state = k8sCluster(ns, { web: { version: '1.0.0', replicas: 2 } });
    await t.apply({ cluster: 'ssa', revisionId: 'rev-a', state, track: 'stable' });
    await waitForStatus(t, 'ssa', (s) => isHealthyAt(s, 'web', 'stable', 'rev-a'), { timeoutMs: 90_000 });
    const rv = kc.kubectl(['get', 'deploy,svc,cm', '-n', ns, '-o', 'jsonpath={.items[*].metadata.resourceVersion}']);
    const before = t.writes;
    await t.apply({ cluster: 'ssa', revisionId: 'rev-a', state, track: 'stable' });
    expect(t.writes - before).toBe(0);
    expect(kc.kubectl(['get', 'deploy,svc,cm', '-n', ns, '-o', 'jsonpath={.items[*].metadata.resourceVersion}'])).toBe(rv);
    const managers = JSON.parse(kc.kubectl(['get', 'deploy', 'web', '-n', ns, '-o', 'json', '--show-managed-fields'])) as {
      metadata: { managedFields: { manager: string; operation: string }[] };
    };
    expect(managers.metadata.managedFields.filter((m) => m.operation === 'Apply').map((m) => m.manager)).toEqual(['meridian']);

    // someone else takes .spec.replicas with their own server-side apply
    kc.kubectl(
      ['apply', '--server-side', '--field-manager=ops-oncall', '--force-conflicts', '-f', '-'],
      JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas: 5,
          selector: { matchLabels: { 'meridian.dev/cluster': 'ssa', 'meridian.dev/service': 'web', 'meridian.dev/track': 'stable' } },
          template: {
            metadata: { labels: { 'meridian.dev/cluster': 'ssa', 'meridian.dev/service': 'web', 'meridian.dev/track': 'stable' } },
            spec: { containers: [{ name: 'web', image: 'x' }] },
          },
        },
      }),
    );
    const next = k8sCluster(ns, { web: { version: '1.1.0', replicas: 3 } });
    await expect(t.apply({ cluster: 'ssa', revisionId: 'rev-b', state: next, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_CONFLICT',
      message: expect.stringMatching(/cluster ssa: apply Deployment .*\/web conflicts with fields owned by "ops-oncall"/) as string,
      hint: expect.stringContaining('--force-conflicts') as string,
    });
    const forced = new KubernetesTarget({ fleetDir: '.', forceConflicts: true });
    await forced.apply({ cluster: 'ssa', revisionId: 'rev-b', state: next, track: 'stable' });
    expect(kc.kubectl(['get', 'deploy', 'web', '-n', ns, '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
  }, 180_000);

  it('sets a replica-ratio weight once the canary runs it, and the next canary apply does not conflict with its replica count', async () => {
    const ns = await freshNamespace();
    const t = new KubernetesTarget({ fleetDir: '.' });
    await t.apply({
      cluster: 'ratio',
      revisionId: 'rev-a',
      state: k8sCluster(ns, { web: { version: '1', replicas: 3 } }),
      track: 'stable',
    });
    const canary = async (revisionId: string, version: string): Promise<void> => {
      await t.apply({ cluster: 'ratio', revisionId, state: k8sCluster(ns, { web: { version, replicas: 3 } }), track: 'canary' });
      await waitForStatus(t, 'ratio', (s) => isHealthyAt(s, 'web', 'canary', revisionId), { timeoutMs: 90_000 });
    };
    await canary('rev-b', '2');
    await t.traffic().setCanary('web', 'ratio', 50, '2'); // 3 stable : 3 canary
    expect(kc.kubectl(['get', 'deploy', 'web-canary', '-n', ns, '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
    // resolved only once the new count is rolled out: the canary is healthy at once, not scaling
    expect(isHealthyAt(await t.status('ratio'), 'web', 'canary', 'rev-b')).toBe(true);
    const writes = t.writes;
    await t.traffic().setCanary('web', 'ratio', 50, '2');
    expect(t.writes).toBe(writes); // the same weight again writes nothing
    // a new canary: its manifest leaves the replica count to the traffic manager, so the apply does not conflict with it
    await canary('rev-c', '3');
  }, 180_000);

  it('prunes what a full apply no longer has, but never an object another tool owns', async () => {
    const ns = await freshNamespace();
    const t = new KubernetesTarget({ fleetDir: '.' });
    await t.apply({
      cluster: 'prune',
      revisionId: 'rev-a',
      state: k8sCluster(ns, { web: { version: '1' }, api: { version: '1' }, cart: { version: '1' } }),
      track: 'stable',
    });
    // Argo CD claims cart (its tracking annotation), so it is Argo's now
    kc.kubectl(['annotate', 'deploy', 'cart', '-n', ns, 'argocd.argoproj.io/tracking-id=shop:apps/Deployment:x/cart']);
    await t.apply({ cluster: 'prune', revisionId: 'rev-b', state: k8sCluster(ns, { web: { version: '1' } }), track: 'stable' });
    const left = kc.kubectl(['get', 'deploy', '-n', ns, '-o', 'jsonpath={.items[*].metadata.name}']).split(' ').sort();
    expect(left).toEqual(['cart', 'web']);
    const parent = JSON.parse(kc.kubectl(['get', 'cm', 'meridian-prune', '-n', ns, '-o', 'json'])) as {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
    };
    expect(parent.metadata.labels['applyset.kubernetes.io/id']).toMatch(/^applyset-.+-v1$/);
    expect(parent.metadata.annotations['applyset.kubernetes.io/contains-group-kinds']).toContain('Deployment.apps');
  }, 180_000);
});

describe('kubernetes driver: refusals are typed errors that name the cluster', () => {
  it('RBAC forbidden names the verb; a bad token, a missing namespace and an unreachable API each say how to fix it', async () => {
    const ns = await freshNamespace();
    const limited = new KubernetesTarget({
      fleetDir: '.',
      clusters: { 'eu-9': { server: kc.server, caFile: kc.caFile, token: { ref: 'env:K8S_TOKEN' }, namespace: ns } },
      env: { K8S_TOKEN: kc.tokens.limited },
    });
    const state = k8sCluster(ns, { web: { version: '1' } });
    await expect(limited.apply({ cluster: 'eu-9', revisionId: 'r', state, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_FORBIDDEN',
      message: expect.stringMatching(/^cluster eu-9: RBAC forbids Meridian to list/) as string,
    });
    // allowed to read, but not to create Deployments: the error names the verb it lacked
    kc.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'reader', namespace: ns },
        rules: [
          { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['get', 'list', 'watch', 'create', 'patch'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
          // may change Deployments that exist, but not create one (server-side apply of a new object needs create)
          { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch', 'patch'] },
        ],
      }),
    );
    kc.kubectl(['create', 'rolebinding', 'reader', '-n', ns, '--role=reader', '--user=limited']);
    await expect(limited.apply({ cluster: 'eu-9', revisionId: 'r', state, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_FORBIDDEN',
      message: expect.stringMatching(
        /^cluster eu-9: RBAC forbids Meridian to create deployments\.apps \(apply Deployment t[\d-]+\/web\):.*User "limited" cannot create resource "deployments"/,
      ) as string,
      hint: expect.stringContaining(`kubectl auth can-i create deployments.apps -n ${ns} --as limited`) as string,
    });

    const expired = new KubernetesTarget({
      fleetDir: '.',
      clusters: { 'eu-8': { server: kc.server, caFile: kc.caFile, token: { ref: 'env:K8S_TOKEN' }, namespace: ns } },
      env: { K8S_TOKEN: 'no-longer-valid' },
    });
    await expect(expired.status('eu-8')).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_UNAUTHORIZED',
      message: expect.stringContaining('cluster eu-8') as string,
    });

    const admin = new KubernetesTarget({ fleetDir: '.' });
    await expect(
      admin.apply({ cluster: 'eu-7', revisionId: 'r', state: k8sCluster('no-such-ns', { web: { version: '1' } }), track: 'stable' }),
    ).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_NAMESPACE',
      message: expect.stringContaining('cluster eu-7') as string,
      hint: expect.stringContaining('kubectl create namespace') as string,
    });

    const gone = new KubernetesTarget({
      fleetDir: '.',
      clusters: { 'eu-6': { server: 'https://127.0.0.1:9', insecureSkipTlsVerify: true, namespace: ns } },
    });
    await expect(gone.status('eu-6')).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_UNREACHABLE',
      message: expect.stringContaining('cluster eu-6') as string,
    });
  }, 120_000);
});

/** Waits until the quota controller's status of ResourceQuota `tight` shows `value` at `field` (`used.pods`). */
async function quotaShows(ns: string, field: string, value: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (kc.kubectl(['get', 'resourcequota', 'tight', '-n', ns, '-o', `jsonpath={.status.${field}}`]) === value) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ResourceQuota tight in ${ns}: status.${field} never became ${value}`);
}

describe('kubernetes driver: canary traffic and quotas', () => {
  it('refuses a Gateway on a cluster that does not serve the Gateway API (this one has no CRDs): no silent fallback', async () => {
    const ns = await freshNamespace();
    const t = new KubernetesTarget({ fleetDir: '.' });
    const state = k8sCluster(ns, { web: { version: '1' } }, { gateway: { name: 'public', namespace: 'gateways' } });
    await expect(t.apply({ cluster: 'gw-less', revisionId: 'r', state, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_NOT_FOUND',
      message: expect.stringMatching(
        /^cluster gw-less: target\.gateway names Gateway gateways\/public, but the cluster does not serve the Gateway API/,
      ) as string,
      hint: expect.stringContaining('remove target.gateway') as string,
    });
    expect(kc.kubectl(['get', 'deploy,svc,cm', '-n', ns, '-l', 'app.kubernetes.io/managed-by=meridian', '-o', 'name'])).toBe(''); // nothing written
  });

  it('refuses a canary that a ResourceQuota cannot hold, naming the cluster, the quota and the fix; nothing of it is written', async () => {
    const ns = await freshNamespace();
    kc.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ResourceQuota',
        metadata: { name: 'tight', namespace: ns },
        spec: { hard: { pods: '3', 'requests.cpu': '150m' } },
      }),
    );
    const t = new KubernetesTarget({ fleetDir: '.' });
    const withCpu = (version: string, replicas: number): RenderedCluster => {
      const c = k8sCluster(ns, { web: { version, replicas } });
      const web = c.services['web'];
      return web ? { ...c, services: { web: { ...web, resources: { cpu: '50m', memory: '16Mi' } } } } : c;
    };
    await t.apply({ cluster: 'quota', revisionId: 'rev-a', state: withCpu('1', 2), track: 'stable' });
    await waitForStatus(t, 'quota', (s) => isHealthyAt(s, 'web', 'stable', 'rev-a'), { timeoutMs: 90_000 });
    // the quota controller has counted the two stable pods (50m each)
    await quotaShows(ns, 'used.pods', '2');

    // a replica-ratio canary starts at 1 pod: 3 pods and 150m fit exactly; its first weight (50 %) wants a second pod
    await t.apply({ cluster: 'quota', revisionId: 'rev-b', state: withCpu('2', 2), track: 'canary' });
    await waitForStatus(t, 'quota', (s) => isHealthyAt(s, 'web', 'canary', 'rev-b'), { timeoutMs: 90_000 });
    await quotaShows(ns, 'used.pods', '3');
    const err = await t
      .traffic()
      .setCanary('web', 'quota', 50, '2')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_QUOTA',
      message: expect.stringMatching(
        /^cluster quota: scaling web-canary to 2 replicas \(weight 50 %\) would exceed the quota of namespace t[\d-]+: ResourceQuota "tight" allows pods: 3, 3 in use, this needs 1 more; ResourceQuota "tight" allows requests\.cpu: 150m, 150m in use, this needs 50m more; nothing of it was applied$/,
      ) as string,
      hint: expect.stringContaining(`raise the quota (kubectl describe resourcequota tight -n ${ns})`) as string,
    });
    expect((err as Error).stack).toBeDefined(); // a typed error object: the CLI prints its message and hint, never the stack
    expect(kc.kubectl(['get', 'deploy', 'web-canary', '-n', ns, '-o', 'jsonpath={.spec.replicas}'])).toBe('1');

    // a new canary in its place would add a Deployment's pod again: refused before anything is written
    await t.remove({ cluster: 'quota', track: 'canary' });
    kc.kubectl(['patch', 'resourcequota', 'tight', '-n', ns, '--type=merge', '-p', '{"spec":{"hard":{"pods":"2"}}}']);
    await quotaShows(ns, 'hard.pods', '2');
    await expect(t.apply({ cluster: 'quota', revisionId: 'rev-c', state: withCpu('3', 2), track: 'canary' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_K8S_QUOTA',
      message: expect.stringMatching(
        /^cluster quota: the canary track of web would exceed .*ResourceQuota "tight" allows pods: 2, 2 in use, this needs 1 more/,
      ) as string,
    });
    expect(kc.kubectl(['get', 'deploy,cm', '-n', ns, '-o', 'name']).split('\n').filter(Boolean).sort()).toEqual([
      'configmap/kube-root-ca.crt',
      'configmap/meridian-quota',
      'configmap/web-config',
      'deployment.apps/web',
    ]);
  }, 180_000);
});

describe('meridian validate --server-dry-run against the real API server', () => {
  it("reports the server's refusals (validation, an admission policy, a missing namespace) at the fleet file and line they came from", async () => {
    const ns = await freshNamespace();
    kc.kubectl(['label', 'namespace', ns, 'meridian.test/policy=strict']);
    // a cluster policy: Deployments in strict namespaces pull only from registry.example (a ValidatingAdmissionPolicy)
    kc.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'ValidatingAdmissionPolicy',
            metadata: { name: 'trusted-registry' },
            spec: {
              failurePolicy: 'Fail',
              matchConstraints: {
                resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['deployments'] }],
              },
              validations: [
                {
                  expression: "object.spec.template.spec.containers.all(c, c.image.startsWith('registry.example/'))",
                  message: 'spec.template.spec.containers[0].image must come from registry.example/',
                },
              ],
            },
          },
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'ValidatingAdmissionPolicyBinding',
            metadata: { name: 'trusted-registry' },
            spec: {
              policyName: 'trusted-registry',
              validationActions: ['Deny'],
              matchResources: { namespaceSelector: { matchLabels: { 'meridian.test/policy': 'strict' } } },
            },
          },
        ],
      }),
    );
    // a new policy takes a moment to be enforced (the API server's policy informer): wait until it denies a probe
    const probe = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'policy-probe' },
      spec: {
        selector: { matchLabels: { app: 'probe' } },
        template: { metadata: { labels: { app: 'probe' } }, spec: { containers: [{ name: 'c', image: 'example.test/probe:1' }] } },
      },
    };
    for (let i = 0; ; i++) {
      const r = await kc.api('POST', `/apis/apps/v1/namespaces/${ns}/deployments?dryRun=All`, probe);
      if (r.status >= 400 && JSON.stringify(r.body).includes('registry.example')) break;
      if (i >= 300) throw new Error(`the admission policy was never enforced: ${r.status} ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const dir = mkdtempSync(join(tmpdir(), 'meridian-k8s-dry-run-'));
    const lines = [
      'apiVersion: meridian/v1',
      'fleet: dry',
      'regions:',
      '  eu-west: { jurisdiction: EU, location: { lat: 53.35, lon: -6.26 }, countries: [IE] }',
      'clusters:',
      '  dry-a:',
      '    region: eu-west',
      '    driver: kubernetes',
      `    target: { kubeconfig: '${kc.kubeconfig}', namespace: ${ns} }`,
      '    capacity: { rps: 100 }',
      '  dry-b:',
      '    region: eu-west',
      '    driver: kubernetes',
      `    target: { kubeconfig: '${kc.kubeconfig}',`,
      '              namespace: no-such-namespace }',
      '    capacity: { rps: 100 }',
      'services:',
      '  web:',
      `    image: example.test/web:1.0.0@sha256:${'0'.repeat(64)}`,
      '    version: 1.0.0',
      '    port: 8080',
      '    config:',
      '      GREETING: hello',
      '      bad key: 1',
      'rollout:',
      '  waves: [{ name: all }]',
      '',
    ];
    writeFileSync(join(dir, 'fleet.yaml'), lines.join('\n'));
    const line = (text: string): number => lines.findIndex((l) => l.includes(text)) + 1;
    try {
      const run = runMeridian(['validate', '.', '--server-dry-run', '--no-state', '-o', 'json'], { cwd: dir });
      expect(run.err).not.toMatch(/^\s+at /m);
      const report = JSON.parse(run.out) as {
        findings: {
          code: string;
          check?: string;
          path: string;
          location?: { file: string; line: number };
          message: string;
          fix?: string;
        }[];
      };
      const dry = report.findings.filter((f) => f.check === 'server-dry-run');
      const at = (f: (typeof dry)[number]): string => `${f.code} ${f.path} ${f.location?.file.split('/').at(-1)}:${f.location?.line}`;
      expect(dry.map(at).sort()).toEqual(
        [
          // the API server's validation: a ConfigMap key may not hold a space — at that config entry
          `MERIDIAN_E_TARGET_K8S_INVALID services.web.config["bad key"] fleet.yaml:${line('bad key')}`,
          // the admission policy refuses the image — at the service's image
          `MERIDIAN_E_TARGET_K8S_INVALID services.web.image fleet.yaml:${line('image:')}`,
          // the other cluster's namespace does not exist — at its target's namespace
          `MERIDIAN_E_TARGET_K8S_NAMESPACE clusters.dry-b.target.namespace fleet.yaml:${line('no-such-namespace')}`,
        ].sort(),
      );
      expect(dry.find((f) => f.path.endsWith('image'))?.message).toMatch(
        /^cluster dry-a: the API server refused apply Deployment t[\d-]+\/web: .*ValidatingAdmissionPolicy 'trusted-registry' .* denied request: .*image must come from registry\.example\//,
      );
      expect(run.code).toBe(1); // findings
      // nothing was stored: dry-run only
      expect(kc.kubectl(['get', 'deploy,cm', '-n', ns, '-l', 'app.kubernetes.io/managed-by=meridian', '-o', 'name'])).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      kc.kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', 'trusted-registry']);
    }
  }, 120_000);
});
