/**
 * Explains one routing decision in full: who is asking, the residency rule, every cluster that was
 * excluded and why, the priority levels with their health, loads and caps, panic, the bucket, the choice
 * and the table version. Backs `GET /debug/route?country=DE&user=…`. Allocates freely; not the hot path.
 */
import { createDecision, decide, type DecisionKind } from './decide.js';
import { BUCKETS, bucketOf, hashSeed, userHash } from './hash.js';
import { STATUS, type OrderBasis } from './model.js';
import type { ExclusionReason, RuleSource } from './row-plan.js';
import { clusterShareInRow } from './row-plan.js';
import { rowPlan, variantCount, type RoutingTable } from './table.js';

export type ClusterState = 'healthy' | 'degraded' | 'unhealthy' | 'ejected';

export interface ExplainedCandidate {
  readonly cluster: string;
  readonly region: string;
  readonly jurisdiction: string;
  /** In the row's candidate set (possibly only because a `prefer` rule was widened). */
  readonly eligible: boolean;
  /** Why it is not a candidate, in step order (empty when eligible). */
  readonly excluded: readonly ExclusionReason[];
  readonly widenedIn: boolean;
  readonly state: ClusterState;
  /** 1 − degraded when available, else 0. */
  readonly healthFraction: number;
  readonly weight: number;
  readonly capacityRps: number;
  /** Priority level, or null when it is in none. */
  readonly level: number | null;
  /** Share of this client's traffic (for this flag variant), stable and canary together. */
  readonly share: number;
  /** Canary weight on this cluster, percent. */
  readonly canaryWeight: number;
}

export interface ExplainedLevel {
  readonly priority: number;
  readonly regions: readonly { readonly name: string; readonly basis: OrderBasis; readonly metric: number }[];
  readonly clusterPriority: number;
  readonly clusters: readonly string[];
  readonly totalWeight: number;
  readonly healthyWeight: number;
  readonly healthyPercent: number;
  /** Envoy's health score, 0..100. */
  readonly health: number;
  readonly panic: boolean;
  /** Envoy's priority load, percent. */
  readonly envoyLoad: number;
  /** Final share after capacity caps, fraction. */
  readonly share: number;
  readonly capacityRps: number;
  readonly capShare: number | null;
}

export interface Explanation {
  readonly table: { readonly id: string; readonly version: number; readonly hash: string; readonly revision: string };
  readonly request: { readonly service: string; readonly country: string; readonly sticky: boolean };
  readonly client: { readonly home: string | null; readonly jurisdiction: string | null };
  readonly residency: {
    readonly rule: { readonly allow: readonly string[]; readonly mode: 'lock' | 'prefer' } | null;
    readonly source: RuleSource;
    readonly widened: boolean;
    readonly outcome: 'ok' | 'residency-reject' | 'no-healthy';
  };
  readonly flag: {
    readonly name: string;
    readonly bucket: number;
    readonly variant: number;
    readonly openRegions: readonly string[];
  } | null;
  readonly candidates: readonly ExplainedCandidate[];
  readonly excluded: readonly {
    readonly cluster: string;
    readonly reason: ExclusionReason;
    readonly reasons: readonly ExclusionReason[];
  }[];
  readonly levels: readonly ExplainedLevel[];
  readonly normalizedTotalHealth: number;
  readonly panic: boolean;
  readonly allPanic: boolean;
  readonly capacity: { readonly clientRps: number | null; readonly applied: boolean; readonly overflow: number };
  readonly decision: {
    readonly kind: DecisionKind;
    readonly cluster: string | null;
    readonly region: string | null;
    readonly canary: boolean;
    readonly version: string | null;
    readonly priority: number;
    readonly bucket: number;
  };
}

/** `rand` as `decide` reads it: a float in [0, 1), or an integer in [0, 2^31). */
function unitRand(rand: number): number {
  if (rand >= 0 && rand < 1) return rand;
  return rand >= 1 && rand < 2147483648 ? Math.floor(rand) / 2147483648 : 0;
}

const STATE_NAMES: Record<number, ClusterState> = {
  [STATUS.ok]: 'healthy',
  [STATUS.ejected]: 'ejected',
  [STATUS.unhealthy]: 'unhealthy',
  [STATUS.degraded]: 'unhealthy',
};

/**
 * Explains the decision {@link decide} makes for the same arguments.
 *
 * @param rand as for `decide`: used only without a user key (default 0.5)
 */
