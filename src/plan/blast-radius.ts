/**
 * Blast radius: for each client region, the share of its traffic that could reach the new version at
 * each canary step of each wave. Pure.
 *
 * At step s of wave w, region r is exposed to
 *   Σ share[r][c] over changed clusters c of earlier waves (they finished: all their traffic is new)
 * + Σ share[r][c] × weight(s) / 100 over changed clusters c of wave w.
 */
import { PlanError } from '../errors.js';

/** `shares[clientRegion][cluster]`: the fraction (0..1) of that region's traffic the cluster serves when all is healthy. */
export type TrafficShares = Readonly<Record<string, Readonly<Record<string, number>>>>;

/** What the blast radius needs of a wave. */
export interface WaveSteps {
  readonly name: string;
  readonly clusters: readonly string[];
  readonly steps: readonly { readonly weight: number }[];
}

/** One row: a step of a wave, and each client region's exposure after it. */
export interface BlastStep {
  readonly wave: string;
  /** 1-based index of the step within its wave. */
  readonly step: number;
  /** The canary weight of the step, in percent. */
  readonly weight: number;
  /** Client region → fraction of its traffic that can reach the new version, rounded to 4 decimals. */
  readonly share: Readonly<Record<string, number>>;
}

export interface BlastRadius {
  /** Client regions, sorted. */
  readonly regions: readonly string[];
  /** Rows in rollout order; waves without member clusters have none. */
  readonly steps: readonly BlastStep[];
}

/** Rounds to 4 decimals for output (sums are kept exact until then). */
export function round4(x: number): number {
  const r = Math.round(x * 10_000) / 10_000;
  return r === 0 ? 0 : r; // no -0 in output
}

/**
 * Computes the blast radius of a rollout. `changed` are the clusters that will run the new version;
 * clusters that do not change expose nobody. Throws MERIDIAN_E_PLAN_SHARES for a share outside 0..1 or a
 * region whose shares add up to more than 1.
 */
export function blastRadius(waves: readonly WaveSteps[], changed: Iterable<string>, shares: TrafficShares): BlastRadius {
  const regions = Object.keys(shares).sort();
  for (const r of regions) {
    let sum = 0;
    for (const [cluster, s] of Object.entries(shares[r] ?? {})) {
      if (!Number.isFinite(s) || s < 0 || s > 1) {
        throw new PlanError(
          'MERIDIAN_E_PLAN_SHARES',
          `the traffic share of client region ${r} on cluster ${cluster} is ${s}, not a fraction between 0 and 1`,
        );
      }
      sum += s;
    }
    if (sum > 1 + 1e-9) {
      throw new PlanError(
        'MERIDIAN_E_PLAN_SHARES',
        `the traffic shares of client region ${r} add up to ${round4(sum)}, more than all of its traffic`,
      );
    }
  }
  const isChanged = new Set(changed);
  const done: Record<string, number> = Object.fromEntries(regions.map((r) => [r, 0]));
  const steps: BlastStep[] = [];
  for (const wave of waves) {
    if (wave.clusters.length === 0) continue;
    const inWave: Record<string, number> = {};
    for (const r of regions) {
      let s = 0;
      for (const c of wave.clusters) if (isChanged.has(c)) s += shares[r]?.[c] ?? 0;
      inWave[r] = s;
    }
    wave.steps.forEach((step, i) => {
      const share: Record<string, number> = {};
      for (const r of regions) share[r] = round4((done[r] ?? 0) + ((inWave[r] ?? 0) * step.weight) / 100);
      steps.push({ wave: wave.name, step: i + 1, weight: step.weight, share });
    });
    // once the wave completes, every member runs the new version for all of its traffic
    for (const r of regions) done[r] = (done[r] ?? 0) + (inWave[r] ?? 0);
  }
  return { regions, steps };
}
