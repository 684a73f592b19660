/**
 * The local driver's bookkeeping of what runs: each service track's desired state and its supervised
 * replicas, and the status derived from them (pure: no processes are touched here).
 */
import type { Endpoint, ReplicaStatus, Track, TrackStatus } from '../target.js';
import type { HealthCounter } from './health-checker.js';
import type { SupervisedProcess } from './process-supervisor.js';

/** A local replica's status: the portable fields plus its pid and port. */
export interface LocalReplicaStatus extends ReplicaStatus {
  /** The pid of the replica's process group leader (its watchdog), while it runs. */
  readonly pid: number | null;
  readonly port: number;
  readonly slot: number;
}

/** What a track should run: revision, version, spec hash, replica count, command and environment. */
export interface Desired {
  readonly revisionId: string;
  readonly version: string;
  readonly specHash: string;
  readonly replicas: number;
  readonly healthPath: string | null;
  readonly command: readonly string[];
  readonly cwd: string;
  /** Without PORT and MERIDIAN_REPLICA, which are per replica. Holds resolved secret values: never log it. */
  readonly env: Readonly<Record<string, string>>;
  readonly redact: readonly string[];
}

/** One supervised replica of a track. */
export interface Replica {
  readonly serial: number;
  readonly slot: number;
  readonly specHash: string;
  readonly version: string;
  readonly healthPath: string | null;
  revisionId: string;
  port: number;
  readonly proc: SupervisedProcess;
  readonly health: HealthCounter;
  stopping: boolean;
  /** Set once the replica is being stopped: resolves when its process is gone. */
  stopped: Promise<void> | null;
  readyThisRun: boolean;
  spawnedAt: number;
  lastError: string | null;
}

/** One service track of one cluster: what it should run, its replicas, and its health so far. */
export interface TrackState {
  readonly cluster: string;
  readonly service: string;
  readonly track: Track;
  desired: Desired;
  readonly replicas: Replica[];
  consecutive: number;
  healthy: boolean;
  lastError: string | null;
  timer: unknown;
  timerDue: number;
  roundRunning: boolean;
  removed: boolean;
}

/** The replicas of `t` that run its desired spec and are not stopping, and how many of them are ready. */
export function countsOf(t: TrackState): { current: Replica[]; ready: number } {
  const current = t.replicas.filter((r) => !r.stopping && r.specHash === t.desired.specHash);
  return { current, ready: current.filter(isReady).length };
}

/** A track's portable status (`unhealthyThreshold`: failures that make a ready replica unhealthy). */
export function trackStatusOf(t: TrackState, unhealthyThreshold: number): TrackStatus {
  const { current, ready } = countsOf(t);
  const healthy = ready >= t.desired.replicas;
  const replicas: LocalReplicaStatus[] = t.replicas.map((r) => ({
    id: replicaId(r),
    revisionId: r.revisionId,
    version: r.version,
    current: r.specHash === t.desired.specHash && !r.stopping,
    state: replicaStateOf(r, unhealthyThreshold),
    restarts: r.proc.restarts,
    lastError: r.lastError,
    pid: r.proc.pid ?? null,
    port: r.port,
    slot: r.slot,
  }));
  return {
    service: t.service,
    track: t.track,
    revisionId: t.desired.revisionId,
    version: t.desired.version,
    desiredReplicas: t.desired.replicas,
    readyReplicas: ready,
    healthy,
    consecutiveHealthyChecks: healthy ? t.consecutive : 0,
    restarts: current.reduce((n, r) => n + r.proc.restarts, 0),
    lastError: t.lastError,
    replicas,
  };
}

/** A replica's state as the status shows it. */
export function replicaStateOf(r: Replica, unhealthyThreshold: number): ReplicaStatus['state'] {
  if (r.stopping) return 'stopping';
  if (r.proc.state === 'backoff') return 'restarting';
  if (r.proc.state !== 'running') return 'starting';
  if (r.health.ready) return 'ready';
  return r.health.consecutiveFailures >= unhealthyThreshold ? 'unhealthy' : 'starting';
}

/** Running, health-checked ready, and not being stopped. */
export function isReady(r: Replica): boolean {
  return !r.stopping && r.proc.state === 'running' && r.health.ready;
}

/** A replica's id: its serial and the run of its process. */
export function replicaId(r: Replica): string {
  return `${r.serial}.${r.proc.run}`;
}

/** The running replicas of track `t` as endpoints on `host` (healthy: health-checked ready). */
export function endpointsOf(cluster: string, t: TrackState, host: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const r of t.replicas) {
    if (r.stopping || r.proc.state !== 'running') continue;
    out.push({
      cluster,
      service: t.service,
      track: t.track,
      version: r.version,
      revisionId: r.revisionId,
      host,
      port: r.port,
      healthy: r.health.ready,
      replica: replicaId(r),
    });
  }
  return out;
}
