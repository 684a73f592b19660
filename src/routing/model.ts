/**
 * The routing model: a revision and a routing state normalised into indexed arrays (names sorted),
 * with every service's routing policy resolved to concrete values. Built once per routing table.
 */
import type { Revision } from '../render/render.js';
import type { Routing } from '../spec/schema.js';
import { parseRatio } from '../units/quantity.js';
import { biasedDistance, countryRegions, haversineKm, type LatLon } from './geo.js';
import { BUCKETS } from './hash.js';
import type { LoadRounding } from './priority-load.js';
import { drainedSet, type FlagGate, type RoutingState } from './state.js';

export type Steering = 'proximity' | 'latency' | 'weighted';

/** A residency rule: which cluster jurisdictions may serve, and whether that is a hard lock. */
export interface ResidencyRule {
  readonly allow: readonly string[];
  readonly mode: 'lock' | 'prefer';
}

/** A service's routing policy with every default applied. */
export interface ServicePolicy {
  readonly steering: Steering;
  readonly failover: Readonly<Record<string, readonly string[]>>;
  readonly bias: Readonly<Record<string, number>>;
  readonly residency: Readonly<Record<string, ResidencyRule>>;
  readonly overprovisioningFactor: number;
  /** Fraction, 0..1. */
  readonly panicThreshold: number;
  readonly flag: string | null;
  readonly retries: { readonly attempts: number; readonly budget: number } | null;
}

/** Why a cluster's availability is lost (it stays in its level's total weight). */
export const STATUS = { ok: 0, ejected: 1, unhealthy: 2, degraded: 3 } as const;
export type StatusCode = (typeof STATUS)[keyof typeof STATUS];

/** A service's flag variants: user buckets split at `thresholds`, each variant with its own open regions. */
export interface Variants {
  /** Ascending bucket thresholds in 1..9999; variant j covers buckets [t_j, t_{j+1}) with t_0 = 0, t_{k+1} = 10000. */
  readonly thresholds: readonly number[];
  /** Per variant, per region: 1 when the flag gate is open. */
  readonly open: readonly Uint8Array[];
}

export interface Model {
  readonly revision: string;
  readonly rounding: LoadRounding;
  readonly regions: readonly string[];
  readonly regionIndex: ReadonlyMap<string, number>;
  readonly regionJurisdiction: readonly string[];
  readonly regionLocation: readonly LatLon[];
  /** Expected peak rps from each region's clients, or 0 when not declared. */
  readonly regionRps: Float64Array;
  readonly clusters: readonly string[];
  readonly clusterIndex: ReadonlyMap<string, number>;
  readonly clusterRegion: Int32Array;
  readonly clusterJurisdiction: readonly string[];
  readonly weight: Float64Array;
  readonly capacity: Float64Array;
  /** The cluster's explicit `priority`, 0 when not set. */
  readonly clusterPriority: Int32Array;
  readonly drained: Uint8Array;
  /** The fraction 0..1 of its full share each cluster takes while it ramps back after a restore (1: all of it). */
  readonly admission: Float64Array;
  readonly status: Uint8Array;
  /** 1 − degraded for available clusters, 0 for unavailable ones. */
  readonly healthFraction: Float64Array;
  readonly services: readonly string[];
  readonly serviceIndex: ReadonlyMap<string, number>;
  readonly policies: readonly ServicePolicy[];
  /** [service × clusters + cluster]: 1 when the cluster runs the service. */
  readonly serving: Uint8Array;
  readonly stableVersion: readonly (string | null)[];
  /** [service × clusters + cluster]: canary weight in basis points (0..10000). */
  readonly canaryBp: Int32Array;
  readonly canaryVersion: readonly (string | null)[];
  readonly variants: readonly Variants[];
  /** Country code (upper and lower case) or region name → home region index. */
  readonly homeOf: ReadonlyMap<string, number>;
  readonly latency: RoutingState['latency'];
}

function clamp(x: number, lo: number, hi: number): number {
  return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : lo;
}

/** Resolves a service's routing policy, applying the schema's defaults to anything not set. */
export function resolvePolicy(r: Partial<Routing> | undefined): ServicePolicy {
  const residency: Record<string, ResidencyRule> = {};
  for (const [k, rule] of Object.entries(r?.residency ?? {})) residency[k] = { allow: rule.allow, mode: rule.mode ?? 'prefer' };
  const pt = r?.panicThreshold === undefined ? 0.5 : (parseRatio(r.panicThreshold) ?? 0.5);
  return {
    steering: r?.steering ?? 'proximity',
    failover: r?.failover ?? {},
    bias: r?.bias ?? {},
    residency,
    overprovisioningFactor: r?.overprovisioningFactor ?? 1.4,
    panicThreshold: pt,
    flag: r?.flag ?? null,
    retries: r?.retries ? { attempts: r.retries.attempts, budget: parseRatio(r.retries.budget ?? '20%') ?? 0.2 } : null,
  };
}

