/**
 * The router's immutable view of the world, swapped as one reference: per routed service, its routing
 * table (built from the revision and that service's merged health), request settings and endpoint sets.
 * A request reads the snapshot once and keeps it to the end, retries included.
 *
 * Tables are built per service because health is per service: a cluster whose `api` replicas are down
 * still serves `web`. A service whose inputs did not change keeps its table object from the previous
 * snapshot.
 */
import type { Revision } from '../render/render.js';
import {
  buildRoutingTable,
  RetryBudget,
  routeTimeouts,
  type ClusterHealth,
  type RouteTimeouts,
  type RoutingState,
  type RoutingTable,
} from '../routing/index.js';
import type { Routing } from '../spec/schema.js';
import { parseRatio } from '../units/quantity.js';
import { AddressMatcher } from './address-matcher.js';
import { ServiceMatcher } from './service-matcher.js';
import type { EndpointSet } from './upstream.js';

/** Live counters of one service, kept across snapshots (for the retry budget and stats). */
export interface ServiceCounters {
  /** Downstream requests being handled. */
  active: number;
  /** Retry attempts in flight. */
  retries: number;
}

/** Everything a request needs about its service. */
export interface ServiceRuntime extends RouteTimeouts {
  readonly name: string;
  readonly table: RoutingTable;
  /** The inputs the table was built from, to skip rebuilding an unchanged service. */
  readonly inputKey: string;
  readonly routing: Routing | undefined;
  /** Lower-case header name, or null. */
  readonly countryHeader: string | null;
  readonly trusted: AddressMatcher;
  readonly stickyCookie: string | null;
  /** Lower-case header name, or null. */
  readonly stickyHeader: string | null;
  readonly exposeHeaders: boolean;
  readonly retry: RetryBudget | null;
  /** Endpoint sets by the table's cluster index (null where the cluster has none). */
  readonly sets: readonly (EndpointSet | null)[];
  readonly counters: ServiceCounters;
  /** Metrics ids: the service, each table cluster, and each client home (table home index; the last is "unknown"). */
  readonly metricId: number;
  readonly clusterMetricId: Int32Array;
  readonly homeMetricId: ReadonlyMap<string | null, number>;
  /** Per cluster index: every other cluster index (for pinning a request to one cluster with `nextAttempt`). */
  readonly othersOf: readonly Int32Array[];
}

export interface Snapshot {
  readonly version: number;
  readonly revision: Revision;
  readonly services: ReadonlyMap<string, ServiceRuntime>;
  readonly matcher: ServiceMatcher<ServiceRuntime>;
  /** The clock time it was built. */
  readonly builtAt: number;
}

/** The control plane's view, set through the router's API. */
export interface ControlState {
  readonly drained: ReadonlySet<string>;
  /** Places ramping back after a restore → percent of their full traffic (absent: none). */
  readonly ramp?: Readonly<Record<string, number>>;
  /** service → cluster → canary. */
  readonly canary: ReadonlyMap<string, ReadonlyMap<string, { readonly weight: number; readonly version: string }>>;
  readonly flags: RoutingState['flags'];
  readonly latency: RoutingState['latency'];
  /** Cluster health from outside (the control plane's view: rolling back, known down); merged with the router's own. */
  readonly health: Readonly<Record<string, ClusterHealth>>;
  readonly ejected: Readonly<Record<string, boolean>>;
}

/** What the snapshot builder needs from the router. */
export interface SnapshotInputs {
  readonly version: number;
  readonly revision: Revision;
  readonly control: ControlState;
  readonly setOf: (service: string, cluster: string) => EndpointSet | null;
  readonly countersOf: (service: string) => ServiceCounters;
  readonly metricId: (dimension: 'service' | 'cluster' | 'region', name: string) => number;
  readonly now: number;
  /** Trusted sources of services whose routing names none (default: none; nothing is trusted). */
  readonly trustedSources?: readonly string[];
}

/** The routed services: those with a `routing` entry, else every service the revision runs. */
export function routedServices(revision: Revision): string[] {
  const routed = Object.keys(revision.routing);
  if (routed.length > 0) return routed.sort();
  const all = new Set<string>();
  for (const c of Object.values(revision.clusters)) for (const s of Object.keys(c.services)) all.add(s);
  return [...all].sort();
}

/** The revision seen by one service: only its routing entry and, in each cluster, only it. */
export function revisionFor(revision: Revision, service: string): Revision {
  const clusters: Record<string, Revision['clusters'][string]> = {};
  for (const [name, c] of Object.entries(revision.clusters)) {
    const s = c.services[service];
    clusters[name] = { ...c, services: s ? { [service]: s } : {} };
  }
  const r = revision.routing[service];
  return { ...revision, clusters, routing: r ? { [service]: r } : {} };
}

/**
 * The merged health of each cluster for one service: its endpoints (healthy fraction = usable / all,
 * stable and canary together), then the control plane's view on top. A cluster whose endpoints are all
 * ejected is `ejected`; one with none usable for other reasons (or none at all) is unhealthy.
 */
