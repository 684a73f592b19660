/** The per-request decision: each step of docs/routing.md, against hand-built revisions. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RenderedService, Revision } from '../src/render/render.js';
import { createDecision, decide, nextAttempt, type Decision } from '../src/routing/decide.js';
import { explain } from '../src/routing/explain.js';
import { biasedDistance, haversineKm } from '../src/routing/geo.js';
import { BUCKETS, FNV_OFFSET, fnv1aString, userBucket } from '../src/routing/hash.js';
import { regionOrder } from '../src/routing/model.js';
import { IDEMPOTENT_METHODS, isIdempotent, RetryBudget, retryBudgetFor } from '../src/routing/retry-budget.js';
import { simulatedState, type RoutingState } from '../src/routing/state.js';
import { buildRoutingTable, type RoutingTable } from '../src/routing/table.js';
import { clusterShares, trafficTable, type ClientTraffic } from '../src/routing/traffic-table.js';
import { Flag, Routing } from '../src/spec/schema.js';

// ---- a small world, built by hand -------------------------------------------------------------

interface RegionSpec {
  j: string;
  at: [number, number];
  countries?: string[];
  rps?: number;
}
interface ClusterSpec {
  region: string;
  rps?: number;
  weight?: number;
  priority?: number;
  /** service → version; default { web: '1.0.0', api: '1.0.0' } */
  runs?: Record<string, string>;
}

function svc(version: string): RenderedService {
  return {
    image: 'example/app@sha256:0',
    digest: null,
    version,
    port: 8080,
    replicas: 1,
    resources: {},
    health: null,
    requires: {},
    env: {},
    config: {},
    secrets: {},
    ingress: null,
    local: null,
  };
}

function revision(
  regions: Record<string, RegionSpec>,
  clusters: Record<string, ClusterSpec>,
  routing: Record<string, unknown> = {},
  flags: Record<string, unknown> = {},
): Revision {
  return {
    id: 'test',
    fleet: 'test',
    regions: Object.fromEntries(
      Object.entries(regions).map(([k, r]) => [
        k,
        { jurisdiction: r.j, location: { lat: r.at[0], lon: r.at[1] }, countries: r.countries ?? [], trafficRps: r.rps ?? null },
      ]),
    ),
    clusters: Object.fromEntries(
      Object.entries(clusters).map(([k, c]) => [
        k,
        {
          region: c.region,
          jurisdiction: regions[c.region]?.j ?? '',
          driver: 'local' as const,
          target: null,
          capacity: { rps: c.rps ?? 1000 },
          weight: c.weight ?? 1,
          priority: c.priority ?? null,
          labels: {},
          services: Object.fromEntries(Object.entries(c.runs ?? { web: '1.0.0', api: '1.0.0' }).map(([s, v]) => [s, svc(v)])),
          hash: k,
        },
      ]),
    ),
    routing: Object.fromEntries(Object.entries(routing).map(([k, r]) => [k, Routing.parse(r)])),
    flags: Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, Flag.parse(f)])),
  };
}

const REGIONS: Record<string, RegionSpec> = {
  'eu-west': { j: 'EU', at: [53.35, -6.26], countries: ['IE', 'GB', 'FR'] },
  'eu-central': { j: 'EU', at: [50.11, 8.68], countries: ['DE', 'AT'] },
  'us-east': { j: 'US', at: [38.9, -77.04], countries: ['US', 'CA'] },
  'us-west': { j: 'US', at: [45.52, -122.68], countries: ['MX'] },
  'ap-south': { j: 'APAC', at: [19.07, 72.88], countries: ['IN'] },
};
const CLUSTERS: Record<string, ClusterSpec> = {
  'eu-west-1': { region: 'eu-west' },
  'eu-west-2': { region: 'eu-west' },
  'eu-central-1': { region: 'eu-central' },
  'us-east-1': { region: 'us-east' },
  'us-west-1': { region: 'us-west' },
  'ap-south-1': { region: 'ap-south' },
};
const RESIDENCY = {
  EU: { allow: ['EU'], mode: 'lock' },
  APAC: { allow: ['APAC'], mode: 'prefer' },
  default: { allow: ['US', 'EU', 'APAC'], mode: 'prefer' },
};
const WORLD = revision(REGIONS, CLUSTERS, {
  web: { residency: RESIDENCY },
  api: { failover: { 'eu-west': ['us-east'] }, bias: { 'eu-west': 50 } },
});

