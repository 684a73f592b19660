/**
 * The control plane's fleet view: each cluster, what runs in it and its health, as `GET /api/v1/clusters`
 * and the `health` event show it — built from what the fleet link reports, or from what the store records
 * when there is no link. Pure: the caller reads the fleet and the store.
 */
import type { Revision } from '../render/render.js';
import type { Track } from '../routing/view.js';
import type { Store } from '../store/store.js';
import type { TrackStatus } from '../targets/target.js';

/** One service track in a cluster, for `GET /api/v1/clusters`. */
export interface ClusterServiceView {
  readonly service: string;
  readonly track: Track;
  readonly revision: string;
  readonly version: string;
  readonly healthy: boolean;
  readonly replicas: number;
  readonly ready: number;
  readonly restarts: number;
  readonly lastError: string | null;
}

/** A cluster, what runs in it and its health. */
export interface ClusterView {
  readonly name: string;
  readonly region: string;
  readonly jurisdiction: string;
  readonly drained: boolean;
  /** Every track reports healthy (false when the fleet cannot be reached). */
  readonly healthy: boolean;
  /** The revision the store records as running there. */
  readonly revision: string | null;
  readonly status: string | null;
  readonly reachable: boolean;
  readonly error: string | null;
  readonly services: readonly ClusterServiceView[];
}

/** What the store records each cluster runs (`Store.clusterStates`). */
export type ClusterRecords = Awaited<ReturnType<Store['clusterStates']>>;

/** A cluster or its region is drained. */
export function isDrained(drained: ReadonlySet<string>, c: { readonly name: string; readonly region: string }): boolean {
  return drained.has(c.name) || drained.has(c.region);
}

export function serviceView(service: string, t: TrackStatus): ClusterServiceView {
  return {
    service,
    track: t.track,
    revision: t.revisionId,
    version: t.version,
    healthy: t.healthy,
    replicas: t.desiredReplicas,
    ready: t.readyReplicas,
    restarts: t.restarts,
    lastError: t.lastError,
  };
}

/** One cluster's view from its tracks as reported (`reachable`: the fleet answered for it). */
export function clusterView(
  rev: Revision | null,
  records: ClusterRecords,
  drained: ReadonlySet<string>,
  name: string,
  services: ClusterServiceView[],
  reachable: boolean,
  error: string | null,
): ClusterView {
  const c = rev?.clusters[name];
  const region = c?.region ?? '';
  const rec = records[name];
  return {
    name,
    region,
    jurisdiction: c?.jurisdiction ?? '',
    drained: isDrained(drained, { name, region }),
    healthy: reachable && services.every((s) => s.healthy),
    revision: rec?.revisionId ?? null,
    status: rec?.status ?? null,
    reachable,
    error,
    services: services.sort((a, b) => (a.service + a.track < b.service + b.track ? -1 : 1)),
  };
}

/** Every cluster of `rev` from its tracks as the fleet reported them (null: the fleet did not answer for it). */
export function clustersFromStatus(
  rev: Revision,
  records: ClusterRecords,
  drained: ReadonlySet<string>,
  results: readonly {
    readonly name: string;
    readonly status: { readonly services: Readonly<Record<string, object>> } | null;
    readonly error: string | null;
  }[],
): ClusterView[] {
  return results.map(({ name, status, error }) => {
    const services: ClusterServiceView[] = [];
    for (const [service, tracks] of Object.entries(status?.services ?? {})) {
      for (const t of Object.values(tracks) as TrackStatus[]) services.push(serviceView(service, t));
    }
    return clusterView(rev, records, drained, name, services, status !== null, error);
  });
}

/** Without a link to the fleet: what the store records as running, health unknown. */
export function clustersFromStore(rev: Revision, records: ClusterRecords, drained: ReadonlySet<string>): ClusterView[] {
  return Object.keys(rev.clusters).map((name) => {
    const rec = records[name];
    const services: ClusterServiceView[] = Object.entries(rec?.state.services ?? {}).map(([service, s]) => ({
      service,
      track: 'stable',
      revision: rec?.revisionId ?? '',
      version: s.version,
      healthy: false,
      replicas: s.replicas,
      ready: 0,
      restarts: 0,
      lastError: null,
    }));
    return clusterView(
      rev,
      records,
      drained,
      name,
      services,
      false,
      'the control plane has no link to the fleet (start it with --control URL)',
    );
  });
}
