/**
 * The deployment target interface: what the rollout and the router need from a driver (local processes,
 * Kubernetes, GitOps) — apply a revision to a cluster, report what runs and whether it is healthy, remove.
 * Nothing here assumes processes, ports on this machine or any particular platform.
 */
import type { RenderedCluster } from '../render/render.js';
import type { RoutingEndpoint, Track } from '../routing/view.js';
import { TargetError } from './errors.js';

/** The kinds of driver; a cluster's `driver` field names one. */
export const TARGET_KINDS = ['local', 'kubernetes', 'gitops'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** Tracks of one service in one cluster (`stable`, `canary`): defined with the routing view. */
export { TRACKS, type Track } from '../routing/view.js';

/** Asks a driver to make one track of a cluster run a revision's rendered state. */
export interface ApplyRequest {
  readonly cluster: string;
  /** The revision the state was rendered from; every status and endpoint is labelled with it. */
  readonly revisionId: string;
  readonly state: RenderedCluster;
  readonly track: Track;
  /**
   * Only these services (the others on the track are left as they are). Without it the track is made to
   * match `state` exactly: services not in it are removed from the track.
   */
  readonly services?: readonly string[];
}

/** Asks a driver to stop running something in a cluster; without `track`/`services`, everything. */
export interface RemoveRequest {
  readonly cluster: string;
  readonly track?: Track;
  readonly services?: readonly string[];
}

/** One replica (a process, a pod) of a service track. */
export interface ReplicaStatus {
  /** Driver-specific identity that changes whenever the replica is replaced or restarted (pid, pod uid). */
  readonly id: string;
  /** The revision this replica was started for (or adopted into, when its rendered spec is unchanged). */
  readonly revisionId: string;
  readonly version: string;
  /** True when the replica runs the track's current rendered spec; false for one being replaced. */
  readonly current: boolean;
  /** `starting` (not ready yet), `ready`, `unhealthy` (failed its checks), `restarting` (crashed, waiting), `stopping`. */
  readonly state: 'starting' | 'ready' | 'unhealthy' | 'restarting' | 'stopping';
  readonly restarts: number;
  readonly lastError: string | null;
}

/** The state of one service's track in one cluster. */
export interface TrackStatus {
  readonly service: string;
  readonly track: Track;
  /** The revision last applied to this track (the desired one, which may not be running yet). */
  readonly revisionId: string;
  readonly version: string;
  readonly desiredReplicas: number;
  /** Replicas that run `revisionId`'s rendered spec and pass their health checks. Never counts leftovers of an earlier revision. */
  readonly readyReplicas: number;
  /** `readyReplicas >= desiredReplicas`: health of the processes that run this revision, never of a previous one. */
  readonly healthy: boolean;
  /**
   * Consecutive health-check rounds, counted since `revisionId` was applied, in which the track was healthy;
   * reset to 0 by any failed round, crash or new revision. A wave waits for this to reach its threshold.
   */
  readonly consecutiveHealthyChecks: number;
  /** Restarts after crashes, summed over the current replicas. */
  readonly restarts: number;
  /** The most recent problem (a crash, a failed check, a start error), or null. Never contains a secret value. */
  readonly lastError: string | null;
  readonly replicas: readonly ReplicaStatus[];
}

/** What runs in one cluster: per service, per track. */
export interface ClusterStatus {
  readonly cluster: string;
  readonly services: Readonly<Record<string, Partial<Record<Track, TrackStatus>>>>;
}

/** Where one replica of a service track can be reached: what routers get (a {@link RoutingEndpoint}), and the revision it runs. */
export interface Endpoint extends RoutingEndpoint {
  readonly revisionId: string;
}

/** Changes a driver reports as they happen, so that the router can react without polling. */
export const TARGET_EVENT_TYPES = [
  'replica-started',
  'replica-ready',
  'replica-unhealthy',
  'replica-exited',
  'replica-restarting',
  /**
   * The replica is about to be stopped (replaced, scaled in, removed): take it out of rotation now. The
   * driver waits a drain delay after this before it signals the replica, so that routers stop sending it
   * new requests first (as Kubernetes removes a pod from its endpoints before SIGTERM).
   */
  'replica-draining',
  'replica-stopped',
  'track-healthy',
  'track-unhealthy',
  'track-removed',
] as const;
export type TargetEventType = (typeof TARGET_EVENT_TYPES)[number];

export interface TargetEvent {
  readonly type: TargetEventType;
  readonly cluster: string;
  readonly service: string;
  readonly track: Track;
  readonly revisionId: string;
  readonly version: string;
  /** Epoch milliseconds. */
  readonly at: number;
  /** Absent on `track-*` events. */
  readonly replica?: string;
  /** A human-readable reason (exit code, failed check…); never a secret value. */
  readonly reason?: string;
  /** On `replica-restarting`: the wait before the restart, and which consecutive restart this is (1-based). */
  readonly delayMs?: number;
  readonly attempt?: number;
}

export type TargetEventListener = (event: TargetEvent) => void;

/** A deployment driver. Every method may be called for any cluster; unknown clusters are simply empty. */
export interface Target {
  readonly kind: TargetKind;
  /**
   * Makes a cluster's track run the given state. Idempotent: applying what already runs changes nothing.
   * A service whose rendered spec changed is replaced rolling (new replicas first, old ones stopped as the
   * new ones become ready); one whose spec did not change is kept running and relabelled with the new
   * revision (its consecutive-check count starts again from 0). Resolves once the change is under way, not
   * when it is healthy: watch {@link status} or the events for that.
   */
  apply(req: ApplyRequest): Promise<void>;
  /** Stops what the request names and resolves when it no longer runs. */
  remove(req: RemoveRequest): Promise<void>;
  status(cluster: string): Promise<ClusterStatus>;
  /** Every reachable replica of the cluster, labelled with its track, version and revision. */
  endpoints(cluster: string): readonly Endpoint[];
  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(listener: TargetEventListener): () => void;
  /** Stops everything this driver started (for drivers that start things) and releases its resources. */
  close(): Promise<void>;
}

/** The status of one service track, or undefined when that track does not run the service. */
export function trackStatus(status: ClusterStatus, service: string, track: Track): TrackStatus | undefined {
  return status.services[service]?.[track];
}

/**
 * True when the track runs `revisionId` and has been healthy for at least `checks` consecutive rounds.
 * This is the condition a rollout wave waits for.
 */
export function isHealthyAt(status: ClusterStatus, service: string, track: Track, revisionId: string, checks = 1): boolean {
  const t = trackStatus(status, service, track);
  return t !== undefined && t.revisionId === revisionId && t.healthy && t.consecutiveHealthyChecks >= checks;
}

/** Polls {@link Target.status} until `predicate` holds; rejects with the last status after `timeoutMs`. */
export async function waitForStatus(
  target: Pick<Target, 'status'>,
  cluster: string,
  predicate: (status: ClusterStatus) => boolean,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<ClusterStatus> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await target.status(cluster);
    if (predicate(status)) return status;
    if (Date.now() >= deadline) {
      throw new TargetError(
        'MERIDIAN_E_TARGET_TIMEOUT',
        `timed out after ${timeoutMs} ms waiting for cluster ${cluster}; last status: ${JSON.stringify(status)}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
