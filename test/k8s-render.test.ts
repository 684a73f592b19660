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
    // a Gateway adds a Service per track (the HTTPRoute comes with the first canary weight)
    expect(sets[0]?.objects.map((o) => `${o.kind}/${o.metadata.name}`)).toContain('Service/web-stable');
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
