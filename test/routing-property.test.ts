/**
 * Properties over thousands of random fleets and states (seeded, reproducible): a `lock` residency rule
 * is never left, by the traffic table, by `decide` or by `nextAttempt`; traffic shares sum to 1; every
 * decision lands where the traffic table says traffic goes; `explain` agrees with `decide`.
 * A failure prints the seed: rerun one fleet with ROUTING_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest';
import type { RenderedCluster, RenderedRegion, RenderedService, Revision } from '../src/render/render.js';
import { createDecision, decide, nextAttempt } from '../src/routing/decide.js';
import { explain } from '../src/routing/explain.js';
import type { RoutingState } from '../src/routing/state.js';
import { buildRoutingTable } from '../src/routing/table.js';
import { trafficFromTable, UNKNOWN_CLIENT, type TrafficTable } from '../src/routing/traffic-table.js';
import { Flag, Routing, type Flag as FlagT, type Routing as RoutingT } from '../src/spec/schema.js';

const FLEETS = Number(process.env['ROUTING_FLEETS'] ?? 2000);
const ONLY = process.env['ROUTING_SEED'];

/** mulberry32: a small, fast, seedable PRNG. */
function prng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface World {
  revision: Revision;
  state: RoutingState;
  countries: string[];
}

const JURISDICTIONS = ['EU', 'US', 'APAC', 'LATAM'];
const COUNTRIES = ['AA', 'BB', 'CC', 'DD', 'EE', 'FF', 'GG', 'HH', 'II', 'JJ', 'KK', 'LL'];

