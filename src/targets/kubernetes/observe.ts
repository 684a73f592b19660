/**
 * From what a cluster's API server reports (Deployments and pods) to the target's view: track statuses,
 * endpoints, and the events between two looks. Pure: the driver lists, this decides.
 */
import type { ClusterStatus, Endpoint, ReplicaStatus, TargetEvent, Track, TrackStatus } from '../target.js';
import { type DeploymentLike, deploymentState } from './kstatus.js';
import { ANNOTATION, LABEL } from './manifests.js';

/** The parts of a pod this reads. */
export interface PodLike {
  readonly metadata?: {
    readonly uid?: string;
    readonly name?: string;
    readonly labels?: Record<string, string>;
    readonly deletionTimestamp?: unknown;
  };
  readonly spec?: {
    readonly containers?: readonly {
      readonly ports?: readonly { containerPort?: number }[];
      readonly env?: readonly { name?: string; value?: string }[];
    }[];
  };
  readonly status?: {
    readonly podIP?: string;
    readonly conditions?: readonly { readonly type?: string; readonly status?: string }[];
    readonly containerStatuses?: readonly {
      readonly restartCount?: number;
      readonly state?: {
        readonly waiting?: { readonly reason?: string; readonly message?: string };
        readonly terminated?: { readonly reason?: string; readonly exitCode?: number };
      };
    }[];
  };
}

export interface DeploymentObject extends DeploymentLike {
  readonly metadata?: DeploymentLike['metadata'] & {
    readonly name?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
  };
}

/** One look at a cluster. */
export interface Observation {
  readonly status: ClusterStatus;
  readonly endpoints: readonly Endpoint[];
  /** Per replica id: the replica and its endpoint facts, for the next diff. */
  readonly replicas: ReadonlyMap<
    string,
    { service: string; track: Track; revisionId: string; version: string; state: ReplicaStatus['state'] }
  >;
  /** `service/track` of every track with a Deployment or pods left, with its last revision and version. */
  readonly present: ReadonlyMap<string, { service: string; track: Track; revisionId: string; version: string }>;
}

/** Consecutive healthy looks per track: the driver's memory between looks. */
export type CheckCounts = Map<string, { revisionId: string; n: number }>;

function envOf(p: PodLike, name: string): string | undefined {
  return p.spec?.containers?.[0]?.env?.find((e) => e.name === name)?.value;
}

function podState(p: PodLike): ReplicaStatus['state'] {
  if (p.metadata?.deletionTimestamp) return 'stopping';
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  if (ready) return 'ready';
  const cs = p.status?.containerStatuses?.[0];
  if (cs?.state?.waiting?.reason === 'CrashLoopBackOff') return 'restarting';
  if ((cs?.restartCount ?? 0) > 0 || cs?.state?.terminated) return 'unhealthy';
  return 'starting';
}

/**
 * The cluster as the target reports it. `applied` holds the generation Meridian's own apply returned per
 * Deployment name; `counts` the consecutive healthy looks, updated when `count` is true.
 */
