/**
 * Rollouts as the control plane lists them (`GET /api/v1/rollouts`, the `rollout` event) and the canary
 * weights in force that the routing view carries, both read from a rollout's record and events.
 */
import type { Revision } from '../render/render.js';
import { changedServices } from '../rollout/engine.js';
import { FINAL_STATES } from '../rollout/events.js';
import { asSpec } from '../rollout/rollout-spec.js';
import { rolloutView } from '../rollout/summary.js';
import type { RoutingView } from '../routing/view.js';
import type { RolloutRecord, Store } from '../store/store.js';

/** A rollout as listed. */
export interface RolloutSummary {
  readonly id: string;
  readonly kind: string;
  readonly fleet: string;
  readonly state: string;
  readonly revision: string;
  readonly from: string | null;
  readonly author: string;
  readonly wave: string | null;
  readonly waveIndex: number;
  readonly step: number | null;
  /** The highest canary weight in force, percent, or null. */
  readonly canaryWeight: number | null;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

/** The listing form of a rollout. */
export async function rolloutSummary(store: Store, r: RolloutRecord): Promise<RolloutSummary> {
  const spec = asSpec(r.spec);
  let canaryWeight: number | null = null;
  if (!FINAL_STATES.includes(r.state)) {
    const view = rolloutView(r, spec, await store.listRolloutEvents(r.id), [], Date.now());
    const ws = Object.values(view.weights);
    canaryWeight = ws.length > 0 ? Math.max(...ws) : null;
  }
  return {
    id: r.id,
    kind: r.kind,
    fleet: r.fleet,
    state: r.state,
    revision: r.toRevision,
    from: r.fromRevision,
    author: r.author,
    wave: spec.config.waves[r.wave]?.name ?? null,
    waveIndex: r.wave,
    step: r.step,
    canaryWeight,
    startedAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
  };
}

/** Adds the canary weights an active rollout has in force, by service and cluster, to `into`. */
export async function addCanaries(
  store: Store,
  revisionById: (id: string) => Promise<Revision | undefined>,
  r: RolloutRecord,
  into: Record<string, Record<string, { weight: number; version: string }>>,
): Promise<RoutingView['canary']> {
  const spec = asSpec(r.spec);
  const view = rolloutView(r, spec, await store.listRolloutEvents(r.id), [], Date.now());
  const to = await revisionById(spec.revision);
  const from = spec.previous ? await revisionById(spec.previous) : undefined;
  for (const [cluster, weight] of Object.entries(view.weights)) {
    const toState = to?.clusters[cluster];
    if (!toState) continue;
    for (const svc of changedServices(from?.clusters[cluster], toState)) {
      const version = toState.services[svc]?.version;
      if (version !== undefined) (into[svc] ??= {})[cluster] = { weight, version };
    }
  }
  return into;
}