const down = (...clusters: string[]): RoutingState => simulatedState({ down: clusters });

/** Shares of one client region's traffic per cluster (stable + canary), without the zero ones. */
function shares(traffic: ClientTraffic | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [c, v] of Object.entries(traffic?.clusters ?? {})) out[c] = Math.round((v.stable + v.canary) * 1e9) / 1e9;
  return out;
}

function sample(t: RoutingTable, service: string, country: string, n: number, f: (d: Decision) => void): void {
  const d = createDecision();
  for (let i = 0; i < n; i++) f(decide(t, service, country, undefined, (i + 0.5) / n, d));
}

// ---- step 1: who is asking ----------------------------------------------------------------------

describe('1. who is asking', () => {
  const t = buildRoutingTable(WORLD);
  it('maps a country (either case) or a region name to the home region', () => {
    expect(decide(t, 'web', 'DE', undefined, 0.3).home).toBe('eu-central');
    expect(decide(t, 'web', 'de', undefined, 0.3).home).toBe('eu-central');
    expect(decide(t, 'web', 'eu-central', undefined, 0.3).home).toBe('eu-central');
    expect(decide(t, 'web', 'DE', undefined, 0.3).cluster).toBe('eu-central-1');
  });

  it('a country no region lists has no home region and gets the `default` rule, one level over every region', () => {
    const d = decide(t, 'web', 'ZZ', undefined, 0.3);
    expect(d.home).toBeNull();
    expect(d.kind).toBe('primary');
    const e = explain(t, 'web', 'ZZ', undefined);
    expect(e.residency).toMatchObject({ source: 'default', rule: { mode: 'prefer' } });
    expect(e.levels).toHaveLength(1);
    const row = trafficTable(WORLD).services['web']?.['(unknown)'];
    for (const c of Object.keys(CLUSTERS)) expect(shares(row)[c]).toBeCloseTo(1 / 6, 8);
  });

  it('an unknown service is answered as such', () => {
    expect(decide(t, 'nope', 'DE', undefined, 0.3).kind).toBe('unknown-service');
  });
});

// ---- step 2: residency --------------------------------------------------------------------------