function svc(version: string): RenderedService {
  return {
    image: 'x@sha256:0',
    digest: null,
    version,
    port: 1,
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

function generate(seed: number): World {
  const r = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const chance = (p: number): boolean => r() < p;
  const subset = <T>(xs: readonly T[]): T[] => {
    const s = xs.filter(() => chance(0.5));
    return s.length > 0 ? s : [pick(xs)];
  };

  const jurisdictions = JURISDICTIONS.slice(0, int(1, 4));
  const regionNames = Array.from({ length: int(1, 6) }, (_, i) => `r${i}`);
  const free = [...COUNTRIES];
  const regions: Record<string, RenderedRegion> = {};
  for (const name of regionNames) {
    const countries: string[] = [];
    for (let k = int(0, 3); k > 0 && free.length > 0; k--) countries.push(free.splice(Math.floor(r() * free.length), 1)[0] as string);
    regions[name] = {
      jurisdiction: pick(jurisdictions),
      location: { lat: r() * 130 - 60, lon: r() * 360 - 180 },
      countries,
      trafficRps: chance(0.5) ? null : int(0, 5000),
    };
  }
  const services = Array.from({ length: int(1, 2) }, (_, i) => `s${i}`);
  const clusters: Record<string, RenderedCluster> = {};
  const clusterNames = Array.from({ length: int(1, 12) }, (_, i) => `c${i}`);
  for (const name of clusterNames) {
    const region = pick(regionNames);
    const runs: Record<string, RenderedService> = {};
    for (const s of services) if (chance(0.8)) runs[s] = svc('1.0.0');
    clusters[name] = {
      region,
      jurisdiction: regions[region]?.jurisdiction ?? '',
      driver: 'local',
      target: null,
      capacity: { rps: chance(0.1) ? 0 : int(1, 3000) },
      weight: pick([0, 0.5, 1, 1, 1, 2, 3]),
      priority: chance(0.7) ? null : int(-1, 2),
      labels: {},
      services: runs,
      hash: name,
    };
  }
  const routing: Record<string, RoutingT> = {};
  const flags: Record<string, FlagT> = {};
  for (const s of services) {
    if (chance(0.15)) continue; // no routing entry: defaults
    const residency: Record<string, { allow: string[]; mode: 'lock' | 'prefer' }> = {};
    for (const j of [...jurisdictions, 'default']) {
      if (chance(0.6)) residency[j] = { allow: subset(jurisdictions), mode: chance(0.5) ? 'lock' : 'prefer' };
    }
    const failover: Record<string, string[]> = {};
    for (const rn of regionNames) if (chance(0.3)) failover[rn] = subset(regionNames);
    const bias: Record<string, number> = {};
    for (const rn of regionNames) if (chance(0.3)) bias[rn] = int(-99, 99);
    const flag = chance(0.3) ? `f-${s}` : undefined;
    if (flag) {
      const fr: Record<string, { enabled: boolean; percent: number }> = {};
      for (const rn of regionNames) if (chance(0.7)) fr[rn] = { enabled: chance(0.7), percent: pick([0, 12.5, 25, 50, 33.33, 100]) };
      flags[flag] = Flag.parse({ default: chance(0.5), regions: fr });
    }
    routing[s] = Routing.parse({
      residency,
      steering: pick(['proximity', 'proximity', 'latency', 'weighted']),
      failover,
      bias,
      panicThreshold: pick(['0%', '50%', '30%', 0.8]),
      overprovisioningFactor: pick([1, 1.4, 2]),
      ...(flag ? { flag } : {}),
    });
  }

  const health: Record<string, { healthy: boolean; degraded?: number }> = {};
  const ejected: Record<string, boolean> = {};
  const drained: string[] = [];
  const canary: Record<string, Record<string, { weight: number; version: string }>> = {};
  for (const c of clusterNames) {
    if (chance(0.25)) health[c] = { healthy: false };
    else if (chance(0.2)) health[c] = { healthy: true, degraded: pick([0.1, 0.5, 0.9, 1]) };
    if (chance(0.1)) ejected[c] = true;
    if (chance(0.1)) drained.push(c);
    for (const s of services) if (chance(0.3)) (canary[s] ??= {})[c] = { weight: pick([0, 5, 12.34, 25, 50, 100]), version: '2.0.0' };
  }
  for (const rn of regionNames) if (chance(0.05)) drained.push(rn);
  const latency: Record<string, Record<string, number>> = {};
  for (const a of regionNames) for (const b of regionNames) if (chance(0.3)) (latency[a] ??= {})[b] = int(1, 300);

  const revision: Revision = { id: `seed-${seed}`, fleet: 'prop', regions, clusters, routing, flags };
  return { revision, state: { health, ejected, drained, canary, latency }, countries: [...COUNTRIES, ...regionNames, 'ZZ'] };
}

/** The residency rule a client region is under, read straight from the revision (an independent oracle). */
function ruleFor(rev: Revision, service: string, client: string): { allow: readonly string[]; mode: string } | undefined {
  const residency = rev.routing[service]?.residency ?? {};
  const j = client === UNKNOWN_CLIENT ? undefined : rev.regions[client]?.jurisdiction;
  return (j !== undefined ? residency[j] : undefined) ?? residency['default'];
}

/** An allowed cluster that can certainly serve (healthy, eligible, weighted): `prefer` must not widen then. */
function allowedAvailable(w: World, service: string, allow: readonly string[]): boolean {
  const drained = new Set(w.state.drained as string[]);
  return Object.entries(w.revision.clusters).some(([name, c]) => {
    const h = w.state.health?.[name];
    return (
      allow.includes(c.jurisdiction) &&
      c.services[service] !== undefined &&
      !drained.has(name) &&
      !drained.has(c.region) &&
      !w.state.ejected?.[name] &&
      (h === undefined || (h.healthy && (h.degraded ?? 0) < 1)) &&
      c.weight > 0
    );
  });
}

function checkFleet(seed: number): void {
  const w = generate(seed);
  const t = buildRoutingTable(w.revision, w.state, { version: seed });
  const tt: TrafficTable = trafficFromTable(t);
  const jurisdictionOf = (cluster: string): string => w.revision.clusters[cluster]?.jurisdiction ?? '?';

  for (const [service, byClient] of Object.entries(tt.services)) {
    for (const [client, traffic] of Object.entries(byClient)) {
      let sum = traffic.rejected;
      for (const v of Object.values(traffic.clusters)) sum += v.stable + v.canary;
      expect(Math.abs(sum - 1), `seed ${seed}: ${service} from ${client} sums to ${sum}`).toBeLessThan(1e-9);
      const rule = ruleFor(w.revision, service, client);
      const outside = Object.keys(traffic.clusters).filter((c) => rule && !rule.allow.includes(jurisdictionOf(c)));
      if (rule?.mode === 'lock') expect(outside, `seed ${seed}: ${service} from ${client} leaves its lock`).toEqual([]);
      if (rule?.mode === 'prefer' && !w.revision.routing[service]?.flag && allowedAvailable(w, service, rule.allow)) {
        expect(outside, `seed ${seed}: ${service} from ${client} widened a prefer rule with allowed clusters up`).toEqual([]);
      }
    }
  }

  const r = prng(seed ^ 0x5bd1e995);
  const d = createDecision();
  const retry = createDecision();
  for (let i = 0; i < 24 && t.services.length > 0; i++) {
    const service = t.services[Math.floor(r() * t.services.length)] ?? 's0';
    const country = w.countries[Math.floor(r() * w.countries.length)] ?? 'ZZ';
    const user = r() < 0.5 ? `user-${Math.floor(r() * 1e6)}` : undefined;
    const rand = r();
    decide(t, service, country, user, rand, d);
    const client = d.home ?? UNKNOWN_CLIENT;
    const traffic = tt.services[service]?.[client];
    const rule = ruleFor(w.revision, service, client);
    const where = `seed ${seed}: ${service} from ${country} (${client}) user ${user} rand ${rand}`;
    if (d.cluster !== null) {
      const v = traffic?.clusters[d.cluster];
      expect(
        d.canary ? v?.canary : v?.stable,
        `${where}: decided ${d.cluster} canary=${d.canary} outside the table's support`,
      ).toBeGreaterThan(0);
      if (rule?.mode === 'lock') expect(rule.allow, where).toContain(jurisdictionOf(d.cluster));
      nextAttempt(t, service, country, user, r(), [d.clusterIndex], retry);
      if (retry.cluster !== null) {
        expect(retry.cluster, where).not.toBe(d.cluster);
        if (rule?.mode === 'lock') expect(rule.allow, `${where}: retry`).toContain(jurisdictionOf(retry.cluster));
      }
    } else {
      expect(['residency-reject', 'no-healthy']).toContain(d.kind);
      expect(traffic?.rejected, where).toBeGreaterThan(0);
    }
    expect(explain(t, service, country, user, rand).decision.cluster, where).toBe(d.cluster);
  }
}

describe('routing properties over random fleets', () => {
  it(`holds for ${ONLY ? `seed ${ONLY}` : `${FLEETS} fleets`}`, () => {
    if (ONLY !== undefined) return checkFleet(Number(ONLY));
    for (let seed = 1; seed <= FLEETS; seed++) checkFleet(seed);
  }, 120_000);

  it('the generator makes the interesting cases: locks, widened prefers, panic, rejections, flags and canaries', () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 400; seed++) {
      const w = generate(seed);
      const t = buildRoutingTable(w.revision, w.state);
      const d = createDecision();
      for (const service of t.services) {
        for (const country of w.countries) {
          for (const u of [0.1, 0.5, 0.9]) {
            decide(t, service, country, undefined, u, d);
            seen.add(d.kind);
            if (d.canary) seen.add('canary');
          }
        }
        if (w.revision.routing[service]?.flag) seen.add('flag');
      }
    }
    expect([...seen].sort()).toEqual(
      ['canary', 'flag', 'no-healthy', 'panic', 'primary', 'residency-reject', 'residency-widened', 'spillover'].sort(),
    );
  });
});
