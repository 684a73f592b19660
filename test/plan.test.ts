import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MeridianError } from '../src/errors.js';
import { blastRadius } from '../src/plan/blast-radius.js';
import { diffClusters, diffFlags, diffRouting, type RecordedCluster } from '../src/plan/diff.js';
import { formatPlan } from '../src/plan/format-plan.js';
import { baselineRevisionId, makePlan, type Plan, verifyPlan } from '../src/plan/plan.js';
import type { Revision } from '../src/render/render.js';
import type { FleetInput } from '../src/spec/schema.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { build, shopInput, shopNext, steppingClock } from './support/plan-fixtures.js';
import { expectGolden } from './support/golden.js';

const golden = join(import.meta.dirname, 'golden', 'plan');
const tmp = mkdtempSync(join(tmpdir(), 'meridian-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function checkGolden(name: string, text: string): void {
  expectGolden(join(golden, name), text);
}

/** Records every cluster of a revision as running it. */
function recordedFrom(rev: Revision): Record<string, RecordedCluster> {
  return Object.fromEntries(Object.entries(rev.clusters).map(([name, state]) => [name, { revisionId: rev.id, state }]));
}

/** The shop fleet plus an api-only batch cluster that no change touches. */
function withBatch(input: FleetInput): FleetInput {
  input.clusters = {
    ...input.clusters,
    'eu-central-2': { region: 'eu-central', driver: 'local', capacity: { rps: 100 }, labels: { role: 'batch' } },
  };
  const web = input.services?.['web'];
  if (web) web.placement = { exclude: { labels: { role: 'batch' } } };
  return input;
}

/** Now: the shop fleet at web 2.4.0. Next: web 2.5.0, a new US-West cluster, eu-west-2 gone, routing and a flag changed. */
function scenario(): { now: ReturnType<typeof build>; next: ReturnType<typeof build> } {
  const now = build(withBatch(shopInput()));
  const n = withBatch(shopNext());
  n.regions = { ...n.regions, 'us-west': { jurisdiction: 'US', location: { lat: 37.77, lon: -122.42 }, countries: ['CA'] } };
  const clusters: NonNullable<FleetInput['clusters']> = {
    ...n.clusters,
    'us-west-1': { region: 'us-west', driver: 'local', capacity: { rps: 300 } },
  };
  delete clusters['eu-west-2'];
  const usEast = clusters['us-east-1'];
  if (usEast) clusters['us-east-1'] = { ...usEast, weight: 2 };
  n.clusters = clusters;
  n.routing = { web: { steering: 'latency', residency: { EU: { allow: ['EU'], mode: 'lock' }, US: { allow: ['US'], mode: 'prefer' } } } };
  n.flags = { 'new-checkout': { regions: { 'eu-west': { enabled: true, percent: 20 } } } };
  return { now, next: build(n) };
}

const shares = {
  'eu-west': { 'eu-west-1': 0.7, 'eu-central-1': 0.3 },
  'eu-central': { 'eu-central-1': 0.8, 'eu-west-1': 0.2 },
  'us-east': { 'us-east-1': 0.9, 'us-west-1': 0.1 },
  'us-west': { 'us-west-1': 0.6, 'us-east-1': 0.4 },
};

function scenarioPlan(now?: Date): Plan {
  const s = scenario();
  return makePlan({
    fleet: s.next.fleet,
    revision: s.next.revision,
    previous: s.now.revision,
    recorded: recordedFrom(s.now.revision),
    shares,
    now,
  });
}

describe('diffClusters', () => {
  it('says per cluster whether it is created, updated, unchanged or removed, and what changes field by field', () => {
    const s = scenario();
    const diff = diffClusters(recordedFrom(s.now.revision), s.next.revision);
    expect(Object.fromEntries(Object.entries(diff).map(([k, d]) => [k, d.action]))).toEqual({
      'eu-central-1': 'update',
      'eu-central-2': 'unchanged',
      'eu-west-1': 'update',
      'eu-west-2': 'remove',
      'us-east-1': 'update',
      'us-west-1': 'create',
    });
    expect(diff['eu-west-1']?.changes).toEqual([
      {
        service: 'web',
        field: 'image',
        from: `ghcr.io/acme/web:2.4.0@sha256:${'1'.repeat(64)}`,
        to: `ghcr.io/acme/web:2.5.0@sha256:${'3'.repeat(64)}`,
      },
      { service: 'web', field: 'version', from: '2.4.0', to: '2.5.0' },
      { service: 'web', field: 'env.FEATURE_X', from: null, to: 'on' },
      { service: 'web', field: 'env.LOG_LEVEL', from: 'info', to: 'debug' },
    ]);
    expect(diff['us-east-1']?.changes[0]).toEqual({ service: null, field: 'cluster.weight', from: 1, to: 2 });
    expect(diff['us-west-1']).toEqual({
      action: 'create',
      from: null,
      to: s.next.revision.id,
      changes: [
        { service: 'api', field: 'service', from: null, to: '1.5.0' },
        { service: 'web', field: 'service', from: null, to: '2.5.0' },
      ],
    });
    expect(diff['eu-west-2']).toMatchObject({ action: 'remove', from: s.now.revision.id, to: null });
    expect(diff['eu-west-2']?.changes).toEqual([
      { service: 'api', field: 'service', from: '1.5.0', to: null },
      { service: 'web', field: 'service', from: '2.4.0', to: null },
    ]);
    expect(diff['eu-central-2']?.changes).toEqual([]);
  });

  it('names map keys, secrets by their reference, resources, requires, ingress and health', () => {
    const a = shopInput();
    const b = shopInput();
    const web = b.services?.['web'];
    if (!web) throw new Error('fixture');
    web.secrets = { DB_PASSWORD: { ref: 'vault:kv/web/db2#password' } };
    web.resources = { cpu: '500m', memory: '256Mi' };
    web.requires = { api: '>=1.5.0 <2.0.0' };
    web.ingress = { host: 'web.example', tls: true };
    web.health = { path: '/ready' };
    web.config = {};
    web.replicas = 3;
    web.port = 8081;
    const ra = build(a).revision;
    const rb = build(b).revision;
    const fields = diffClusters(recordedFrom(ra), rb)['eu-west-1']?.changes.map(
      (c) => `${c.service}.${c.field}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`,
    );
    expect(fields).toEqual([
      'web.replicas: 2 -> 3',
      'web.port: 8080 -> 8081',
      'web.resources.cpu: "250m" -> "500m"',
      'web.config.CHECKOUT_TIMEOUT: "5s" -> null',
      'web.secrets.DB_PASSWORD: "vault:kv/web/db#password" -> "vault:kv/web/db2#password"',
      'web.requires.api: ">=1.4.0 <2.0.0" -> ">=1.5.0 <2.0.0"',
      'web.ingress: null -> {"host":"web.example","tls":true}',
      'web.health: {"path":"/healthz"} -> {"path":"/ready"}',
    ]);
  });

  it('treats a cluster with nothing recorded as created, and an identical one as unchanged', () => {
    const { revision } = build(shopInput());
    expect(Object.values(diffClusters({}, revision)).map((d) => d.action)).toEqual(['create', 'create', 'create', 'create']);
    expect(Object.values(diffClusters({ 'eu-west-1': undefined }, revision)).every((d) => d.action === 'create')).toBe(true);
    expect(
      Object.values(diffClusters(recordedFrom(revision), revision)).every((d) => d.action === 'unchanged' && d.changes.length === 0),
    ).toBe(true);
  });
});

describe('routing and flag changes', () => {
  it('lists what changed in each routed service, key by key', () => {
    const s = scenario();
    expect(diffRouting(s.now.revision, s.next.revision)).toEqual([
      { service: 'web', field: 'residency.US', from: null, to: { allow: ['US'], mode: 'prefer' } },
      { service: 'web', field: 'steering', from: 'proximity', to: 'latency' },
    ]);
    expect(diffFlags(s.now.revision, s.next.revision)).toEqual([
      {
        service: 'new-checkout',
        field: 'flag',
        from: null,
        to: { default: false, regions: { 'eu-west': { enabled: true, percent: 20 } } },
      },
    ]);
  });

  it('treats every route as new when there is no previous revision, and nothing as changed against itself', () => {
    const { revision } = build(shopInput());
    expect(diffRouting(undefined, revision).map((c) => [c.service, c.field, c.from])).toEqual([['web', 'routing', null]]);
    expect(diffRouting(revision, revision)).toEqual([]);
  });
});

describe('blastRadius', () => {
  const waves = [
    { name: 'canary', clusters: ['a'], steps: [{ weight: 5 }, { weight: 25 }, { weight: 100 }] },
    { name: 'empty', clusters: [], steps: [{ weight: 100 }] },
    { name: 'rest', clusters: ['b', 'c'], steps: [{ weight: 50 }, { weight: 100 }] },
  ];

  it('adds the finished waves in full and the current wave at its step weight, per client region', () => {
    const br = blastRadius(waves, ['a', 'b'], { r1: { a: 0.5, b: 0.25, c: 0.25 }, r2: { c: 1 } });
    expect(br.regions).toEqual(['r1', 'r2']);
    expect(br.steps).toEqual([
      { wave: 'canary', step: 1, weight: 5, share: { r1: 0.025, r2: 0 } },
      { wave: 'canary', step: 2, weight: 25, share: { r1: 0.125, r2: 0 } },
      { wave: 'canary', step: 3, weight: 100, share: { r1: 0.5, r2: 0 } },
      { wave: 'rest', step: 1, weight: 50, share: { r1: 0.625, r2: 0 } }, // c does not change: r2 is never exposed
      { wave: 'rest', step: 2, weight: 100, share: { r1: 0.75, r2: 0 } },
    ]);
  });

  it('rounds to 4 decimals only in the output, not while adding up', () => {
    const w = [1, 2, 3].map((i) => ({ name: `w${i}`, clusters: [`c${i}`], steps: [{ weight: 100 }] }));
    const br = blastRadius(w, ['c1', 'c2', 'c3'], { r: { c1: 0.00004, c2: 0.00004, c3: 0.00004 } });
    expect(br.steps.map((s) => s.share['r'])).toEqual([0, 0.0001, 0.0001]); // 0.00004, 0.00008, 0.00012 exactly
    const third = blastRadius([{ name: 'w', clusters: ['a'], steps: [{ weight: 33 }] }], ['a'], { r: { a: 1 / 3 } });
    expect(third.steps[0]?.share['r']).toBe(0.11);
  });

  it('refuses shares that are not fractions, or that add up to more than the whole', () => {
    for (const bad of [{ r: { a: -0.1 } }, { r: { a: 1.5 } }, { r: { a: Number.NaN } }, { r: { a: 0.6, b: 0.6 } }]) {
      const err = (() => {
        try {
          blastRadius(waves, ['a'], bad);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect((err as MeridianError).code).toBe('MERIDIAN_E_PLAN_SHARES');
    }
  });
});

describe('makePlan', () => {
  it('plans the scenario: waves with members and steps, what changes, blast radius and a summary', () => {
    const s = scenario();
    const plan = scenarioPlan();
    expect(plan.apiVersion).toBe('meridian/plan/v1');
    expect(plan.revision).toBe(s.next.revision.id);
    expect(plan.previous).toBe(s.now.revision.id);
    expect(plan.from).toEqual({
      'eu-central-1': s.now.revision.id,
      'eu-central-2': s.now.revision.id,
      'eu-west-1': s.now.revision.id,
      'eu-west-2': s.now.revision.id,
      'us-east-1': s.now.revision.id,
      'us-west-1': null,
    });
    expect(plan.waves.map((w) => [w.name, w.clusters, w.changed, w.steps.map((x) => x.weight)])).toEqual([
      ['canary', ['eu-west-1'], ['eu-west-1'], [5, 25, 100]],
      ['europe', ['eu-central-1', 'eu-central-2'], ['eu-central-1'], [10, 50, 100]],
      ['rest', ['us-east-1', 'us-west-1'], ['us-east-1', 'us-west-1'], [10, 50, 100]],
    ]);
    expect(plan.waves[1]).toMatchObject({ approvals: { count: 1, roles: ['release-manager'] }, maxParallel: 2, bake: null });
    expect(plan.waves[2]).toMatchObject({ bake: '2m', approvals: null });
    expect(plan.summary).toEqual({
      clusters: 6,
      create: 1,
      update: 3,
      unchanged: 1,
      remove: 1,
      changes: 17,
      routingChanges: 2,
      flagChanges: 1,
      waves: 3,
    });
    const at = (wave: string, step: number): Record<string, number> | undefined =>
      plan.blastRadius.steps.find((x) => x.wave === wave && x.step === step)?.share;
    expect(at('canary', 1)).toEqual({ 'eu-central': 0.01, 'eu-west': 0.035, 'us-east': 0, 'us-west': 0 });
    expect(at('europe', 2)).toEqual({ 'eu-central': 0.6, 'eu-west': 0.85, 'us-east': 0, 'us-west': 0 });
    expect(at('rest', 3)).toEqual({ 'eu-central': 1, 'eu-west': 1, 'us-east': 1, 'us-west': 1 });
  });

  it('is deterministic: the same input gives the same bytes, whatever the order of the recorded map', () => {
    const s = scenario();
    const rec = recordedFrom(s.now.revision);
    const reversed = Object.fromEntries(Object.entries(rec).reverse());
    const a = makePlan({ fleet: s.next.fleet, revision: s.next.revision, previous: s.now.revision, recorded: rec, shares });
    const b = makePlan({ fleet: s.next.fleet, revision: s.next.revision, previous: s.now.revision, recorded: reversed, shares });
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(formatPlan(b)).toBe(formatPlan(a));
  });

  it('leaves the time it was made out of the hash, but not the blast radius inputs', () => {
    const a = scenarioPlan(new Date('2026-05-01T10:00:00Z'));
    const b = scenarioPlan(new Date('2026-06-01T10:00:00Z'));
    expect(a.createdAt).toBe('2026-05-01T10:00:00.000Z');
    expect(a.hash).toBe(b.hash);
    const s = scenario();
    const other = makePlan({
      fleet: s.next.fleet,
      revision: s.next.revision,
      previous: s.now.revision,
      recorded: recordedFrom(s.now.revision),
      shares: { ...shares, 'eu-west': { 'eu-west-1': 0.5, 'eu-central-1': 0.5 } },
    });
    expect(other.hash).not.toBe(a.hash);
  });

  it('is golden: the plan as JSON and as text', () => {
    const plan = scenarioPlan();
    checkGolden('scenario.plan.json', `${JSON.stringify(plan, null, 2)}\n`);
    checkGolden('scenario.txt', formatPlan(plan));
  });

  it('colours only when asked, and the coloured text says the same', () => {
    const plan = scenarioPlan();
    const plain = formatPlan(plan, { color: false });
    const colored = formatPlan(plan, { color: true });
    expect(plain).not.toContain('\u001b[');
    expect(colored).toContain('\u001b[32m+ web.env.FEATURE_X on\u001b[39m');
    // eslint-disable-next-line no-control-regex
    expect(colored.replace(/\u001b\[\d+m/g, '')).toBe(plain);
  });

  it('groups clusters with the same changes on one line', () => {
    const a = build(shopInput());
    const b = build(shopNext());
    const text = formatPlan(
      makePlan({ fleet: b.fleet, revision: b.revision, previous: a.revision, recorded: recordedFrom(a.revision), shares: {} }),
    );
    expect(text).toContain(`  eu-central-1, eu-west-1, eu-west-2, us-east-1  update (runs ${a.revision.id})\n    ~ web.image`);
    expect(text).toContain('(no traffic shares were given)');
  });
});

describe('verifyPlan', () => {
  const saved = (): Record<string, unknown> =>
    JSON.parse(JSON.stringify(scenarioPlan(new Date('2026-05-01T10:00:00Z')))) as Record<string, unknown>;
  const codeOf = (f: () => unknown): string | undefined => {
    try {
      f();
      return undefined;
    } catch (e) {
      return (e as MeridianError).code;
    }
  };

  it('accepts a plan read back from its JSON file, even with another createdAt', () => {
    const p = saved();
    expect(verifyPlan(p).hash).toBe(p['hash']);
    expect(verifyPlan({ ...p, createdAt: '2030-01-01T00:00:00.000Z' }).hash).toBe(p['hash']);
    expect(verifyPlan(p, { fleet: 'shop', revision: String(p['revision']) }).revision).toBe(p['revision']);
  });

  it('finds any edit: a wave, an approval, a share, a change', () => {
    const edits: ((p: Plan) => void)[] = [
      (p) => ((p.waves[1] as { approvals: unknown }).approvals = null),
      (p) => ((p.waves[0]?.steps[0] as { weight: number }).weight = 50),
      (p) => ((p.blastRadius.steps[0]?.share as Record<string, number>)['eu-west'] = 0),
      (p) => (p.clusters['eu-west-1']?.changes as unknown[]).pop(),
      (p) => ((p as { revision: string }).revision = '0000000000000000'),
    ];
    for (const edit of edits) {
      const p = saved() as unknown as Plan;
      edit(p);
      expect(codeOf(() => verifyPlan(p))).toBe('MERIDIAN_E_PLAN_TAMPERED');
    }
  });

  it('refuses what is not a plan of this version, and a plan for another revision', () => {
    expect(codeOf(() => verifyPlan([]))).toBe('MERIDIAN_E_PLAN_INVALID');
    expect(codeOf(() => verifyPlan({ ...saved(), apiVersion: 'meridian/plan/v0' }))).toBe('MERIDIAN_E_PLAN_INVALID');
    expect(codeOf(() => verifyPlan({ ...saved(), waves: undefined }))).toBe('MERIDIAN_E_PLAN_INVALID');
    expect(codeOf(() => verifyPlan(saved(), { revision: 'ffffffffffffffff' }))).toBe('MERIDIAN_E_PLAN_MISMATCH');
    expect(codeOf(() => verifyPlan(saved(), { fleet: 'other' }))).toBe('MERIDIAN_E_PLAN_MISMATCH');
  });
});

describe('baselineRevisionId', () => {
  it('picks the revision most clusters run, then the most recently updated', () => {
    expect(baselineRevisionId({})).toBeNull();
    const { revision } = build(shopInput());
    const st = revision.clusters['eu-west-1'];
    if (!st) throw new Error('fixture');
    const r = (id: string, updatedAt: string) => ({ revisionId: id, state: st, updatedAt });
    expect(baselineRevisionId({ a: r('x', '1'), b: r('y', '2'), c: r('x', '0') })).toBe('x');
    expect(baselineRevisionId({ a: r('x', '1'), b: r('y', '2') })).toBe('y');
  });
});

describe('planning against the store', () => {
  it('reads what clusters run, records the new revision once, and audits it once', async () => {
    const store = await openSqliteStore(join(tmp, 'state.db'), { clock: steppingClock() });
    try {
      const s = scenario();
      const ci = { id: 'ci', via: 'github-actions' };
      await store.withTransaction(async (tx) => {
        await tx.putRevision(s.now.revision, ci, 'initial');
        for (const [name, state] of Object.entries(s.now.revision.clusters))
          await tx.recordClusterState(name, s.now.revision.id, state, 'healthy', ci);
      });
      const planOnce = async (): Promise<{ plan: Plan; created: boolean }> => {
        const recorded = await store.clusterStates();
        const prevId = baselineRevisionId(recorded);
        const previous = prevId ? await store.getRevision(prevId) : undefined;
        const plan = makePlan({ fleet: s.next.fleet, revision: s.next.revision, previous, recorded, shares });
        const { created } = await store.putRevision(s.next.revision, ci, `plan ${plan.hash.slice(0, 12)}`);
        return { plan, created };
      };
      const first = await planOnce();
      const second = await planOnce();
      expect([first.created, second.created]).toEqual([true, false]);
      expect(second.plan.hash).toBe(first.plan.hash);
      expect(first.plan.hash).toBe(scenarioPlan().hash); // the store round trip changes nothing
      const creates = (await store.listAudit()).filter((e) => e.action === 'revision.create');
      expect(creates.map((e) => e.subject)).toEqual([s.now.revision.id, s.next.revision.id]);
      expect(await store.verifyAudit()).toMatchObject({ ok: true });
    } finally {
      await store.close();
    }
  });
});
