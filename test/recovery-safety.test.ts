/** The safety rules of evacuations (src/recovery/safety.ts), pure, on the example fleet's revision. */
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { render, type Revision } from '../src/render/render.js';
import { DEFAULT_SAFETY, rtoMs, safetyPolicy } from '../src/recovery/policy.js';
import { checkEvacuation, type EvacuationRequest, type Place, type RecoveryState } from '../src/recovery/safety.js';
import { tryLoadFleet, type LoadedFleet } from '../src/spec/load.js';
import { preflight } from '../src/validate/preflight.js';

const ROOT = join(import.meta.dirname, '..');

function load(dir: string): LoadedFleet {
  const loaded = tryLoadFleet(dir);
  if ('findings' in loaded) throw new Error(`${dir} does not load: ${JSON.stringify(loaded.findings)}`);
  return loaded;
}

const shop = load(join(ROOT, 'examples', 'shop'));
const revision: Revision = render(shop).revision;
const policy = safetyPolicy(shop.fleet.recovery);
const NOW = Date.parse('2026-12-07T12:00:00Z');

const region = (name: string): Place => ({ kind: 'region', name });
const state = (evacuated: Place[] = [], lastChange: [string, number][] = []): RecoveryState => ({
  evacuated,
  lastChange: new Map(lastChange),
  now: NOW,
});
const ask = (place: Place, more: Partial<EvacuationRequest> = {}): EvacuationRequest => ({
  place,
  declaredDown: [],
  automated: false,
  disaster: false,
  ...more,
});

describe('evacuation safety rules', () => {
  it('lets one EU region go when the other can carry EU clients under the lock', () => {
    const v = checkEvacuation(revision, policy, state(), ask(region('eu-west')));
    expect(v.violations).toEqual([]);
    expect(v.allowed).toBe(true);
    expect(v.removedClusters).toEqual(['eu-west-1', 'eu-west-2']);
    const web = v.effects.find((e) => e.service === 'web');
    expect(web).toMatchObject({ demandRps: 7500, servableBeforeRps: 7500, servableAfterRps: 7500, lockedOut: [] });
  });

  it('refuses to leave locked EU clients with no cluster, naming the rule and the numbers', () => {
    const v = checkEvacuation(revision, policy, state([region('eu-west')]), ask(region('eu-central')));
    expect(v.allowed).toBe(false);
    const residency = v.violations.filter((x) => x.rule === 'residency');
    expect(residency.map((x) => x.numbers['service']).sort()).toEqual(['api', 'web'].filter((s) => s in revision.routing).sort());
    expect(residency[0]?.message).toMatch(
      /EU clients of \w+ would have no cluster left .*locks them to EU; 1 cluster\(s\) serve them now, 0 after/,
    );
    expect(residency[0]?.fix).toContain('--declare-down EU');
    // a declared disaster does not open residency
    expect(checkEvacuation(revision, policy, state([region('eu-west')]), ask(region('eu-central'), { disaster: true })).allowed).toBe(
      false,
    );
  });

  it('lets the evacuation through when the jurisdiction is declared down: its clients are not served abroad', () => {
    const v = checkEvacuation(revision, policy, state([region('eu-west')]), ask(region('eu-central'), { declaredDown: ['EU'] }));
    expect(v.violations).toEqual([]);
    expect(v.allowed).toBe(true);
    const web = v.effects.find((e) => e.service === 'web');
    expect(web?.lockedOut).toEqual(['EU']);
    // EU demand (1500 + 1200 rps) is no longer asked of anyone
    expect(web?.demandRps).toBe(7500 - 2700);
  });

  it('holds a place down after a change, unless a disaster is declared', () => {
    const changed = state([], [['region:us-west', NOW - 60_000]]);
    const v = checkEvacuation(revision, policy, changed, ask(region('us-west')));
    expect(v.allowed).toBe(false);
    expect(v.violations.map((x) => x.rule)).toEqual(['hold-down']);
    expect(v.violations[0]?.message).toBe('region us-west changed 1m ago; the hold-down of 5m has 4m left');
    const d = checkEvacuation(revision, policy, changed, ask(region('us-west'), { disaster: true }));
    expect(d.allowed).toBe(true);
    expect(d.overridden.map((x) => x.rule)).toEqual(['hold-down']);
    // past the hold-down it is free
    expect(checkEvacuation(revision, policy, state([], [['region:us-west', NOW - 300_000]]), ask(region('us-west'))).allowed).toBe(true);
  });

  it('refuses automated evacuations while the master switch is off', () => {
    const v = checkEvacuation(revision, policy, state(), ask(region('us-west'), { automated: true }));
    expect(v.allowed).toBe(false);
    expect(v.violations.map((x) => x.rule)).toEqual(['master-switch']);
    expect(
      checkEvacuation(revision, { ...policy, automatedEvacuations: true }, state(), ask(region('us-west'), { automated: true })).allowed,
    ).toBe(true);
  });

  it('refuses to go below the capacity floor, with the numbers; a declared disaster overrides it', () => {
    const gone = ['eu-west', 'us-east', 'us-west', 'ap-south'].map(region);
    const v = checkEvacuation(revision, policy, state(gone), ask(region('ap-northeast')));
    expect(v.allowed).toBe(false);
    const web = v.violations.find((x) => x.rule === 'capacity-floor' && x.numbers['service'] === 'web');
    expect(web?.numbers).toEqual({ service: 'web', demandRps: 7500, servableRps: 4000, floorRps: 7500, servableBeforeRps: 7000 });
    expect(web?.message).toContain('web could serve 4000 of 7500 rps expected (53.33 %) after the evacuation, below the floor of 100 %');
    const d = checkEvacuation(revision, policy, state(gone), ask(region('ap-northeast'), { disaster: true }));
    expect(d.allowed).toBe(true);
    expect(d.overridden.some((x) => x.rule === 'capacity-floor')).toBe(true);
    // a lower floor lets it through on its own
    expect(checkEvacuation(revision, { ...policy, capacityFloor: 0.5 }, state(gone), ask(region('ap-northeast'))).allowed).toBe(true);
  });

  it('names the places the fleet has when asked for one it does not', () => {
    const v = checkEvacuation(revision, policy, state(), ask({ kind: 'region', name: 'eu-wset' }));
    expect(v.allowed).toBe(false);
    expect(v.violations[0]).toMatchObject({ rule: 'unknown-place', message: 'the fleet has no region eu-wset' });
    expect(v.violations[0]?.fix).toContain('eu-west');
  });
});

