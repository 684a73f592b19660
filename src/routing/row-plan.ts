/**
 * One row of the routing table: for one service, one client home region and one flag variant, which
 * clusters may serve, in which priority levels, with which share of the traffic. Steps 2–6 of
 * docs/routing.md "The decision, step by step", in that order; each step only narrows what the one before left.
 */
import { capLoads } from './capacity.js';
import { STATUS, regionOrder, type Model, type RegionOrder, type ResidencyRule } from './model.js';
import { priorityLoad, type PriorityLoad } from './priority-load.js';

/** Why a cluster is not a candidate at all for a row. */
export type ExclusionReason = 'residency' | 'not-serving' | 'drained' | 'flag-closed';

/** What a row can do with a request. */
export type RowOutcome = 'ok' | 'residency-reject' | 'no-healthy';

/** Where the residency rule came from. */
export type RuleSource = 'jurisdiction' | 'default' | 'none';

export interface CandidatePlan {
  readonly cluster: number;
  /** Every reason that excludes the cluster, in the order of the steps; empty for a member of the row. */
  readonly reasons: readonly ExclusionReason[];
  /** Outside the residency rule but admitted because a `prefer` rule was widened. */
  readonly widenedIn: boolean;
  readonly status: number;
  /** weight × (1 − degraded) for an available cluster, else 0. */
  readonly healthyWeight: number;
  /** Index into the row's levels, or −1. */
  readonly level: number;
}

export interface LevelPlan {
  /** The region rank and the cluster `priority` that define the level. */
  readonly rank: number;
  readonly clusterPriority: number;
  readonly regions: readonly number[];
  readonly members: readonly number[];
  readonly totalWeight: number;
  readonly healthyWeight: number;
  /** Σ capacity × health of the available clusters after reservations (rps), used for the cap. */
  readonly capacityRps: number;
  /** Clusters that can be picked (parallel to `entryWeights`). */
  readonly entryClusters: readonly number[];
  /** Their selection weights: weight × health, or weight alone in panic. */
  readonly entryWeights: readonly number[];
  readonly health: number;
  readonly healthyPercent: number;
  readonly panic: boolean;
  /** Envoy's integer priority load, percent. */
  readonly envoyLoad: number;
  /** The final share of the row's traffic after capacity caps (fraction). */
  readonly share: number;
  /** The cap as a fraction of the client region's traffic, or null when no cap applied. */
  readonly capShare: number | null;
}

export interface RowPlan {
  readonly service: number;
  readonly home: number;
  readonly variant: number;
  readonly clientJurisdiction: string | null;
  readonly rule: ResidencyRule | null;
  readonly ruleSource: RuleSource;
  readonly outcome: RowOutcome;
  /** A `prefer` rule was widened to every jurisdiction because nothing allowed could serve. */
  readonly widened: boolean;
  readonly order: RegionOrder;
  /** Every cluster with its exclusion reasons and level; only built with `detail` (empty otherwise). */
  readonly candidates: readonly CandidatePlan[];
  readonly levels: readonly LevelPlan[];
  readonly load: PriorityLoad;
  readonly capacity: { readonly clientRps: number | null; readonly applied: boolean; readonly overflow: number };
}

/** The residency rule for a client jurisdiction: its own rule, else `default`, else none (allow all). */
export function residencyRule(
  residency: Readonly<Record<string, ResidencyRule>>,
  jurisdiction: string | null,
): { rule: ResidencyRule | null; source: RuleSource } {
  const own = jurisdiction === null ? undefined : residency[jurisdiction];
  if (own) return { rule: own, source: 'jurisdiction' };
  const def = residency['default'];
  if (def) return { rule: def, source: 'default' };
  return { rule: null, source: 'none' };
}

/** Bits of {@link RowPlan.reasonMask}, in step order. */
export const REASON_BITS: readonly (readonly [number, ExclusionReason])[] = [
  [1, 'residency'],
  [2, 'not-serving'],
  [4, 'drained'],
  [8, 'flag-closed'],
];

