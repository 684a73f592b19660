/**
 * Wave membership: a cluster is in the first wave whose selector matches it; clusters that no wave
 * matches form an implicit last wave named `remaining`. Pure.
 */
import type { Revision } from '../render/render.js';
import type { Fleet, Wave } from '../spec/schema.js';
import { matches } from '../render/selector.js';

/** Canary steps used when a wave declares none: 10%, 50%, then all traffic. */
export const DEFAULT_STEPS: readonly { weight: number; pause?: string }[] = [{ weight: 10 }, { weight: 50 }, { weight: 100 }];

/** The name of the implicit last wave. */
export const IMPLICIT_WAVE = 'remaining';

/** A wave with its member clusters, in rollout order. */
export interface WaveMembers {
  readonly name: string;
  /** Index in `rollout.waves`, or -1 for the implicit last wave. */
  readonly index: number;
  /** Member clusters, sorted by name. */
  readonly clusters: readonly string[];
  readonly steps: readonly { readonly weight: number; readonly pause?: string | undefined }[];
  readonly approvals: { readonly count: number; readonly roles: readonly string[] } | null;
  readonly maxParallel: number;
  readonly bake: string | null;
}

/** Assigns every cluster of the fleet to its wave. Waves that match no cluster are kept (empty) so plans show them. */
export function assignWaves(fleet: Pick<Fleet, 'rollout' | 'clusters' | 'regions'>): WaveMembers[] {
  const waves: Wave[] = fleet.rollout?.waves ?? [];
  const members: string[][] = waves.map(() => []);
  const rest: string[] = [];
  for (const name of Object.keys(fleet.clusters).sort()) {
    const cluster = fleet.clusters[name];
    const region = cluster ? fleet.regions[cluster.region] : undefined;
    if (!cluster || !region) continue;
    const facts = { name, cluster, regionName: cluster.region, region };
    const i = waves.findIndex((w) => !w.clusters || matches(w.clusters, facts));
    if (i >= 0) members[i]?.push(name);
    else rest.push(name);
  }
  const out: WaveMembers[] = waves.map((w, i) => ({
    name: w.name,
    index: i,
    clusters: members[i] ?? [],
    steps: w.steps && w.steps.length > 0 ? w.steps : DEFAULT_STEPS,
    approvals: w.approvals ?? null,
    maxParallel: w.maxParallel ?? Math.max(1, (members[i] ?? []).length),
    bake: w.bake ?? null,
  }));
  if (rest.length > 0) {
    out.push({
      name: IMPLICIT_WAVE,
      index: -1,
      clusters: rest,
      steps: DEFAULT_STEPS,
      approvals: null,
      maxParallel: rest.length,
      bake: null,
    });
  }
  return out;
}

/** Wave membership from a rendered revision and the fleet's rollout section. */
export function wavesOf(fleet: Pick<Fleet, 'rollout' | 'clusters' | 'regions'>, revision: Revision): WaveMembers[] {
  const present = new Set(Object.keys(revision.clusters));
  return assignWaves(fleet).map((w) => ({ ...w, clusters: w.clusters.filter((c) => present.has(c)) }));
}