describe('recovery policy', () => {
  it('reads the example fleet and falls back to safe defaults', () => {
    expect(policy).toEqual({ capacityFloor: 1, holdDownMs: 300_000, automatedEvacuations: false });
    expect(safetyPolicy(undefined)).toBe(DEFAULT_SAFETY);
    expect(rtoMs(shop.fleet.recovery, 'web', 'eu-west')).toBe(30_000);
    expect(rtoMs(shop.fleet.recovery, 'api', 'eu-west')).toBe(120_000);
    expect(rtoMs(undefined, 'web', null)).toBeNull();
  });

  it('makes preflight hold a region loss to the policy floor instead of 100 %', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-floor-'));
    cpSync(join(ROOT, 'testdata', 'failover-capacity-short'), dir, { recursive: true });
    const run = async () => {
      const loaded = load(dir);
      return (await preflight({ loaded, rendered: render(loaded), now: new Date(NOW), env: {} })).map((f) => f.code);
    };
    expect(await run()).toContain('MERIDIAN_E_FAILOVER_CAPACITY');
    // losing eu-west leaves 600 of the 700 rps servable (EU clients are locked to eu-central-1's 300 rps): 85.7 %
    const yaml = readFileSync(join(dir, 'fleet.yaml'), 'utf8');
    writeFileSync(join(dir, 'fleet.yaml'), `${yaml}\nrecovery:\n  safety: { capacityFloor: 85% }\n`);
    expect(await run()).not.toContain('MERIDIAN_E_FAILOVER_CAPACITY');
    writeFileSync(join(dir, 'fleet.yaml'), `${yaml}\nrecovery:\n  safety: { capacityFloor: 90% }\n`);
    expect(await run()).toContain('MERIDIAN_E_FAILOVER_CAPACITY');
  });

  it('refuses a disaster class with nobody allowed to declare it, at its line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-disaster-'));
    cpSync(join(ROOT, 'testdata', '_valid'), dir, { recursive: true });
    const yaml = readFileSync(join(dir, 'fleet.yaml'), 'utf8');
    writeFileSync(join(dir, 'fleet.yaml'), `${yaml}\nrecovery:\n  incidents:\n    - name: region-loss\n      disaster: true\n`);
    const loaded = tryLoadFleet(dir);
    expect('findings' in loaded).toBe(true);
    const findings = 'findings' in loaded ? loaded.findings : [];
    expect(findings.map((f) => [f.code, f.path])).toEqual([['MERIDIAN_E_MISSING_KEY', 'recovery.incidents[0].disaster']]);
    expect(findings[0]?.fix).toContain('recovery: { disaster: { approvals:');
  });
});
