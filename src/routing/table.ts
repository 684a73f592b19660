/**
 * The routing table: every routing decision precomputed per (service, client home region, flag
 * variant), flattened into typed arrays so that the per-request decision is a lookup and a hash.
 * A table is immutable; the router swaps the whole table atomically when anything changes.
 */
import { createHash } from 'node:crypto';
import type { Revision } from '../render/render.js';
import { hashSeed } from './hash.js';
import { buildModel, type Model } from './model.js';
import type { LoadRounding } from './priority-load.js';
import { evacuatedModel, rampedRowPlan } from './ramp.js';
import { buildRowPlan, clusterShareInRow, type RowPlan } from './row-plan.js';
import type { RoutingState } from './state.js';

/** Row outcome codes in {@link RoutingTable.rowKind}. */
export const ROW = { ok: 0, residencyReject: 1, noHealthy: 2 } as const;

export interface RoutingTableOptions {
  /** The caller's monotonically increasing table version (default 0). */
  readonly version?: number;
  /** Rounding of Envoy's integer loads; see {@link LoadRounding}. Default `documented`. */
  readonly rounding?: LoadRounding;
}

/**
 * A precomputed routing table. Fields are the flattened rows (CSR layout: `xStart[i]..xStart[i+1]`).
 * Treat everything as read-only.
 */
export interface RoutingTable {
  /** The caller's table version. */
  readonly version: number;
  /**
   * sha256 (hex) of the table's content: equal tables route identically and have equal hashes, whatever
   * their version or revision (a revision that changes nothing in routing keeps the hash).
   */
  readonly hash: string;
  /** `v<version>-<first 12 hex of hash>`, for headers and logs. */
  readonly id: string;
  /** The revision the table was built from. */
  readonly revision: string;
  readonly services: readonly string[];
  readonly clusters: readonly string[];
  readonly regions: readonly string[];
  /** Cluster index → region index. */
  readonly clusterRegion: Int32Array;
  readonly serviceIndex: ReadonlyMap<string, number>;
  /** Country code (either case) or region name → home region index. */
  readonly homeIndex: ReadonlyMap<string, number>;
  /** The home index of clients with no home region (unknown country): `regions.length`. */
  readonly unknownHome: number;

  /** Per service: FNV-1a state after `service ‖ 0x00` (canary bucket and sticky cluster choice). */
  readonly serviceSeed: Int32Array;
  /** Per service: FNV-1a state after `flag ‖ 0x00`, when the service is gated by a flag. */
  readonly flagSeed: Int32Array;
  /** Per service: `variantStart[s]..variantStart[s+1]` indexes `thresholds`. */
  readonly variantStart: Int32Array;
  readonly thresholds: Int32Array;
  /** Per service: its first row; row = rowBase[s] + home × variants(s) + variant. */
  readonly rowBase: Int32Array;

  /** Per row: {@link ROW} code. */
  readonly rowKind: Uint8Array;
  readonly rowWidened: Uint8Array;
  readonly rowLevelStart: Int32Array;

  /** Per level: cumulative share within its row (the last level with traffic ends at exactly 1). */
  readonly levelCum: Float64Array;
  readonly levelPanic: Uint8Array;
  /** Per level: 1 when it is the row's first level and made of the client's home region (rank 0). */
  readonly levelPrimary: Uint8Array;
  readonly levelEntryStart: Int32Array;

  /** Per entry: cluster index and cumulative selection weight within its level (ends at exactly 1). */
  readonly entryCluster: Int32Array;
  readonly entryCum: Float64Array;

  /** [service × clusters + cluster]: canary weight in basis points, and the two versions. */
  readonly canaryBp: Int32Array;
  readonly canaryVersion: readonly (string | null)[];
  readonly stableVersion: readonly (string | null)[];

  /** Retry settings per service (`attempts` 0 when the service has no retry policy; budget as a fraction). */
  readonly retryAttempts: Int32Array;
  readonly retryBudget: Float64Array;

  /** @internal The normalised inputs, kept so that `explain` can rebuild any row exactly. */
  readonly model: Model;
  /** @internal Per service and variant (`rowBase`-style index `variantStart[s] + s + v`): reserved home demand per cluster. */
  readonly homeDemand: readonly (Float64Array | null)[];
  /** @internal While a place ramps back after a restore: the model with it still evacuated, and its home demand. */
  readonly evacuated: { readonly model: Model; readonly homeDemand: readonly (Float64Array | null)[] } | null;
}

