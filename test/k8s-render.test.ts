/** `meridian render --format kubernetes` (golden files) and the per-cluster object changes `meridian plan` shows. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kubernetesYaml } from '../src/cli/commands/render.js';
import { render } from '../src/render/render.js';
import { loadFleet } from '../src/spec/load.js';
import { kubernetesManifests, objectChanges } from '../src/targets/kubernetes/render-manifests.js';

const dir = join(import.meta.dirname, 'fixtures', 'k8s', 'fleet');
const golden = join(import.meta.dirname, 'golden', 'kubernetes');

function checkGolden(name: string, text: string): void {
  const file = join(golden, name);
  if (process.env['UPDATE_GOLDEN']) {
    mkdirSync(golden, { recursive: true });
    writeFileSync(file, text);
  }
  expect(text).toBe(readFileSync(file, 'utf8'));
}

describe('render --format kubernetes', () => {
  const rev = render(loadFleet(dir)).revision;

  it('writes the objects of every kubernetes cluster, and none for the local one', () => {
    const sets = kubernetesManifests(rev);
    expect(sets.map((s) => s.cluster)).toEqual(['ap-south-k8s', 'eu-west-k8s', 'us-east-k8s']);
    checkGolden('kshop.yaml', kubernetesYaml(sets));
    // a Gateway adds a Service per track and the service's HTTPRoute, all traffic on stable until a canary step
    expect(sets[0]?.objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(
      expect.arrayContaining(['Service/web-stable', 'HTTPRoute/web']),
    );
    const route = sets[0]?.objects.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === 'web') as
      { spec?: { rules?: { backendRefs?: unknown[] }[] } } | undefined;
    expect(route?.spec?.rules?.[0]?.backendRefs).toEqual([{ name: 'web-stable', port: 8080, weight: 100 }]);
    expect(sets[1]?.objects.map((o) => `${o.kind}/${o.metadata.name}`)).not.toContain('Service/web-stable');
  });

  it('plans per-cluster object changes: a new version changes its Deployment and ConfigMap; a dropped service is pruned', () => {
    const fleet = loadFleet(dir);
    const next = { ...fleet, fleet: structuredClone(fleet.fleet) };
    const web = next.fleet.services['web'];
    if (!web) throw new Error('fixture has web');
    web.version = '1.5.0';
    delete next.fleet.services['api'];
    const changes = objectChanges(rev, render(next).revision);
    const eu = changes.find((c) => c.cluster === 'eu-west-k8s');
    expect(eu).toMatchObject({
      canary: 'replicas',
      create: [],
      update: ['ConfigMap/web-config', 'Deployment/web'],
      prune: ['ConfigMap/api-config', 'Deployment/api', 'Service/api'],
    });
    expect(changes.find((c) => c.cluster === 'ap-south-k8s')?.canary).toBe('gateway');
    expect(objectChanges(rev, rev).every((c) => c.create.length + c.update.length + c.prune.length === 0)).toBe(true);
  });
});

describe('validate --server-dry-run', () => {
  it('reports a cluster whose API server does not answer as a finding at its target in the fleet file', async () => {
    const { serverDryRunFindings } = await import('../src/fleet/server-dry-run.js');
    const { mkdtempSync, mkdirSync, cpSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const tmp = mkdtempSync(join(tmpdir(), 'meridian-k8s-validate-'));
    cpSync(dir, tmp, { recursive: true });
    const text = readFileSync(join(tmp, 'fleet.yaml'), 'utf8').replace("server: 'https://10.0.0.1:6443'", "server: 'https://127.0.0.1:9'");
    writeFileSync(join(tmp, 'fleet.yaml'), text);
    mkdirSync(join(tmp, 'kube'), { recursive: true });
    writeFileSync(join(tmp, 'kube', 'us-east-ca.crt'), 'not a certificate\n', { flag: 'w' });
    const loaded = loadFleet(tmp);
    const only = { ...render(loaded).revision };
    const us = only.clusters['us-east-k8s'];
    if (!us) throw new Error('fixture has us-east-k8s');
    const findings = await serverDryRunFindings(loaded, { ...only, clusters: { 'us-east-k8s': us } }, { env: { US_EAST_TOKEN: 't' } });
    rmSync(tmp, { recursive: true, force: true });
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({
      severity: 'error',
      check: 'server-dry-run',
      path: 'clusters.us-east-k8s.target',
      location: { file: expect.stringContaining('fleet.yaml') as string, line: 20 },
      target: { cluster: 'us-east-k8s' },
    });
    expect(findings[0]?.message).toMatch(/cluster us-east-k8s/);
  });
});