describe('2. residency', () => {
  it('lock: with every EU cluster down the EU clients stay in the EU (panic inside the allowed set), never US', () => {
    const state = down('eu-west-1', 'eu-west-2', 'eu-central-1');
    const t = buildRoutingTable(WORLD, state);
    for (const country of ['IE', 'DE', 'FR']) {
      sample(t, 'web', country, 2000, (d) => {
        expect(d.kind).toBe('panic');
        expect(d.cluster?.startsWith('eu-')).toBe(true);
      });
    }
    const ie = trafficTable(WORLD, state).services['web']?.['eu-west'];
    expect(Object.keys(shares(ie)).sort()).toEqual(['eu-central-1', 'eu-west-1', 'eu-west-2']);
    expect(ie?.rejected).toBe(0);
  });

  it('lock: when nothing allowed is left the answer is residency-reject, never a wider set', () => {
    const state = simulatedState({ drain: ['eu-west', 'eu-central'] });
    const t = buildRoutingTable(WORLD, state);
    sample(t, 'web', 'DE', 500, (d) => {
      expect(d.kind).toBe('residency-reject');
      expect(d.cluster).toBeNull();
    });
    expect(trafficTable(WORLD, state).services['web']?.['eu-central']).toEqual({
      clusters: {},
      rejected: 1,
      rejectedBy: { 'residency-reject': 1 },
    });
    // other clients are unaffected
    expect(decide(t, 'web', 'US', undefined, 0.5).cluster).toBe('us-east-1');
    const e = explain(t, 'web', 'DE', 'u1');
    expect(e.residency.outcome).toBe('residency-reject');
    expect(e.excluded.find((x) => x.cluster === 'us-east-1')?.reason).toBe('residency');
    expect(e.excluded.find((x) => x.cluster === 'eu-west-1')?.reasons).toEqual(['drained']);
  });

  it('prefer: stays on the allowed clusters while any can serve, even in panic', () => {
    const t = buildRoutingTable(WORLD, simulatedState({ degraded: { 'ap-south-1': 0.9 } }));
    sample(t, 'web', 'IN', 1000, (d) => {
      expect(d.cluster).toBe('ap-south-1');
      expect(d.kind).toBe('panic'); // 10% healthy is under the 50% panic threshold: health is ignored inside APAC
    });
  });

  it('prefer: widens to every jurisdiction only when no allowed cluster can serve', () => {
    const t = buildRoutingTable(WORLD, down('ap-south-1'));
    sample(t, 'web', 'IN', 1000, (d) => {
      expect(d.kind).toBe('residency-widened');
      expect(d.cluster).toBe('eu-central-1'); // the nearest region to Mumbai that can serve
    });
    expect(decide(buildRoutingTable(WORLD), 'web', 'IN', undefined, 0.5)).toMatchObject({ kind: 'primary', cluster: 'ap-south-1' });
  });
});

// ---- step 3: eligibility ------------------------------------------------------------------------

describe('3. eligible clusters', () => {
  it('excludes clusters that do not run the service, drained ones and those behind a closed flag gate, and says why', () => {
    const world = revision(
      REGIONS,
      { ...CLUSTERS, 'eu-west-2': { region: 'eu-west', runs: { api: '1.0.0' } } },
      { web: { residency: RESIDENCY, flag: 'web-on' } },
      { 'web-on': { default: true, regions: { 'eu-central': { enabled: false } } } },
    );
    const t = buildRoutingTable(world, simulatedState({ drain: ['us-west-1'] }));
    const e = explain(t, 'web', 'US', 'someone');
    const reason = (c: string): readonly string[] | undefined => e.candidates.find((x) => x.cluster === c)?.excluded;
    expect(reason('eu-west-2')).toEqual(['not-serving']);
    expect(reason('us-west-1')).toEqual(['drained']);
    expect(reason('eu-central-1')).toEqual(['flag-closed']);
    expect(reason('us-east-1')).toEqual([]);
  });

  it('ejected and unhealthy clusters stay in their level (they count in its health) but get no traffic', () => {
    const t = buildRoutingTable(WORLD, { ejected: { 'eu-west-1': true } });
    const e = explain(t, 'web', 'IE', undefined);
    expect(e.candidates.find((c) => c.cluster === 'eu-west-1')).toMatchObject({ eligible: true, state: 'ejected', level: 0, share: 0 });
    expect(e.levels[0]).toMatchObject({ healthyPercent: 50, health: 70, envoyLoad: 70 });
  });
});

// ---- step 4: priority levels --------------------------------------------------------------------

