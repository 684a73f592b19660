/**
 * Envoy's priority-load arithmetic, pure: the health of each priority level, the share of traffic
 * ("priority load") each level receives, and which levels are in panic. Reproduces the tables of
 * Envoy's "Priority levels" and "Panic threshold" architecture pages.
 *
 * Meridian measures a level by cluster weights (`healthyWeight / totalWeight`) where Envoy counts hosts;
 * this is Envoy's own `weighted_priority_health` mode, and equal weights give Envoy's host counts.
 */

/** How integer loads are rounded when the normalised total health is below 100. */
export type LoadRounding = 'documented' | 'envoy';

/** One priority level's capacity to take traffic. */
export interface PriorityLevelInput {
  /** Σ weight × health fraction of the level's available clusters. */
  readonly healthyWeight: number;
  /** Σ weight of every cluster in the level, available or not (drained and excluded clusters are not in it). */
  readonly totalWeight: number;
}

export interface PriorityLoadOptions {
  /** Envoy's overprovisioning factor; default 1.4. */
  readonly overprovisioningFactor?: number;
  /** Panic threshold as a fraction (0.5 = 50%); 0 disables panic. Default 0.5. */
  readonly panicThreshold?: number;
  /**
   * `documented` (default) splits the rounding remainder by largest remainder, which reproduces every
   * table in Envoy's documentation; `envoy` truncates and gives the remainder to the first level with
   * health, as Envoy's C++ (`distributeLoad`) does — the two differ by at most one point per level, and
   * only when the normalised total health is below 100.
   */
  readonly rounding?: LoadRounding;
}

/** The outcome for a list of levels, P0 first. */
export interface PriorityLoad {
  /** Integer health score per level, 0..100: `min(100, ⌊opf% × healthy / total⌋)`. */
  readonly health: readonly number[];
  /** `100 × healthyWeight / totalWeight` per level, unrounded (what the panic threshold is compared with). */
  readonly healthyPercent: readonly number[];
  /** `min(100, Σ health)`. */
  readonly normalizedTotalHealth: number;
  /** Integer percent of traffic per level; sums to 100, or every entry is 0 when no level can take traffic. */
  readonly load: readonly number[];
  /** Per level: whether it routes to all its clusters regardless of health. */
  readonly panic: readonly boolean[];
  /** Every level is in panic: loads follow total weight instead of health. */
  readonly allPanic: boolean;
}

const EPS = 1e-9;

/**
 * The health score of one level, as Envoy computes it: `min(100, ⌊opf% × healthy / total⌋)` with the
 * overprovisioning factor in integer percent (1.4 → 140). A level with no weight has health 0.
 */
export function levelHealth(healthyWeight: number, totalWeight: number, overprovisioningFactor = 1.4): number {
  if (!(totalWeight > 0) || !(healthyWeight > 0)) return 0;
  const opf = Math.round(overprovisioningFactor * 100);
  return Math.min(100, Math.floor((opf * healthyWeight) / totalWeight + EPS));
}

/** Splits 100 in proportion to `parts` (Σ parts > 0), as integers, by the chosen rounding. */
function apportion(parts: readonly number[], rounding: LoadRounding): number[] {
  const total = parts.reduce((a, b) => a + b, 0);
  const exact = parts.map((p) => (p * 100) / total);
  const out = exact.map((x) => Math.floor(x + EPS));
  let rest = 100 - out.reduce((a, b) => a + b, 0);
  if (rest <= 0) return out;
  if (rounding === 'envoy') {
    const first = parts.findIndex((p) => p > 0);
    out[first] = (out[first] ?? 0) + rest;
    return out;
  }
  const order = exact.map((x, i) => ({ i, frac: x - Math.floor(x + EPS) })).sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const { i } of order) {
    if (rest === 0) break;
    out[i] = (out[i] ?? 0) + 1;
    rest--;
  }
  return out;
}

/**
 * Envoy's priority load for levels P0, P1, …:
 *
 * ```
 * health(P_X) = min(100, ⌊opf% × healthy_X / total_X⌋)
 * normalized_total_health = min(100, Σ health)
 * load(P_0) = min(100, health(P_0) × 100 / normalized_total_health)
 * load(P_X) = min(100 − Σ load(P_0..P_X−1), health(P_X) × 100 / normalized_total_health)
 * ```
 *
 * Panic (Envoy "Panic threshold"): while the normalised total health is 100 no level panics; below
 * 100, a level whose healthy percentage is under the threshold routes to all its clusters regardless
 * of health. When every level panics, load follows each level's share of the total weight.
 */
export function priorityLoad(levels: readonly PriorityLevelInput[], opts: PriorityLoadOptions = {}): PriorityLoad {
  const opf = opts.overprovisioningFactor ?? 1.4;
  const threshold = (opts.panicThreshold ?? 0.5) * 100;
  const rounding = opts.rounding ?? 'documented';
  const health = levels.map((l) => levelHealth(l.healthyWeight, l.totalWeight, opf));
  const healthyPercent = levels.map((l) => (l.totalWeight > 0 ? (100 * Math.max(0, l.healthyWeight)) / l.totalWeight : 0));
  const sum = health.reduce((a, b) => a + b, 0);
  const normalizedTotalHealth = Math.min(100, sum);

  const panic = levels.map((_, i) => normalizedTotalHealth < 100 && threshold > 0 && (healthyPercent[i] ?? 0) < threshold - EPS);
  const allPanic = levels.length > 0 && panic.every(Boolean);

  let load: number[];
  if (allPanic) {
    const weights = levels.map((l) => Math.max(0, l.totalWeight));
    load = weights.some((w) => w > 0) ? apportion(weights, rounding) : levels.map(() => 0);
  } else if (normalizedTotalHealth === 0) {
    load = levels.map(() => 0);
  } else if (sum >= 100) {
    // health scores are integers and the normaliser is 100: sequential capping is exact
    let rest = 100;
    load = health.map((h) => {
      const l = Math.min(rest, h);
      rest -= l;
      return l;
    });
  } else {
    load = apportion(health, rounding);
  }
  return { health, healthyPercent, normalizedTotalHealth, load, panic, allPanic };
}

/**
 * Convenience for the documentation's tables: each level given as its percentage of healthy hosts
 * (equal weights).
 */
export function priorityLoadFromPercents(healthyPercents: readonly number[], opts: PriorityLoadOptions = {}): PriorityLoad {
  return priorityLoad(
    healthyPercents.map((p) => ({ healthyWeight: p, totalWeight: 100 })),
    opts,
  );
}