/** Number of flag variants of a service. */
export function variantCount(t: Pick<RoutingTable, 'variantStart'>, s: number): number {
  return (t.variantStart[s + 1] ?? 0) - (t.variantStart[s] ?? 0) + 1;
}

/** The row index for a service, home and variant. */
export function rowIndex(t: Pick<RoutingTable, 'variantStart' | 'rowBase'>, s: number, home: number, variant: number): number {
  return (t.rowBase[s] ?? 0) + home * variantCount(t, s) + variant;
}

/** Index into {@link RoutingTable.homeDemand} for a service and variant. */
export function demandIndex(t: Pick<RoutingTable, 'variantStart'>, s: number, variant: number): number {
  return (t.variantStart[s] ?? 0) + s + variant;
}

/** Computes, per service and variant, what each cluster's own region's clients send it (rps). */
function homeDemands(m: Model): (Float64Array | null)[] {
  const out: (Float64Array | null)[] = [];
  const R = m.regions.length;
  const C = m.clusters.length;
  m.services.forEach((_, s) => {
    const V = (m.variants[s]?.thresholds.length ?? 0) + 1;
    for (let v = 0; v < V; v++) {
      let demand: Float64Array | null = null;
      for (let h = 0; h < R; h++) {
        const rps = m.regionRps[h] ?? 0;
        if (!(rps > 0)) continue;
        const plan = buildRowPlan(m, s, h, v, null);
        if (plan.outcome !== 'ok') continue;
        for (let c = 0; c < C; c++) {
          if (m.clusterRegion[c] !== h) continue;
          const share = clusterShareInRow(plan, c);
          if (share > 0) (demand ??= new Float64Array(C))[c] = rps * share;
        }
      }
      out.push(demand);
    }
  });
  return out;
}

/**
 * Builds the routing table for a revision in a given state. Pure and deterministic: the same inputs
 * give the same `hash`.
 */