describe('4. priority levels', () => {
  it('after the home region comes the failover list, in order, before nearer regions', () => {
    const state = down('eu-west-1', 'eu-west-2');
    expect(decide(buildRoutingTable(WORLD, state), 'api', 'IE', undefined, 0.5)).toMatchObject({
      cluster: 'us-east-1',
      kind: 'spillover',
      priority: 1,
    });
    // web has no failover list: the nearest region (Frankfurt, not Virginia)
    expect(decide(buildRoutingTable(WORLD, state), 'web', 'IE', undefined, 0.5)).toMatchObject({
      cluster: 'eu-central-1',
      kind: 'spillover',
    });
  });

  it('orders the remaining regions by distance with a Route 53 geoproximity bias', () => {
    // Route 53's worked example: A at 150 km with bias +50 counts as 75 km and beats B at 100 km
    expect(biasedDistance(150, 50)).toBe(75);
    expect(biasedDistance(100, -50)).toBe(200); // negative: d / (1 + bias/100), the inverse of +50
    expect(biasedDistance(100, 0)).toBe(100);
    const dcPortland = haversineKm({ lat: 38.9, lon: -77.04 }, { lat: 45.52, lon: -122.68 });
    const dcDublin = haversineKm({ lat: 38.9, lon: -77.04 }, { lat: 53.35, lon: -6.26 });
    expect(dcPortland).toBeLessThan(dcDublin);
    expect(dcDublin * 0.5).toBeLessThan(dcPortland);
    const t = buildRoutingTable(WORLD, down('us-east-1'));
    // web: no bias → Portland; api: eu-west +50 → Dublin is "closer" than Portland
    expect(decide(t, 'web', 'US', undefined, 0.5).cluster).toBe('us-west-1');
    expect(decide(t, 'api', 'US', undefined, 0.5).region).toBe('eu-west');
  });

  it('orders by measured latency with steering: latency (unmeasured regions follow, by distance)', () => {
    const world = revision(REGIONS, CLUSTERS, { api: { steering: 'latency' } });
    const latency = { 'eu-west': { 'us-east': 20, 'eu-central': 80 } };
    const t = buildRoutingTable(world, { ...down('eu-west-1', 'eu-west-2'), latency });
    expect(decide(t, 'api', 'IE', undefined, 0.5).cluster).toBe('us-east-1');
    const order = regionOrder(t.model, t.serviceIndex.get('api') ?? -1, t.homeIndex.get('IE') ?? -1);
    const byRank = [...t.regions].sort((a, b) => (order.rank[t.regions.indexOf(a)] ?? 0) - (order.rank[t.regions.indexOf(b)] ?? 0));
    expect(byRank).toEqual(['eu-west', 'us-east', 'eu-central', 'us-west', 'ap-south']);
  });

  it('steering: weighted puts every region in one level', () => {
    const world = revision(REGIONS, CLUSTERS, { api: { steering: 'weighted' } });
    const row = trafficTable(world).services['api']?.['eu-west'];
    expect(Object.keys(shares(row))).toHaveLength(6);
  });

  it("a cluster's explicit priority orders clusters inside a region: priority 1 is the region's backup", () => {
    const world = revision(REGIONS, { ...CLUSTERS, 'eu-west-2': { region: 'eu-west', priority: 1 } }, { web: { residency: RESIDENCY } });
    expect(shares(trafficTable(world).services['web']?.['eu-west'])).toEqual({ 'eu-west-1': 1 });
    const failed = trafficTable(world, down('eu-west-1')).services['web']?.['eu-west'];
    expect(shares(failed)).toEqual({ 'eu-west-2': 1 });
  });

  it('a drained home region sends its clients elsewhere as failover, not as primary', () => {
    const t = buildRoutingTable(WORLD, simulatedState({ drain: ['eu-central'] }));
    expect(decide(t, 'web', 'DE', undefined, 0.5)).toMatchObject({ region: 'eu-west', kind: 'spillover', priority: 0 });
  });
});

// ---- step 5: load across priorities -------------------------------------------------------------

