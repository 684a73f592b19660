/**
 * The Istio and Gateway API exports sent to a real Kubernetes API server (kube-apiserver 1.36 from
 * scripts/k8s-test-bins.sh, test/support/k8s-cluster-kit.ts) with the real CRDs installed — Istio's from
 * istio.io/api 1.32.0 and Gateway API's standard channel 1.6.3 — by server-side apply with
 * `--dry-run=server`: the API server validates every object against the CRD's schema and CEL rules, as
 * it would in a user's cluster, and refuses a planted mistake in each. (No Istio control plane or Gateway
 * controller runs here: what the objects do is shown by test/export-mesh.test.ts against the routing model.)
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, type ExportInput } from '../src/export/index.js';
import { gatewayApiExporter } from '../src/export/gateway-api.js';
import { istioExporter } from '../src/export/istio.js';
import { fixtureRevision } from './support/export-kit.js';
import { installGatewayApi, startTestCluster, type TestCluster } from './support/k8s-cluster-kit.js';
import { meshCrds } from './support/crd-schema-kit.js';

const rev = fixtureRevision();
const inputs: Record<string, ExportInput> = {
  'every cluster stable': exportInput(rev, clusterAddresses(rev)),
  'a 10 % canary on us-east-1': exportInput(
    rev,
    clusterAddresses(rev),
    {},
    { canary: { web: { 'us-east-1': { weight: 10, version: '2.5.0' } } } },
  ),
};

let cluster: TestCluster;

/** `kubectl apply --server-side --dry-run=server` of `yaml`: the API server's answer, or its refusal. */
function dryRun(yaml: string): { ok: true; out: string } | { ok: false; err: string } {
  try {
    return { ok: true, out: cluster.kubectl(['apply', '--server-side', '--dry-run=server', '--field-manager=meridian', '-f', '-'], yaml) };
  } catch (err) {
    return { ok: false, err: `${(err as { stderr?: Buffer | string }).stderr?.toString() ?? ''}${(err as Error).message}` };
  }
}

beforeAll(async () => {
  cluster = await startTestCluster('mesh');
  await installGatewayApi(cluster);
  const istio = meshCrds().files.find((f) => f.includes('istio-api'));
  cluster.kubectl(['apply', '--server-side', '-f', istio ?? join('missing', 'istio-crds.yaml')]);
  cluster.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/virtualservices.networking.istio.io',
    'crd/destinationrules.networking.istio.io',
    'crd/serviceentries.networking.istio.io',
  ]);
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe('the mesh exports on a real API server with the real CRDs', () => {
  for (const [name, input] of Object.entries(inputs)) {
    it(`Istio (${name}): the API server accepts every object`, () => {
      const r = dryRun(istioExporter.export(input).files['istio.yaml'] ?? '');
      expect(r.ok, r.ok ? '' : r.err).toBe(true);
      if (r.ok) {
        expect(r.out).toMatch(/serviceentry\.networking\.istio\.io\/meridian-web serverside-applied \(server dry run\)/);
        expect(r.out).toMatch(/destinationrule\.networking\.istio\.io\/\S+ serverside-applied \(server dry run\)/);
        expect(r.out).toMatch(/virtualservice\.networking\.istio\.io\/\S+ serverside-applied \(server dry run\)/);
      }
    });

    it(`Gateway API (${name}): the API server accepts every HTTPRoute`, () => {
      const r = dryRun(gatewayApiExporter.export(input).files['httproutes.yaml'] ?? '');
      expect(r.ok, r.ok ? '' : r.err).toBe(true);
      if (r.ok) expect(r.out).toMatch(/httproute\.gateway\.networking\.k8s\.io\/meridian-web serverside-applied \(server dry run\)/);
    });
  }

  it('refuses a planted mistake in each: the check is the API server’s, not a formality', () => {
    const input = inputs['a 10 % canary on us-east-1'] as ExportInput;
    const route = (gatewayApiExporter.export(input).files['httproutes.yaml'] ?? '').replace(/weight: \d+/, 'weight: -5');
    const bad = dryRun(route);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.err).toMatch(/weight/);
    const mesh = (istioExporter.export(input).files['istio.yaml'] ?? '').replace(/resolution: STATIC/, 'resolution: SOMETIMES');
    const wrong = dryRun(mesh);
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) expect(wrong.err).toMatch(/resolution/);
  });
});