/** The gate of a flag in a region: the state's override, else the revision's region entry, else its default. */
export function flagGate(revision: Revision, state: RoutingState, flag: string, region: string): FlagGate {
  const live = state.flags?.[flag]?.[region];
  if (live) return live;
  const def = revision.flags[flag];
  if (!def) return { enabled: false, percent: 0 }; // an unknown flag fails closed (preflight reports the reference)
  const r = def.regions?.[region];
  if (r) return { enabled: r.enabled, percent: r.percent ?? 100 };
  return { enabled: def.default ?? false, percent: 100 };
}

/** Builds the model. Pure. */
export function buildModel(revision: Revision, state: RoutingState, rounding: LoadRounding): Model {
  const regions = Object.keys(revision.regions).sort();
  const regionIndex = new Map(regions.map((r, i) => [r, i]));
  const regionJurisdiction = regions.map((r) => revision.regions[r]?.jurisdiction ?? '');
  const regionLocation = regions.map((r) => revision.regions[r]?.location ?? { lat: 0, lon: 0 });
  const regionRps = new Float64Array(regions.map((r) => Math.max(0, revision.regions[r]?.trafficRps ?? 0)));

  const clusters = Object.keys(revision.clusters)
    .filter((c) => regionIndex.has(revision.clusters[c]?.region ?? ''))
    .sort();
  const C = clusters.length;
  const clusterIndex = new Map(clusters.map((c, i) => [c, i]));
  const clusterRegion = new Int32Array(C);
  const clusterJurisdiction: string[] = [];
  const weight = new Float64Array(C);
  const capacity = new Float64Array(C);
  const clusterPriority = new Int32Array(C);
  const drained = new Uint8Array(C);
  const status = new Uint8Array(C);
  const healthFraction = new Float64Array(C);
  const drainSet = drainedSet(state.drained);
  const admission = new Float64Array(C).fill(1);
  const rampOf = (place: string): number => clamp((state.ramp?.[place] ?? 100) / 100, 0, 1);
  clusters.forEach((name, i) => {
    const c = revision.clusters[name];
    if (!c) return;
    const ri = regionIndex.get(c.region) ?? 0;
    clusterRegion[i] = ri;
    clusterJurisdiction.push(regionJurisdiction[ri] ?? '');
    weight[i] = clamp(c.weight, 0, Number.MAX_VALUE);
    capacity[i] = clamp(c.capacity.rps, 0, Number.MAX_VALUE);
    clusterPriority[i] = c.priority ?? 0;
    drained[i] = drainSet.has(name) || drainSet.has(c.region) ? 1 : 0;
    admission[i] = Math.min(rampOf(name), rampOf(c.region));
    const h = state.health?.[name];
    const degraded = clamp(h?.degraded ?? 0, 0, 1);
    if (state.ejected?.[name]) status[i] = STATUS.ejected;
    else if (h && !h.healthy) status[i] = STATUS.unhealthy;
    else if (degraded >= 1) status[i] = STATUS.degraded;
    healthFraction[i] = status[i] === STATUS.ok ? 1 - degraded : 0;
  });

  const serviceSet = new Set(Object.keys(revision.routing));
  for (const c of Object.values(revision.clusters)) for (const s of Object.keys(c.services)) serviceSet.add(s);
  const services = [...serviceSet].sort();
  const serviceIndex = new Map(services.map((s, i) => [s, i]));
  const policies = services.map((s) => resolvePolicy(revision.routing[s]));
  const S = services.length;
  const serving = new Uint8Array(S * C);
  const stableVersion: (string | null)[] = new Array<string | null>(S * C).fill(null);
  const canaryBp = new Int32Array(S * C);
  const canaryVersion: (string | null)[] = new Array<string | null>(S * C).fill(null);
  services.forEach((s, si) => {
    clusters.forEach((c, ci) => {
      const rendered = revision.clusters[c]?.services[s];
      if (!rendered) return;
      const k = si * C + ci;
      serving[k] = 1;
      stableVersion[k] = rendered.version;
      const canary = state.canary?.[s]?.[c];
      if (canary && canary.version !== rendered.version) {
        canaryBp[k] = Math.round(clamp(canary.weight, 0, 100) * (BUCKETS / 100));
        canaryVersion[k] = canary.version;
      }
    });
  });

  const variants = services.map((_, si): Variants => {
    const flag = policies[si]?.flag ?? null;
    if (flag === null) return { thresholds: [], open: [new Uint8Array(regions.length).fill(1)] };
    const hosting = new Set<number>();
    for (let ci = 0; ci < C; ci++) if (serving[si * C + ci]) hosting.add(clusterRegion[ci] ?? 0);
    const gates = regions.map((r) => flagGate(revision, state, flag, r));
    const bp = gates.map((g) => (g.enabled ? Math.round(clamp(g.percent, 0, 100) * (BUCKETS / 100)) : 0));
    const thresholds = [...new Set([...hosting].map((ri) => bp[ri] ?? 0).filter((b) => b > 0 && b < BUCKETS))].sort((a, b) => a - b);
    const open = [0, ...thresholds].map((rep) => new Uint8Array(bp.map((b) => (rep < b ? 1 : 0))));
    return { thresholds, open };
  });

  const homeOf = new Map<string, number>();
  for (const [country, region] of countryRegions(revision.regions)) {
    const ri = regionIndex.get(region) ?? 0;
    homeOf.set(country, ri);
    homeOf.set(country.toLowerCase(), ri);
  }
  regions.forEach((r, i) => homeOf.set(r, i));

  return {
    revision: revision.id,
    rounding,
    regions,
    regionIndex,
    regionJurisdiction,
    regionLocation,
    regionRps,
    clusters,
    clusterIndex,
    clusterRegion,
    clusterJurisdiction,
    weight,
    capacity,
    clusterPriority,
    drained,
    admission,
    status,
    healthFraction,
    services,
    serviceIndex,
    policies,
    serving,
    stableVersion,
    canaryBp,
    canaryVersion,
    variants,
    homeOf,
    latency: state.latency,
  };
}