describe('5. load across priorities', () => {
  it("follows Envoy's arithmetic: half the home region down → 70% home, 30% to the next level", () => {
    const tt = trafficTable(WORLD, down('eu-west-1'));
    expect(shares(tt.services['web']?.['eu-west'])).toEqual({ 'eu-west-2': 0.7, 'eu-central-1': 0.3 });
    let home = 0;
    sample(buildRoutingTable(WORLD, down('eu-west-1')), 'web', 'IE', 10_000, (d) => (home += d.cluster === 'eu-west-2' ? 1 : 0));
    expect(home).toBe(7000); // evenly spaced random numbers hit the cumulative shares exactly
  });

  it('degraded clusters count with weight × (1 − degraded)', () => {
    // eu-west: 2 × (1 − 0.5) of 2 → 50% healthy → health 70
    const tt = trafficTable(WORLD, simulatedState({ degraded: { 'eu-west-1': 0.5, 'eu-west-2': 0.5 } }));
    expect(shares(tt.services['web']?.['eu-west'])).toEqual({ 'eu-west-1': 0.35, 'eu-west-2': 0.35, 'eu-central-1': 0.3 });
  });

  it('caps spill-over by declared capacity, net of what each region’s own clients need', () => {
    const regions = {
      ...REGIONS,
      'eu-west': { ...REGIONS['eu-west'], rps: 1000 } as RegionSpec,
      'eu-central': { ...REGIONS['eu-central'], rps: 800 } as RegionSpec,
    };
    const clusters = {
      ...CLUSTERS,
      'eu-west-1': { region: 'eu-west', rps: 600 },
      'eu-west-2': { region: 'eu-west', rps: 600 },
      'eu-central-1': { region: 'eu-central', rps: 1000 },
    };
    const world = revision(regions, clusters, { web: { residency: RESIDENCY } });
    // healthy: 1200 rps of capacity for 1000 rps of demand: no cap bites
    expect(shares(trafficTable(world).services['web']?.['eu-west'])).toEqual({ 'eu-west-1': 0.5, 'eu-west-2': 0.5 });
    // one down: Envoy says 70/30, but eu-west-2 can take 600 of 1000 (60%); eu-central-1 has
    // 1000 − 800 (its own clients) = 200 rps (20%) to spare; the last 20% is beyond every cap and is
    // spread in proportion to capacity (600:200) → 75% / 25%
    const t = buildRoutingTable(world, down('eu-west-1'));
    const e = explain(t, 'web', 'IE', undefined);
    expect(e.levels.map((l) => l.envoyLoad)).toEqual([70, 30]);
    expect(e.levels.map((l) => l.capShare)).toEqual([0.6, 0.2]);
    expect(e.capacity.overflow).toBeCloseTo(0.2, 12);
    expect(shares(trafficFromWorld(world, down('eu-west-1')))).toEqual({ 'eu-west-2': 0.75, 'eu-central-1': 0.25 });
    // the lock holds under capacity pressure too
    expect(Object.keys(shares(trafficFromWorld(world, down('eu-west-1'))))).not.toContain('us-east-1');
  });

  it('panics only inside the residency-allowed set', () => {
    // eu-west: one down, one at 40% → 20% healthy; eu-central down → normalised total health 28: every level panics
    const state = simulatedState({ down: ['eu-west-1', 'eu-central-1'], degraded: { 'eu-west-2': 0.6 } });
    const t = buildRoutingTable(WORLD, state);
    const e = explain(t, 'web', 'IE', undefined);
    expect(e.allPanic).toBe(true);
    expect(e.levels.map((l) => l.envoyLoad)).toEqual([67, 33]); // by total weight, 2 : 1
    sample(t, 'web', 'IE', 3000, (d) => {
      expect(d.kind).toBe('panic');
      expect(d.region?.startsWith('eu-')).toBe(true);
    });
    // a prefer client in the same state is not locked: it leaves for healthy clusters instead
    expect(decide(t, 'api', 'IE', undefined, 0.5).kind).not.toBe('panic');
  });

  it('with panic disabled and nothing healthy, the answer is no-healthy', () => {
    const world = revision(REGIONS, CLUSTERS, { web: { residency: RESIDENCY, panicThreshold: 0 } });
    const t = buildRoutingTable(world, down('eu-west-1', 'eu-west-2', 'eu-central-1'));
    expect(decide(t, 'web', 'IE', 'u', 0).kind).toBe('no-healthy');
    expect(trafficTable(world, down('eu-west-1', 'eu-west-2', 'eu-central-1')).services['web']?.['eu-west']?.rejectedBy).toEqual({
      'no-healthy': 1,
    });
  });
});

