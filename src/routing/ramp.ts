/**
 * The restore ramp in routing: a cluster or region that ramps back after a restore takes `percent` of
 * the traffic it would take in full, and the rest goes where it went while the place was evacuated.
 * Precomputed into each table row (one row, two plans merged), so `decide`, retries, `explain`, traffic
 * tables and the projection exporters read all carry the same shares and the hot path is unchanged. Pure.
 */
import type { Revision } from '../render/render.js';
import { buildModel, type Model } from './model.js';
import type { LoadRounding } from './priority-load.js';
import { buildRowPlan, type LevelPlan, type RowPlan } from './row-plan.js';
import { drainedSet, type RoutingState } from './state.js';

/**
 * The model of the same state with every ramping place still evacuated (drained, no ramp): where a
 * ramping place's turned-away traffic goes. Null when nothing ramps.
 */
export function evacuatedModel(revision: Revision, state: RoutingState, m: Model, rounding: LoadRounding): Model | null {
  const ramping = Object.entries(state.ramp ?? {})
    .filter(([, pct]) => !(pct >= 100))
    .map(([place]) => place);
  if (!m.admission.some((a, c) => a < 1 && m.drained[c] === 0)) return null;
  const drained = new Set([...drainedSet(state.drained), ...ramping]);
  const { ramp: _ramp, ...rest } = state;
  return buildModel(revision, { ...rest, drained }, rounding);
}

/** Per entry of a level: its share of the row's traffic (level share × its weight in the level). */
function entryShares(l: LevelPlan): number[] {
  let total = 0;
  for (const w of l.entryWeights) total += w;
  return l.entryWeights.map((w) => (l.share > 0 && total > 0 ? (l.share * w) / total : 0));
}

interface Merging {
  readonly base: LevelPlan;
  readonly shares: Map<number, number>;
}

/**
 * Merges a row's full plan (ramping places eligible) with its evacuated plan: each cluster keeps
 * `admission × its full share`, and what the ramping clusters turn away is spread as the evacuated plan
 * spreads traffic. Levels are matched by (region rank, cluster priority), the key both plans share.
 * When either plan cannot serve (a locked jurisdiction whose only cluster is ramping back), the full
 * plan stands: turning clients away while a cluster could serve them helps nobody.
 */
export function mergeRamp(full: RowPlan, evacuated: RowPlan, admission: Float64Array): RowPlan {
  if (full.outcome !== 'ok' || evacuated.outcome !== 'ok') return full;
  const key = (l: LevelPlan): number => l.rank * 4294967296 + (l.clusterPriority + 2147483648);
  const merged = new Map<number, Merging>();
  let turnedAway = 0;
  for (const l of full.levels) {
    const shares = new Map<number, number>();
    entryShares(l).forEach((x, i) => {
      const c = l.entryClusters[i] ?? 0;
      const a = admission[c] ?? 1;
      turnedAway += x * (1 - a);
      shares.set(c, x * a);
    });
    merged.set(key(l), { base: l, shares });
  }
  if (!(turnedAway > 0)) return full;
  for (const l of evacuated.levels) {
    let m = merged.get(key(l));
    if (!m) merged.set(key(l), (m = { base: l, shares: new Map() }));
    const into = m.shares;
    entryShares(l).forEach((x, i) => {
      const c = l.entryClusters[i] ?? 0;
      into.set(c, (into.get(c) ?? 0) + turnedAway * x);
    });
  }
  const levels = [...merged.values()]
    .sort((a, b) => a.base.rank - b.base.rank || a.base.clusterPriority - b.base.clusterPriority)
    .map(({ base, shares }): LevelPlan => {
      const entries = [...shares].filter(([, x]) => x > 0);
      const share = entries.reduce((sum, [, x]) => sum + x, 0);
      // a level with no traffic keeps its weights: a retry may still pick it
      if (!(share > 0)) return { ...base, share: 0 };
      return { ...base, share, entryClusters: entries.map(([c]) => c), entryWeights: entries.map(([, x]) => x) };
    });
  return { ...full, widened: full.widened || evacuated.widened, levels };
}

/** One row with the ramp applied: the full plan, merged with the evacuated one when a place ramps. */
export function rampedRowPlan(
  m: Model,
  evacuated: Model | null,
  s: number,
  home: number,
  variant: number,
  homeDemand: Float64Array | null,
  evacuatedDemand: Float64Array | null,
  detail = false,
): RowPlan {
  const full = buildRowPlan(m, s, home, variant, homeDemand, detail);
  if (evacuated === null) return full;
  return mergeRamp(full, buildRowPlan(evacuated, s, home, variant, evacuatedDemand), m.admission);
}