/** How a region's place in a client's order was decided. */
export type OrderBasis = 'home' | 'failover' | 'distance' | 'latency' | 'weighted';

/** The order of regions for one client home: rank 0 first. */
export interface RegionOrder {
  /** Per region: its rank (0 = first). Regions that share a rank form one priority level together. */
  readonly rank: Int32Array;
  /** Per region: the effective distance in km (biased) or the measured latency in ms; 0 for the home region. */
  readonly metric: Float64Array;
  readonly basis: readonly OrderBasis[];
}

/**
 * Orders the regions for a client whose home is region `home` (or `regions.length` for a client with
 * no home region): the home region, then the service's failover list for it in order, then the rest by
 * biased great-circle distance (`steering: proximity`) or by measured latency (`steering: latency`;
 * regions without a measurement follow, by distance). With `steering: weighted`, or for a client with no
 * home region, every region has rank 0 (one level).
 */
export function regionOrder(m: Model, service: number, home: number): RegionOrder {
  const R = m.regions.length;
  const rank = new Int32Array(R);
  const metric = new Float64Array(R);
  const policy = m.policies[service];
  if (!policy || policy.steering === 'weighted' || home >= R) return { rank, metric, basis: m.regions.map(() => 'weighted') };
  const basis: OrderBasis[] = m.regions.map(() => 'distance');
  const homeName = m.regions[home] ?? '';
  const homeLoc = m.regionLocation[home] ?? { lat: 0, lon: 0 };
  const placed = new Uint8Array(R);
  let next = 0;
  const place = (ri: number, b: OrderBasis): void => {
    placed[ri] = 1;
    rank[ri] = next++;
    basis[ri] = b;
  };
  place(home, 'home');
  for (const name of policy.failover[homeName] ?? []) {
    const ri = m.regionIndex.get(name);
    if (ri !== undefined && !placed[ri]) place(ri, 'failover');
  }
  const measured = policy.steering === 'latency' ? m.latency?.[homeName] : undefined;
  const rest: { ri: number; measured: boolean; value: number; name: string }[] = [];
  for (let ri = 0; ri < R; ri++) {
    const name = m.regions[ri] ?? '';
    const km = biasedDistance(haversineKm(homeLoc, m.regionLocation[ri] ?? homeLoc), policy.bias[name] ?? 0);
    const ms = measured?.[name];
    const hasMs = ms !== undefined && Number.isFinite(ms) && ms >= 0;
    metric[ri] = ri === home ? 0 : hasMs ? ms : km;
    if (!placed[ri]) rest.push({ ri, measured: hasMs, value: hasMs ? ms : km, name });
  }
  rest.sort((a, b) => Number(b.measured) - Number(a.measured) || a.value - b.value || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const r of rest) place(r.ri, r.measured ? 'latency' : 'distance');
  return { rank, metric, basis };
}