function trafficFromWorld(world: Revision, state: RoutingState): ClientTraffic | undefined {
  return trafficTable(world, state).services['web']?.['eu-west'];
}

// ---- step 6: inside a priority ------------------------------------------------------------------

describe('6. inside a priority', () => {
  it('splits by cluster weight', () => {
    const world = revision(REGIONS, { ...CLUSTERS, 'eu-west-2': { region: 'eu-west', weight: 3 } }, { web: { residency: RESIDENCY } });
    expect(shares(trafficTable(world).services['web']?.['eu-west'])).toEqual({ 'eu-west-1': 0.25, 'eu-west-2': 0.75 });
  });

  it('the same user gets the same cluster and version every time while the table is unchanged', () => {
    const t = buildRoutingTable(WORLD, { canary: { web: { 'eu-west-1': { weight: 50, version: '2.0.0' } } } });
    for (let u = 0; u < 200; u++) {
      const a = decide(t, 'web', 'ZZ', `user-${u}`, Math.random(), createDecision());
      for (let k = 0; k < 5; k++) {
        const b = decide(t, 'web', 'ZZ', `user-${u}`, Math.random(), createDecision());
        expect([b.cluster, b.version, b.bucket]).toEqual([a.cluster, a.version, a.bucket]);
        expect(b.sticky).toBe(true);
      }
    }
  });

  it('a user in the canary at 5% is still in it at 25%; the canary share matches the weight', () => {
    const canaryAt = (weight: number): RoutingTable =>
      buildRoutingTable(WORLD, { canary: { web: { 'eu-central-1': { weight, version: '2.0.0' } } } });
    const five = canaryAt(5);
    const twentyFive = canaryAt(25);
    const n = 20_000;
    let in5 = 0;
    let in25 = 0;
    const d = createDecision();
    for (let i = 0; i < n; i++) {
      const user = `user-${i}`;
      const a = decide(five, 'web', 'DE', user, 0, d).canary;
      const b = decide(twentyFive, 'web', 'DE', user, 0, d).canary;
      if (a) expect(b).toBe(true);
      if (a) expect(d.version).toBe('2.0.0');
      in5 += a ? 1 : 0;
      in25 += b ? 1 : 0;
      expect(d.bucket).toBe(userBucket('web', user));
    }
    expect(in5 / n).toBeGreaterThan(0.04);
    expect(in5 / n).toBeLessThan(0.06);
    expect(in25 / n).toBeGreaterThan(0.24);
    expect(in25 / n).toBeLessThan(0.26);
    // the traffic table gives exactly the weight
    expect(
      trafficTable(WORLD, { canary: { web: { 'eu-central-1': { weight: 25, version: '2.0.0' } } } }).services['web']?.['eu-central'],
    ).toEqual({
      clusters: { 'eu-central-1': { stable: 0.75, canary: 0.25 } },
      rejected: 0,
    });
  });

  it('without a user key, the random number chooses, and the canary share still matches the weight', () => {
    const t = buildRoutingTable(WORLD, { canary: { web: { 'eu-west-1': { weight: 10, version: '2.0.0' } } } });
    let canary = 0;
    let w1 = 0;
    sample(t, 'web', 'IE', 100_000, (d) => {
      w1 += d.cluster === 'eu-west-1' ? 1 : 0;
      canary += d.canary ? 1 : 0;
      expect(d.sticky).toBe(false);
    });
    expect(w1).toBe(50_000);
    expect(canary).toBe(5000);
  });

  it('takes rand as a float in [0, 1) or as an integer in [0, 2^31), with the same meaning', () => {
    const world = revision(
      REGIONS,
      CLUSTERS,
      { api: { steering: 'weighted', flag: 'half' } },
      { half: { default: true, regions: { 'eu-west': { enabled: true, percent: 50 } } } },
    );
    const t = buildRoutingTable(world, { canary: { api: { 'us-east-1': { weight: 30, version: '2.0.0' } } } });
    const a = createDecision();
    const b = createDecision();
    for (let i = 0; i < 5000; i++) {
      const k = Math.floor(Math.random() * 0x80000000);
      decide(t, 'api', 'US', undefined, k / 0x80000000, a);
      decide(t, 'api', 'US', undefined, k, b);
      expect([b.cluster, b.canary, b.bucket]).toEqual([a.cluster, a.canary, a.bucket]);
    }
  });

  it('flag gates with a percentage open a region for that share of users, sticky per user', () => {
    const world = revision(
      REGIONS,
      {
        ...CLUSTERS,
        'eu-west-1': { region: 'eu-west', runs: { beta: '1.0.0' } },
        'eu-central-1': { region: 'eu-central', runs: { beta: '1.0.0' } },
      },
      { beta: { flag: 'beta-gate' } },
      { 'beta-gate': { regions: { 'eu-west': { enabled: true }, 'eu-central': { enabled: true, percent: 30 } } } },
    );
    expect(shares(trafficTable(world).services['beta']?.['eu-central'])).toEqual({ 'eu-central-1': 0.3, 'eu-west-1': 0.7 });
    const t = buildRoutingTable(world);
    const d = createDecision();
    for (let i = 0; i < 2000; i++) {
      const user = `u${i}`;
      const open = userBucket('beta-gate', user) < 30 * (BUCKETS / 100);
      expect(decide(t, 'beta', 'DE', user, 0, d).cluster).toBe(open ? 'eu-central-1' : 'eu-west-1');
    }
    // the router's live flag state overrides the revision's
    const closed = trafficTable(world, { flags: { 'beta-gate': { 'eu-central': { enabled: false, percent: 100 } } } });
    expect(shares(closed.services['beta']?.['eu-central'])).toEqual({ 'eu-west-1': 1 });
  });
});