export function buildRoutingTable(revision: Revision, state: RoutingState = {}, opts: RoutingTableOptions = {}): RoutingTable {
  const m = buildModel(revision, state, opts.rounding ?? 'documented');
  const S = m.services.length;
  const H = m.regions.length + 1;
  const homeDemand = homeDemands(m);
  const evacModel = evacuatedModel(revision, state, m, opts.rounding ?? 'documented');
  const evacuated = evacModel ? { model: evacModel, homeDemand: homeDemands(evacModel) } : null;

  const variantStart = new Int32Array(S + 1);
  const thresholdList: number[] = [];
  const rowBase = new Int32Array(S + 1);
  const serviceSeed = new Int32Array(S);
  const flagSeed = new Int32Array(S);
  const retryAttempts = new Int32Array(S);
  const retryBudget = new Float64Array(S);
  const plans: RowPlan[] = [];
  for (let s = 0; s < S; s++) {
    const name = m.services[s] ?? '';
    const policy = m.policies[s];
    serviceSeed[s] = hashSeed(name);
    flagSeed[s] = policy?.flag ? hashSeed(policy.flag) : 0;
    retryAttempts[s] = policy?.retries?.attempts ?? 0;
    retryBudget[s] = policy?.retries?.budget ?? 0;
    const th = m.variants[s]?.thresholds ?? [];
    variantStart[s] = thresholdList.length;
    thresholdList.push(...th);
    rowBase[s] = plans.length;
    const V = th.length + 1;
    for (let h = 0; h < H; h++) {
      for (let v = 0; v < V; v++) {
        const d = demandIndex({ variantStart }, s, v);
        plans.push(rampedRowPlan(m, evacuated?.model ?? null, s, h, v, homeDemand[d] ?? null, evacuated?.homeDemand[d] ?? null));
      }
    }
  }
  variantStart[S] = thresholdList.length;
  rowBase[S] = plans.length;

  // flatten
  const rows = plans.length;
  const rowKind = new Uint8Array(rows);
  const rowWidened = new Uint8Array(rows);
  const rowLevelStart = new Int32Array(rows + 1);
  let levelCount = 0;
  let entryCount = 0;
  for (const p of plans) {
    if (p.outcome !== 'ok') continue;
    levelCount += p.levels.length;
    for (const l of p.levels) entryCount += l.entryClusters.length;
  }
  const levelCum = new Float64Array(levelCount);
  const levelPanic = new Uint8Array(levelCount);
  const levelPrimary = new Uint8Array(levelCount);
  const levelEntryStart = new Int32Array(levelCount + 1);
  const entryCluster = new Int32Array(entryCount);
  const entryCum = new Float64Array(entryCount);
  let li = 0;
  let ei = 0;
  plans.forEach((p, r) => {
    rowKind[r] = p.outcome === 'ok' ? ROW.ok : p.outcome === 'residency-reject' ? ROW.residencyReject : ROW.noHealthy;
    rowWidened[r] = p.widened ? 1 : 0;
    rowLevelStart[r] = li;
    if (p.outcome !== 'ok') return;
    let lastWithShare = -1;
    p.levels.forEach((l, i) => {
      if (l.share > 0 && l.entryClusters.length > 0) lastWithShare = i;
    });
    let cum = 0;
    p.levels.forEach((l, i) => {
      cum += l.share > 0 && l.entryClusters.length > 0 ? l.share : 0;
      levelCum[li] = i >= lastWithShare ? 1 : Math.min(1, cum);
      levelPanic[li] = l.panic ? 1 : 0;
      levelPrimary[li] = i === 0 && l.rank === 0 ? 1 : 0;
      levelEntryStart[li] = ei;
      const n = l.entryClusters.length;
      let total = 0;
      for (let k = 0; k < n; k++) total += l.entryWeights[k] ?? 0;
      let ecum = 0;
      for (let k = 0; k < n; k++) {
        ecum += l.entryWeights[k] ?? 0;
        entryCluster[ei] = l.entryClusters[k] ?? 0;
        entryCum[ei] = k === n - 1 ? 1 : ecum / total;
        ei++;
      }
      li++;
    });
  });
  rowLevelStart[rows] = li;
  levelEntryStart[levelCount] = ei;
  const thresholds = new Int32Array(thresholdList);

  const hash = createHash('sha256');
  const strings = (xs: readonly (string | null)[]): void => void hash.update(JSON.stringify(xs));
  strings(m.services);
  strings(m.clusters);
  strings(m.regions);
  strings(m.canaryVersion);
  strings(m.stableVersion);
  strings([...m.homeOf.entries()].map(([k, v]) => `${k}=${v}`).sort());
  for (const a of [
    m.clusterRegion,
    variantStart,
    thresholds,
    rowBase,
    rowKind,
    rowWidened,
    rowLevelStart,
    levelCum,
    levelPanic,
    levelPrimary,
    levelEntryStart,
    entryCluster,
    entryCum,
    m.canaryBp,
    retryAttempts,
    retryBudget,
  ]) {
    hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  const digest = hash.digest('hex');
  const version = opts.version ?? 0;

  return {
    version,
    hash: digest,
    id: `v${version}-${digest.slice(0, 12)}`,
    revision: m.revision,
    services: m.services,
    clusters: m.clusters,
    regions: m.regions,
    clusterRegion: m.clusterRegion,
    serviceIndex: m.serviceIndex,
    homeIndex: m.homeOf,
    unknownHome: m.regions.length,
    serviceSeed,
    flagSeed,
    variantStart,
    thresholds,
    rowBase,
    rowKind,
    rowWidened,
    rowLevelStart,
    levelCum,
    levelPanic,
    levelPrimary,
    levelEntryStart,
    entryCluster,
    entryCum,
    canaryBp: m.canaryBp,
    canaryVersion: m.canaryVersion,
    stableVersion: m.stableVersion,
    retryAttempts,
    retryBudget,
    model: m,
    homeDemand,
    evacuated,
  };
}

/** Rebuilds the plan of one row with every candidate (for `explain`); the same computation the table was built from. */
export function rowPlan(t: RoutingTable, s: number, home: number, variant: number, detail = true): RowPlan {
  const d = demandIndex(t, s, variant);
  const ev = t.evacuated;
  return rampedRowPlan(t.model, ev?.model ?? null, s, home, variant, t.homeDemand[d] ?? null, ev?.homeDemand[d] ?? null, detail);
}