export function serviceHealth(
  revision: Revision,
  service: string,
  control: ControlState,
  setOf: SnapshotInputs['setOf'],
): { health: Record<string, ClusterHealth>; ejected: Record<string, boolean> } {
  const health: Record<string, ClusterHealth> = {};
  const ejected: Record<string, boolean> = {};
  for (const [cluster, c] of Object.entries(revision.clusters)) {
    if (!c.services[service]) continue;
    const set = setOf(service, cluster);
    const all = set ? set.all().filter((u) => !u.gone) : [];
    const usable = all.filter((u) => u.usable).length;
    if (all.length === 0) health[cluster] = { healthy: false };
    else if (usable === 0) {
      if (all.every((u) => u.ejectedUntil !== 0)) ejected[cluster] = true;
      else health[cluster] = { healthy: false };
    } else if (usable < all.length) health[cluster] = { healthy: true, degraded: 1 - usable / all.length };
    const outside = control.health[cluster];
    if (outside && !outside.healthy) health[cluster] = outside;
    else if (outside?.degraded !== undefined) {
      const own = health[cluster]?.degraded ?? 0;
      health[cluster] = { healthy: health[cluster]?.healthy ?? true, degraded: Math.max(own, outside.degraded) };
    }
    if (control.ejected[cluster]) ejected[cluster] = true;
  }
  return { health, ejected };
}

function serviceState(revision: Revision, service: string, inputs: SnapshotInputs): RoutingState {
  const { health, ejected } = serviceHealth(revision, service, inputs.control, inputs.setOf);
  const canary: Record<string, { weight: number; version: string }> = {};
  for (const [cluster, c] of inputs.control.canary.get(service) ?? []) canary[cluster] = { weight: c.weight, version: c.version };
  return {
    health,
    ejected,
    drained: inputs.control.drained,
    ...(inputs.control.ramp && Object.keys(inputs.control.ramp).length > 0 ? { ramp: inputs.control.ramp } : {}),
    canary: { [service]: canary },
    ...(inputs.control.flags ? { flags: inputs.control.flags } : {}),
    ...(inputs.control.latency ? { latency: inputs.control.latency } : {}),
  };
}

function stateKey(revisionId: string, state: RoutingState): string {
  return JSON.stringify([
    revisionId,
    state.health,
    state.ejected,
    [...(state.drained as ReadonlySet<string>)].sort(),
    state.canary,
    state.flags ?? null,
    state.latency ?? null,
    state.ramp ?? null,
  ]);
}

const trustCache = new Map<string, AddressMatcher>();
function trustedMatcher(sources: readonly string[] | undefined, fallback: readonly string[]): AddressMatcher {
  const list = sources ?? fallback;
  const key = list.join(',');
  let m = trustCache.get(key);
  if (!m) {
    m = new AddressMatcher(list);
    if (trustCache.size > 256) trustCache.clear();
    trustCache.set(key, m);
  }
  return m;
}

/**
 * Builds the next snapshot. Services whose inputs are unchanged keep the previous table (and its
 * version); the others get a table with `inputs.version`. Returns null when nothing changed at all.
 */
export function buildSnapshot(inputs: SnapshotInputs, previous: Snapshot | null): Snapshot | null {
  const { revision } = inputs;
  const services = new Map<string, ServiceRuntime>();
  let changed = previous === null || previous.revision !== revision;
  for (const name of routedServices(revision)) {
    const view = revisionFor(revision, name);
    const state = serviceState(view, name, inputs);
    const inputKey = stateKey(revision.id, state);
    const prev = previous?.services.get(name);
    const table = prev && prev.inputKey === inputKey && previous?.revision === revision ? prev.table : null;
    if (!table) changed = true;
    services.set(name, runtime(name, view, table ?? buildRoutingTable(view, state, { version: inputs.version }), inputKey, inputs));
  }
  if (!changed && previous && previous.services.size === services.size) return null;
  const list = [...services.values()];
  const matcher = new ServiceMatcher(
    list.length === 1 && list[0]?.routing?.match === undefined
      ? [{ match: undefined, value: list[0] as ServiceRuntime }]
      : list.map((s) => ({ match: s.routing?.match, value: s })),
  );
  return { version: inputs.version, revision, services, matcher, builtAt: inputs.now };
}

function runtime(name: string, view: Revision, table: RoutingTable, inputKey: string, inputs: SnapshotInputs): ServiceRuntime {
  const routing = view.routing[name];
  const sticky = routing?.stickiness;
  const retries = routing?.retries;
  const C = table.clusters.length;
  const clusterMetricId = new Int32Array(C);
  table.clusters.forEach((c, i) => (clusterMetricId[i] = inputs.metricId('cluster', c)));
  const homeMetricId = new Map<string | null, number>([[null, inputs.metricId('region', 'unknown')]]);
  for (const r of table.regions) homeMetricId.set(r, inputs.metricId('region', r));
  const othersOf: Int32Array[] = [];
  for (let c = 0; c < C; c++) {
    const others = new Int32Array(C - 1);
    for (let k = 0, j = 0; k < C; k++) if (k !== c) others[j++] = k;
    othersOf.push(others);
  }
  return {
    name,
    table,
    inputKey,
    routing,
    countryHeader: routing?.clientCountryHeader?.toLowerCase() ?? null,
    trusted: trustedMatcher(routing?.trustedSources, inputs.trustedSources ?? []),
    stickyCookie: sticky && 'cookie' in sticky ? sticky.cookie : null,
    stickyHeader: sticky && 'header' in sticky ? sticky.header.toLowerCase() : null,
    exposeHeaders: routing?.exposeHeaders ?? true,
    retry: retries ? new RetryBudget({ attempts: retries.attempts, budget: parseRatio(retries.budget) ?? 0.2 }) : null,
    ...routeTimeouts(routing), // timed: attempts run on the router's own timer (else undici's pool timeout, 15 s each)
    sets: table.clusters.map((c) => inputs.setOf(name, c)),
    counters: inputs.countersOf(name),
    metricId: inputs.metricId('service', name),
    clusterMetricId,
    homeMetricId,
    othersOf,
  };
}