export function explain(t: RoutingTable, service: string, country: string, userKey: string | undefined, rand = 0.5): Explanation {
  const m = t.model;
  const d = decide(t, service, country, userKey, rand, createDecision());
  const sticky = userKey !== undefined && userKey.length > 0;
  const homeIdx = t.homeIndex.get(country) ?? t.unknownHome;
  const table = { id: t.id, version: t.version, hash: t.hash, revision: t.revision };
  const request = { service, country, sticky };
  const s = t.serviceIndex.get(service);
  const decision = {
    kind: d.kind,
    cluster: d.cluster,
    region: d.region,
    canary: d.canary,
    version: d.version,
    priority: d.priority,
    bucket: d.bucket,
  };
  if (s === undefined) {
    return {
      table,
      request,
      client: { home: d.home, jurisdiction: d.home === null ? null : (m.regionJurisdiction[homeIdx] ?? null) },
      residency: { rule: null, source: 'none', widened: false, outcome: 'no-healthy' },
      flag: null,
      candidates: [],
      excluded: [],
      levels: [],
      normalizedTotalHealth: 0,
      panic: false,
      allPanic: false,
      capacity: { clientRps: null, applied: false, overflow: 0 },
      decision,
    };
  }

  // the flag variant, exactly as decide() picks it
  const thresholds = m.variants[s]?.thresholds ?? [];
  const flagName = m.policies[s]?.flag ?? null;
  let variant = 0;
  let flagBucket = -1;
  if (flagName !== null) {
    flagBucket = sticky ? bucketOf(userHash(hashSeed(flagName), userKey)) : Math.floor(unitRand(rand) * BUCKETS);
    while (variant < thresholds.length && flagBucket >= (thresholds[variant] ?? BUCKETS)) variant++;
  }
  if (variant >= variantCount(t, s)) variant = 0;
  const plan = rowPlan(t, s, homeIdx, variant);

  const C = m.clusters.length;
  const candidates: ExplainedCandidate[] = plan.candidates.map((c) => {
    const k = s * C + c.cluster;
    const degraded = (m.healthFraction[c.cluster] ?? 0) < 1;
    const status = m.status[c.cluster] ?? STATUS.ok;
    return {
      cluster: m.clusters[c.cluster] ?? '',
      region: m.regions[m.clusterRegion[c.cluster] ?? 0] ?? '',
      jurisdiction: m.clusterJurisdiction[c.cluster] ?? '',
      eligible: c.reasons.length === 0,
      excluded: c.reasons,
      widenedIn: c.widenedIn,
      state: status === STATUS.ok ? (degraded ? 'degraded' : 'healthy') : (STATE_NAMES[status] ?? 'unhealthy'),
      healthFraction: m.healthFraction[c.cluster] ?? 0,
      weight: m.weight[c.cluster] ?? 0,
      capacityRps: m.capacity[c.cluster] ?? 0,
      level: c.level >= 0 ? c.level : null,
      share: clusterShareInRow(plan, c.cluster),
      canaryWeight: (m.canaryBp[k] ?? 0) / 100,
    };
  });
  const levels: ExplainedLevel[] = plan.levels.map((l, i) => ({
    priority: i,
    regions: l.regions.map((r) => ({
      name: m.regions[r] ?? '',
      basis: plan.order.basis[r] ?? 'weighted',
      metric: plan.order.metric[r] ?? 0,
    })),
    clusterPriority: l.clusterPriority,
    clusters: l.members.map((c) => m.clusters[c] ?? ''),
    totalWeight: l.totalWeight,
    healthyWeight: l.healthyWeight,
    healthyPercent: l.healthyPercent,
    health: l.health,
    panic: l.panic,
    envoyLoad: l.envoyLoad,
    share: l.share,
    capacityRps: l.capacityRps,
    capShare: l.capShare,
  }));
  const open = m.variants[s]?.open[variant];
  return {
    table,
    request,
    client: { home: plan.home < m.regions.length ? (m.regions[plan.home] ?? null) : null, jurisdiction: plan.clientJurisdiction },
    residency: { rule: plan.rule, source: plan.ruleSource, widened: plan.widened, outcome: plan.outcome },
    flag:
      flagName === null ? null : { name: flagName, bucket: flagBucket, variant, openRegions: m.regions.filter((_, r) => open?.[r] === 1) },
    candidates,
    excluded: candidates
      .filter((c) => c.excluded.length > 0)
      .map((c) => ({ cluster: c.cluster, reason: c.excluded[0] as ExclusionReason, reasons: c.excluded })),
    levels,
    normalizedTotalHealth: plan.load.normalizedTotalHealth,
    panic: plan.load.panic.some(Boolean),
    allPanic: plan.load.allPanic,
    capacity: plan.capacity,
    decision,
  };
}