// ---- step 7: retries ----------------------------------------------------------------------------

describe('7. retries', () => {
  it('retries go to another cluster under the same residency rule, and fail rather than leave a lock', () => {
    const t = buildRoutingTable(WORLD);
    const first = decide(t, 'web', 'IE', 'alice', 0, createDecision());
    expect(first.region).toBe('eu-west');
    const second = nextAttempt(t, 'web', 'IE', 'alice', 0.5, [first.clusterIndex], createDecision());
    expect(second.region).toBe('eu-west');
    expect(second.cluster).not.toBe(first.cluster);
    expect(second.bucket).toBe(first.bucket);
    const third = nextAttempt(t, 'web', 'IE', 'alice', 0.5, [first.clusterIndex, second.clusterIndex], createDecision());
    expect(third).toMatchObject({ cluster: 'eu-central-1', kind: 'spillover' });
    const all = ['eu-west-1', 'eu-west-2', 'eu-central-1'].map((c) => t.clusters.indexOf(c));
    expect(nextAttempt(t, 'web', 'IE', 'alice', 0.5, all, createDecision()).kind).toBe('no-healthy');
    // a prefer client may go further
    const api = nextAttempt(t, 'api', 'IE', 'alice', 0.5, all, createDecision());
    expect(api.cluster).toBe('us-east-1'); // api's failover list for eu-west
  });

  it('a retry for a client without a user key is spread over the remaining clusters by share', () => {
    const t = buildRoutingTable(WORLD);
    const ex = [t.clusters.indexOf('eu-west-1')];
    const d = createDecision();
    for (let i = 0; i < 100; i++) expect(nextAttempt(t, 'web', 'IE', undefined, i / 100, ex, d).cluster).toBe('eu-west-2');
  });

  it('keeps concurrent retries within the budget, as Envoy’s retry_budget', () => {
    const b = new RetryBudget({ attempts: 2, budget: 0.25, minRetryConcurrency: 3 });
    expect(b.limit(100)).toBe(25);
    expect(b.limit(4)).toBe(3);
    expect(b.allows(0, { activeRequests: 100, activeRetries: 24 })).toBe(true);
    expect(b.allows(0, { activeRequests: 100, activeRetries: 25 })).toBe(false);
    expect(b.allows(2, { activeRequests: 100, activeRetries: 0 })).toBe(false);
    expect(isIdempotent('GET') && isIdempotent('put') && !isIdempotent('POST') && IDEMPOTENT_METHODS.has('DELETE')).toBe(true);
    const world = revision(REGIONS, CLUSTERS, { web: { retries: { attempts: 1, budget: '20%' } } });
    expect(retryBudgetFor(buildRoutingTable(world), 'web')).toMatchObject({ attempts: 1, budget: 0.2 });
    expect(retryBudgetFor(buildRoutingTable(world), 'api')).toBeNull();
  });
});

