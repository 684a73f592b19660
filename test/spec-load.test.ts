import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tryLoadFleet } from '../src/spec/load.js';

const fixture = (name: string): string => join(import.meta.dirname, 'fixtures', name);

/** Copies the multi-file fixture and appends a file, returning the directory. */
function withExtraFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-load-'));
  cpSync(fixture('multi'), dir, { recursive: true });
  writeFileSync(join(dir, name), text);
  return dir;
}

describe('loading a fleet directory', () => {
  it('merges every apiVersion file by its top-level maps and ignores other YAML', () => {
    const r = tryLoadFleet(fixture('multi'));
    if ('findings' in r) throw new Error(JSON.stringify(r.findings));
    expect(Object.keys(r.fleet.regions)).toEqual(['eu-west', 'us-east']);
    expect(Object.keys(r.fleet.services)).toEqual(['web', 'api']);
    expect(r.fleet.clusters['eu-west-1']?.weight).toBe(1); // schema default
  });

  it('names both places when a name is defined twice across files', () => {
    const dir = withExtraFile(
      '20-dup.yaml',
      'apiVersion: meridian/v1\nfleet: mini\nservices:\n  web:\n    image: x\n    version: 1.0.0\n    port: 1\n',
    );
    const r = tryLoadFleet(dir);
    expect('findings' in r).toBe(true);
    if (!('findings' in r)) return;
    const f = r.findings.find((x) => x.code === 'MERIDIAN_E_DUPLICATE_NAME');
    expect(f?.location?.file).toMatch(/20-dup\.yaml$/);
    expect(f?.location?.line).toBe(4);
    expect(f?.message).toMatch(/10-services\.yaml:4:3/);
  });

  it('reports every schema problem at once, each at file:line:col with a fix', () => {
    const dir = withExtraFile(
      '30-bad.yaml',
      [
        'apiVersion: meridian/v1',
        'fleet: mini',
        'flags:',
        '  checkout:',
        '    defualt: true',
        '    regions: { eu-west: { enabled: yes, percent: 20 } }',
        'rollout:',
        '  waves:',
        '    - name: canary',
        '      bake: 2 minutes',
        '',
      ].join('\n'),
    );
    const r = tryLoadFleet(dir);
    if (!('findings' in r)) throw new Error('expected findings');
    const byCode = r.findings.map((f) => `${f.code} ${f.location?.line}:${f.location?.col} ${f.path}`);
    expect(byCode).toEqual([
      'MERIDIAN_E_UNKNOWN_KEY 5:5 flags.checkout.defualt',
      'MERIDIAN_E_SCHEMA 6:36 flags.checkout.regions.eu-west.enabled',
      'MERIDIAN_E_SCHEMA 10:13 rollout.waves[0].bake',
    ]);
    expect(r.findings[0]?.fix).toMatch(/did you mean "default"/);
    expect(r.findings[2]?.message).toMatch(/expected a duration like 250ms/);
  });

  it('rejects a duplicate YAML key at its position', () => {
    const dir = withExtraFile(
      '40-dupkey.yaml',
      'apiVersion: meridian/v1\nfleet: mini\nflags:\n  a: { default: true }\n  a: { default: false }\n',
    );
    const r = tryLoadFleet(dir);
    if (!('findings' in r)) throw new Error('expected findings');
    expect(r.findings.map((f) => [f.code, f.location?.line])).toEqual([['MERIDIAN_E_DUPLICATE_KEY', 5]]);
  });

  it('rejects a reference to a region that does not exist, suggesting the closest', () => {
    const dir = withExtraFile(
      '50-ref.yaml',
      'apiVersion: meridian/v1\nfleet: mini\nclusters:\n  eu-west-2:\n    region: eu-wset\n    driver: local\n    capacity: { rps: 1 }\n',
    );
    const r = tryLoadFleet(dir);
    if (!('findings' in r)) throw new Error('expected findings');
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]).toMatchObject({
      code: 'MERIDIAN_E_UNKNOWN_REFERENCE',
      path: 'clusters.eu-west-2.region',
      location: { line: 5, col: 13 },
    });
    expect(r.findings[0]?.fix).toMatch(/did you mean "eu-west"/);
  });

  it('refuses files of one fleet that disagree on its name', () => {
    const dir = withExtraFile('60-other.yaml', 'apiVersion: meridian/v1\nfleet: other\n');
    const r = tryLoadFleet(dir);
    if (!('findings' in r)) throw new Error('expected findings');
    expect(r.findings[0]).toMatchObject({ code: 'MERIDIAN_E_FLEET_MISMATCH', location: { line: 2, col: 8 } });
  });

  it('never prints a secret pasted where a reference belongs', () => {
    const r = tryLoadFleet(join(import.meta.dirname, '..', 'testdata', 'literal-secret-in-secrets'));
    if (!('findings' in r)) throw new Error('expected findings');
    expect(r.findings[0]?.code).toBe('MERIDIAN_E_LITERAL_SECRET');
    expect(JSON.stringify(r.findings)).not.toContain('hunter2');
    expect(r.findings[0]?.fix).toMatch(/ref: "file:secrets/);
  });
});
