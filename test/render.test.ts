import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/render/canonical.js';
import { render, revisionJson } from '../src/render/render.js';
import { loadFleet } from '../src/spec/load.js';
import { toYaml } from '../src/cli/commands/render.js';
import { expectGolden } from './support/golden.js';

const dir = join(import.meta.dirname, 'fixtures', 'multi');
const golden = join(import.meta.dirname, 'golden', 'render');

function checkGolden(name: string, text: string): void {
  expectGolden(join(golden, name), text);
}

describe('render', () => {
  it('renders each cluster with overrides applied in order and placeholders resolved', () => {
    const { revision, findings } = render(loadFleet(dir));
    expect(findings).toEqual([]);
    const us = revision.clusters['us-east-1'];
    const eu = revision.clusters['eu-west-1'];
    expect(us?.services['web']).toMatchObject({
      replicas: 4,
      env: { LOG_LEVEL: 'info', ZONE: 'a' },
      ingress: { host: 'web.us.mini.example' },
    });
    expect(eu?.services['web']?.env).toEqual({ GDPR_MODE: 'strict', LOG_LEVEL: 'info', ZONE: 'b' });
    expect(eu?.services['web']?.digest).toBe(`sha256:${'1'.repeat(64)}`);
    expect(Object.keys(us?.services ?? {})).toEqual(['web']); // api excluded from us-east
  });

  it('is byte-identical across runs, and the revision id is the hash of the content', () => {
    const a = render(loadFleet(dir)).revision;
    const b = render(loadFleet(dir)).revision;
    expect(revisionJson(a)).toBe(revisionJson(b));
    expect(a.id).toMatch(/^[0-9a-f]{16}$/);
    checkGolden('multi.yaml', toYaml({ revision: a.id, clusters: a.clusters }));
  });

  it('explains where a value came from, down to the override and its file:line', () => {
    const r = render(loadFleet(dir));
    expect(r.explain('us-east-1', 'web.replicas')).toMatchObject({
      source: 'override[1]',
      path: 'services.web.overrides[1].set.replicas',
      location: { line: 15, col: 26 },
    });
    expect(r.explain('eu-west-1', 'web.replicas')).toMatchObject({ source: 'service', location: { line: 8, col: 15 } });
    expect(r.explain('eu-west-1', 'web.env.LOG_LEVEL')?.path).toBe('services.web.env.LOG_LEVEL');
    expect(r.explain('us-east-1', 'api.replicas')).toBeUndefined(); // api does not run there
    expect(r.explain('eu-west-1', 'api.replicas')?.source).toBe('default');
  });

  it('builds rendered services with sorted keys, so their native JSON is their canonical JSON', () => {
    for (const fleetDir of [dir, join(import.meta.dirname, '..', 'examples', 'shop')]) {
      const { revision } = render(loadFleet(fleetDir));
      for (const c of Object.values(revision.clusters)) {
        const plain = JSON.parse(JSON.stringify(c.services)) as unknown; // a fresh copy: no memo
        expect(JSON.stringify(c.services)).toBe(canonicalJson(plain));
      }
    }
  });
});
