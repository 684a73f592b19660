/**
 * Whether a Deployment has rolled out, by the rules kstatus (cli-utils) and `kubectl rollout status` use,
 * pinned to the generation Meridian's own apply produced: a status the controller wrote for an older
 * generation never counts. Pure.
 */

/** The parts of a Deployment this reads. */
export interface DeploymentLike {
  readonly metadata?: { readonly generation?: number; readonly deletionTimestamp?: unknown };
  readonly spec?: { readonly replicas?: number; readonly progressDeadlineSeconds?: number; readonly paused?: boolean };
  readonly status?: {
    readonly observedGeneration?: number;
    readonly replicas?: number;
    readonly updatedReplicas?: number;
    readonly readyReplicas?: number;
    readonly availableReplicas?: number;
    readonly conditions?: readonly {
      readonly type?: string;
      readonly status?: string;
      readonly reason?: string;
      readonly message?: string;
    }[];
  };
}

/** `current`: rolled out; `in-progress` with the reason; `failed`: it will not get there by itself. */
export interface RolloutState {
  readonly state: 'current' | 'in-progress' | 'failed' | 'terminating';
  readonly reason: string;
}

/**
 * The Deployment's rollout state. `appliedGeneration` is the `metadata.generation` Meridian's apply
 * returned (0 when unknown); the controller must have observed at least that and the object's own.
 */
export function deploymentState(d: DeploymentLike, appliedGeneration = 0): RolloutState {
  if (d.metadata?.deletionTimestamp) return { state: 'terminating', reason: 'being deleted' };
  const generation = Math.max(d.metadata?.generation ?? 0, appliedGeneration);
  const observed = d.status?.observedGeneration ?? 0;
  if (observed < generation) return { state: 'in-progress', reason: `generation ${generation} not observed yet (observed ${observed})` };
  const conditions = d.status?.conditions ?? [];
  const progressing = conditions.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return {
      state: 'failed',
      reason: `progress deadline exceeded: ${progressing.message ?? 'the new pods did not become available in time'}`,
    };
  }
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const replicas = s.replicas ?? 0;
  const updated = s.updatedReplicas ?? 0;
  const ready = s.readyReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (want > replicas) return { state: 'in-progress', reason: `${replicas} of ${want} replicas exist` };
  if (want > updated) return { state: 'in-progress', reason: `${updated} of ${want} replicas updated` };
  if (replicas > updated) return { state: 'in-progress', reason: `${replicas - updated} old replicas still terminating` };
  if (updated > available) return { state: 'in-progress', reason: `${available} of ${updated} updated replicas available` };
  if (want > ready) return { state: 'in-progress', reason: `${ready} of ${want} replicas ready` };
  if (want > 0) {
    const avail = conditions.find((c) => c.type === 'Available');
    if (avail?.status !== 'True') return { state: 'in-progress', reason: 'not Available yet' };
    if (
      d.spec?.progressDeadlineSeconds !== undefined &&
      (progressing?.status !== 'True' || progressing.reason !== 'NewReplicaSetAvailable')
    ) {
      return { state: 'in-progress', reason: `Progressing: ${progressing?.reason ?? 'unknown'}` };
    }
  }
  return { state: 'current', reason: 'rolled out' };
}