// ---- explanation, versions, hashing -------------------------------------------------------------

describe('explain and table versions', () => {
  it('explains candidates, exclusions, levels, the bucket, the choice and the table version', () => {
    const t = buildRoutingTable(WORLD, down('eu-west-1'), { version: 7 });
    const e = explain(t, 'web', 'IE', 'bob');
    const d = decide(t, 'web', 'IE', 'bob', 0);
    expect(e.table).toMatchObject({ version: 7, id: `v7-${t.hash.slice(0, 12)}` });
    expect(e.client).toEqual({ home: 'eu-west', jurisdiction: 'EU' });
    expect(e.residency).toMatchObject({ rule: { allow: ['EU'], mode: 'lock' }, source: 'jurisdiction', widened: false });
    expect(e.excluded.map((x) => x.cluster).sort()).toEqual(['ap-south-1', 'us-east-1', 'us-west-1']);
    expect(e.levels.map((l) => [l.regions.map((r) => r.name), l.health, l.envoyLoad])).toEqual([
      [['eu-west'], 70, 70],
      [['eu-central'], 100, 30],
    ]);
    expect(e.levels[1]?.regions[0]?.basis).toBe('distance');
    expect(e.decision).toMatchObject({ cluster: d.cluster, bucket: d.bucket, kind: d.kind });
  });

  it('equal inputs give equal hashes; the caller’s version is kept apart from the content hash', () => {
    const a = buildRoutingTable(WORLD, down('eu-west-1'), { version: 1 });
    const b = buildRoutingTable(WORLD, down('eu-west-1'), { version: 2 });
    const c = buildRoutingTable(WORLD, down('eu-west-2'), { version: 3 });
    expect(a.hash).toBe(b.hash);
    expect(a.id).not.toBe(b.id);
    expect(c.hash).not.toBe(a.hash);
  });

  it('clusterShares gives the healthy state per client region, per service or averaged over services', () => {
    const s = clusterShares(WORLD, 'web');
    expect(s['eu-west']).toEqual({ 'eu-west-1': 0.5, 'eu-west-2': 0.5 });
    expect(s['ap-south']).toEqual({ 'ap-south-1': 1 });
    expect(clusterShares(WORLD)['us-east']).toEqual({ 'us-east-1': 1 });
  });

  it('hashes user keys as FNV-1a over UTF-8 bytes', () => {
    const reference = (s: string): number => {
      let h = 0x811c9dc5;
      for (const byte of Buffer.from(s, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
      return h | 0;
    };
    for (const s of ['', 'a', 'user-42', 'Zoë', '東京', '🦊 fox', 'x\ud800y', createHash('sha1').update('k').digest('hex')]) {
      expect(fnv1aString(FNV_OFFSET, s)).toBe(reference(s));
    }
    expect(fnv1aString(FNV_OFFSET, 'a') >>> 0).toBe(0xe40c292c); // the published FNV-1a test vector
  });
});