export function observe(
  cluster: string,
  deployments: readonly DeploymentObject[],
  pods: readonly PodLike[],
  applied: ReadonlyMap<string, number>,
  counts: CheckCounts,
  count: boolean,
): Observation {
  const services: Record<string, Partial<Record<Track, TrackStatus>>> = {};
  const endpoints: Endpoint[] = [];
  const replicas = new Map<string, { service: string; track: Track; revisionId: string; version: string; state: ReplicaStatus['state'] }>();
  for (const d of deployments) {
    const labels = d.metadata?.labels ?? {};
    const service = labels[LABEL.service];
    const track = labels[LABEL.track] as Track | undefined;
    if (!service || (track !== 'stable' && track !== 'canary')) continue;
    const revisionId = labels[LABEL.revision] ?? '';
    const version = d.metadata?.annotations?.[ANNOTATION.version] ?? labels[LABEL.version] ?? '';
    const hash = labels[LABEL.specHash] ?? '';
    let specRevisions: Record<string, string> = {};
    try {
      specRevisions = JSON.parse(d.metadata?.annotations?.[ANNOTATION.specRevisions] ?? '{}') as Record<string, string>;
    } catch {
      specRevisions = {};
    }
    const mine = pods.filter((p) => p.metadata?.labels?.[LABEL.service] === service && p.metadata.labels[LABEL.track] === track);
    const rs: ReplicaStatus[] = [];
    let restarts = 0;
    let lastError: string | null = null;
    for (const p of mine) {
      const podHash = p.metadata?.labels?.[LABEL.specHash] ?? '';
      const current = podHash === hash;
      const state = podState(p);
      const cs = p.status?.containerStatuses?.[0];
      const err = cs?.state?.waiting?.message ?? cs?.state?.waiting?.reason ?? cs?.state?.terminated?.reason ?? null;
      const id = p.metadata?.uid ?? p.metadata?.name ?? '';
      const rev = current ? revisionId : (specRevisions[podHash] ?? 'unknown');
      const ver = envOf(p, 'MERIDIAN_VERSION') ?? version;
      if (current) {
        restarts += cs?.restartCount ?? 0;
        if (err && err !== 'ContainerCreating') lastError = err;
      }
      rs.push({ id, revisionId: rev, version: ver, current, state, restarts: cs?.restartCount ?? 0, lastError: err });
      replicas.set(id, { service, track, revisionId: rev, version: ver, state });
      const port = p.spec?.containers?.[0]?.ports?.[0]?.containerPort;
      if (p.status?.podIP && port !== undefined && state !== 'stopping') {
        endpoints.push({
          cluster,
          service,
          track,
          version: ver,
          revisionId: rev,
          host: p.status.podIP,
          port,
          healthy: state === 'ready',
          replica: id,
        });
      }
    }
    const ks = deploymentState(d, applied.get(d.metadata?.name ?? '') ?? 0);
    if (ks.state === 'terminating') continue;
    const observed = !ks.reason.startsWith('generation');
    const ready = observed ? rs.filter((r) => r.current && r.state === 'ready').length : 0;
    const desired = d.spec?.replicas ?? 1;
    const healthy = ks.state === 'current' && ready >= desired;
    if (ks.state === 'failed') lastError = ks.reason;
    // the ReplicaSet cannot create pods (a ResourceQuota, a LimitRange, admission): the Deployment says why
    const replicaFailure = d.status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
    if (replicaFailure && ks.state !== 'current')
      lastError = `pods cannot be created: ${replicaFailure.message ?? replicaFailure.reason ?? ''}`;
    const key = `${service}/${track}`;
    let c = counts.get(key);
    if (!c || c.revisionId !== revisionId) counts.set(key, (c = { revisionId, n: 0 }));
    if (count) c.n = healthy ? c.n + 1 : 0;
    else if (!healthy) c.n = 0;
    (services[service] ??= {})[track] = {
      service,
      track,
      revisionId,
      version,
      desiredReplicas: desired,
      readyReplicas: ready,
      healthy,
      consecutiveHealthyChecks: healthy ? c.n : 0,
      restarts,
      lastError,
      replicas: rs.sort((a, b) => a.id.localeCompare(b.id)),
    };
  }
  const present = new Map<string, { service: string; track: Track; revisionId: string; version: string }>();
  for (const r of replicas.values()) present.set(`${r.service}/${r.track}`, r);
  for (const t of Object.values(services).flatMap((x) => Object.values(x))) present.set(`${t.service}/${t.track}`, t);
  endpoints.sort((a, b) => `${a.service}/${a.track}/${a.host}`.localeCompare(`${b.service}/${b.track}/${b.host}`));
  return {
    status: { cluster, services: Object.fromEntries(Object.entries(services).sort(([a], [b]) => a.localeCompare(b))) },
    endpoints,
    replicas,
    present,
  };
}

/** The events between two looks at a cluster (replicas started, ready, stopped; tracks healthy, removed). */
export function diffEvents(cluster: string, before: Observation | undefined, after: Observation, at: number): TargetEvent[] {
  const out: TargetEvent[] = [];
  const prev = before?.replicas ?? new Map<string, never>();
  for (const [id, r] of after.replicas) {
    const p = prev.get(id);
    const base = { cluster, service: r.service, track: r.track, revisionId: r.revisionId, version: r.version, at, replica: id };
    if (!p) out.push({ type: 'replica-started', ...base });
    if (r.state === 'ready' && p?.state !== 'ready') out.push({ type: 'replica-ready', ...base });
    if (p?.state === 'ready' && r.state === 'unhealthy') out.push({ type: 'replica-unhealthy', ...base });
  }
  for (const [id, p] of prev) {
    if (!after.replicas.has(id)) {
      out.push({
        type: 'replica-stopped',
        cluster,
        service: p.service,
        track: p.track,
        revisionId: p.revisionId,
        version: p.version,
        at,
        replica: id,
      });
    }
  }
  const tracks = (o: Observation | undefined): Map<string, TrackStatus> =>
    new Map(Object.values(o?.status.services ?? {}).flatMap((t) => Object.values(t).map((s) => [`${s.service}/${s.track}`, s] as const)));
  const tb = tracks(before);
  const ta = tracks(after);
  for (const [k, s] of ta) {
    const p = tb.get(k);
    const base = { cluster, service: s.service, track: s.track, revisionId: s.revisionId, version: s.version, at };
    if (s.healthy && !(p?.healthy && p.revisionId === s.revisionId)) out.push({ type: 'track-healthy', ...base });
    if (!s.healthy && p?.healthy && p.revisionId === s.revisionId) out.push({ type: 'track-unhealthy', ...base });
  }
  for (const [k, p] of before?.present ?? []) {
    if (!after.present.has(k))
      out.push({ type: 'track-removed', cluster, service: p.service, track: p.track, revisionId: p.revisionId, version: p.version, at });
  }
  return out;
}