/** The exclusion reasons encoded in a reason mask, in step order. */
export function reasonsOf(mask: number): ExclusionReason[] {
  const out: ExclusionReason[] = [];
  for (const [bit, reason] of REASON_BITS) if (mask & bit) out.push(reason);
  return out;
}

/**
 * Builds one row. `homeDemand` (per cluster, rps) is what each cluster's own region's clients send it:
 * that much of its capacity is reserved against spill-over from other regions. Pass null to reserve
 * nothing (the first pass that computes it). With `detail`, `candidates` lists every cluster (for
 * `explain`); the table builder leaves it empty.
 */
export function buildRowPlan(m: Model, s: number, home: number, variant: number, homeDemand: Float64Array | null, detail = false): RowPlan {
  const C = m.clusters.length;
  const R = m.regions.length;
  const policy = m.policies[s];
  if (!policy) throw new Error(`no service ${s}`);
  const clientJurisdiction = home < R ? (m.regionJurisdiction[home] ?? null) : null;
  const { rule, source } = residencyRule(policy.residency, clientJurisdiction);
  const open = m.variants[s]?.open[variant];
  const regionAllowed = new Uint8Array(R);
  for (let r = 0; r < R; r++) regionAllowed[r] = rule === null || rule.allow.includes(m.regionJurisdiction[r] ?? '') ? 1 : 0;

  // steps 2 and 3: residency, then eligibility (a bit per reason)
  const reasonMask = new Uint8Array(C);
  const hw = new Float64Array(C);
  let allowedEligible = false;
  let allowedAvailable = false;
  let anyEligible = false;
  let anyAvailable = false;
  const base = s * C;
  for (let c = 0; c < C; c++) {
    const region = m.clusterRegion[c] ?? 0;
    let mask = regionAllowed[region] ? 0 : 1;
    if (!m.serving[base + c]) mask |= 2;
    if (m.drained[c]) mask |= 4;
    if (open && !open[region]) mask |= 8;
    reasonMask[c] = mask;
    const h = (m.weight[c] ?? 0) * (m.healthFraction[c] ?? 0);
    hw[c] = h;
    if ((mask & ~1) !== 0) continue; // not eligible whatever the residency rule says
    anyEligible = true;
    if (h > 0) anyAvailable = true;
    if (mask === 0) {
      allowedEligible = true;
      if (h > 0) allowedAvailable = true;
    }
  }
  // `lock` never widens; `prefer` widens only when no allowed cluster can serve and some other one can
  let widened = false;
  let outcome: RowOutcome = 'ok';
  if (rule?.mode === 'lock') {
    if (!allowedEligible) outcome = 'residency-reject';
  } else if (rule !== null && !allowedAvailable) {
    if (anyAvailable || (!allowedEligible && anyEligible)) widened = true;
    else if (!allowedEligible) outcome = 'no-healthy';
  } else if (!anyEligible) {
    outcome = 'no-healthy';
  }
  const memberMask = widened ? ~1 : ~0; // a widened row ignores the residency bit

  // step 4: priority levels by (region rank, cluster priority)
  const order = regionOrder(m, s, home);
  const keyed = new Map<number, { rank: number; prio: number; members: number[] }>();
  if (outcome === 'ok') {
    for (let c = 0; c < C; c++) {
      if (((reasonMask[c] ?? 0) & memberMask) !== 0 || !((m.weight[c] ?? 0) > 0)) continue;
      const rank = order.rank[m.clusterRegion[c] ?? 0] ?? 0;
      const prio = m.clusterPriority[c] ?? 0;
      const key = rank * 4294967296 + (prio + 2147483648);
      let g = keyed.get(key);
      if (!g) keyed.set(key, (g = { rank, prio, members: [] }));
      g.members.push(c);
    }
  }
  const groups = [...keyed.values()].sort((a, b) => a.rank - b.rank || a.prio - b.prio);
  const levelOf = new Int32Array(C).fill(-1);
  groups.forEach((g, i) => {
    for (const c of g.members) levelOf[c] = i;
  });

  // step 5: Envoy's priority load, then capacity caps
  const inputs = groups.map((g) => {
    let totalWeight = 0;
    let healthyWeight = 0;
    for (const c of g.members) {
      totalWeight += m.weight[c] ?? 0;
      healthyWeight += hw[c] ?? 0;
    }
    return { totalWeight, healthyWeight };
  });
  const load = priorityLoad(inputs, {
    overprovisioningFactor: policy.overprovisioningFactor,
    panicThreshold: policy.panicThreshold,
    rounding: m.rounding,
  });
  if (outcome === 'ok' && !load.load.some((l) => l > 0)) outcome = 'no-healthy';
  const anyPanic = load.panic.some(Boolean);
  const clientRps = home < R && (m.regionRps[home] ?? 0) > 0 ? (m.regionRps[home] ?? 0) : null;
  const capacityRps = groups.map((g) => {
    let cap = 0;
    for (const c of g.members) {
      if (!((hw[c] ?? 0) > 0)) continue;
      const reserved = homeDemand && m.clusterRegion[c] !== home ? (homeDemand[c] ?? 0) : 0;
      cap += Math.max(0, (m.capacity[c] ?? 0) * (m.healthFraction[c] ?? 0) - reserved);
    }
    return cap;
  });
  let shares = load.load.map((l) => l / 100);
  let applied = false;
  let overflow = 0;
  const capShares = capacityRps.map((cap) => (clientRps === null ? null : cap / clientRps));
  if (outcome === 'ok' && clientRps !== null && !anyPanic && groups.length > 0) {
    const capped = capLoads(
      shares,
      capShares.map((x) => x ?? 0),
    );
    shares = capped.shares;
    overflow = capped.overflow;
    applied = true;
  }

  // step 6: inside a level, weight × health (weight alone in panic)
  const levels: LevelPlan[] = groups.map((g, i) => {
    const panic = load.panic[i] ?? false;
    const entryClusters: number[] = [];
    const entryWeights: number[] = [];
    for (const c of g.members) {
      const w = panic ? (m.weight[c] ?? 0) : (hw[c] ?? 0);
      if (w > 0) {
        entryClusters.push(c);
        entryWeights.push(w);
      }
    }
    return {
      rank: g.rank,
      clusterPriority: g.prio,
      regions: [...new Set(g.members.map((c) => m.clusterRegion[c] ?? 0))].sort((a, b) => a - b),
      members: g.members,
      totalWeight: inputs[i]?.totalWeight ?? 0,
      healthyWeight: inputs[i]?.healthyWeight ?? 0,
      capacityRps: capacityRps[i] ?? 0,
      entryClusters,
      entryWeights,
      health: load.health[i] ?? 0,
      healthyPercent: load.healthyPercent[i] ?? 0,
      panic,
      envoyLoad: load.load[i] ?? 0,
      share: outcome === 'ok' ? (shares[i] ?? 0) : 0,
      capShare: applied ? (capShares[i] ?? null) : null,
    };
  });

  const candidates: CandidatePlan[] = [];
  if (detail) {
    for (let c = 0; c < C; c++) {
      const mask = reasonMask[c] ?? 0;
      const isMember = (mask & memberMask) === 0 && outcome !== 'residency-reject';
      candidates.push({
        cluster: c,
        reasons: isMember ? [] : reasonsOf(mask),
        widenedIn: isMember && (mask & 1) === 1,
        status: m.status[c] ?? STATUS.ok,
        healthyWeight: hw[c] ?? 0,
        level: levelOf[c] ?? -1,
      });
    }
  }

  return {
    service: s,
    home,
    variant,
    clientJurisdiction,
    rule,
    ruleSource: source,
    outcome,
    widened: outcome === 'ok' && widened,
    order,
    candidates,
    levels,
    load,
    capacity: { clientRps, applied, overflow },
  };
}

/** The share of a row's traffic that goes to one cluster (stable and canary together). */
export function clusterShareInRow(plan: RowPlan, cluster: number): number {
  let share = 0;
  for (const l of plan.levels) {
    if (l.share <= 0) continue;
    let total = 0;
    for (const w of l.entryWeights) total += w;
    l.entryClusters.forEach((c, i) => {
      if (c === cluster && total > 0) share += (l.share * (l.entryWeights[i] ?? 0)) / total;
    });
  }
  return share;
}
