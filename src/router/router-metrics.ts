/**
 * The router's Prometheus metrics. Label values come from bounded sets only: services, clusters and
 * regions of the fleet, versions that ran, fixed code classes, reasons and causes — never a path, a user
 * or an address. Hot-path updates go through series numbers cached per endpoint (see src/telemetry).
 */
import type { Registry } from 'prom-client';
import { CounterVec, GaugeVec, HistogramVec, Interner, createRegistry } from '../telemetry/index.js';
import type { Upstream } from './upstream.js';

/**
 * Why a request went where it went (`reason` label). `sticky` is a request served from the client's
 * primary level by its sticky key's hash; `primary` the same without a sticky key. `retry` is a request
 * served by a retry (on another cluster); `override` one pinned to a cluster by a trusted
 * `x-meridian-cluster` header. The last three are answered by the router itself.
 */
export const REASONS = [
  'primary',
  'sticky',
  'spillover',
  'panic',
  'residency-widened',
  'override',
  'retry',
  'residency-reject',
  'no-healthy',
  'no-route',
] as const;
export type Reason = (typeof REASONS)[number];
export const REASON: { readonly [K in Reason]: number } = Object.fromEntries(REASONS.map((r, i) => [r, i])) as {
  [K in Reason]: number;
};

/** `code` label: the response's status class; `aborted` when the client went away first. */
export const CODE_CLASSES = ['aborted', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** The code class index of a status (0 = aborted). */
export function codeClass(status: number): number {
  const c = (status / 100) | 0;
  return c >= 1 && c <= 5 ? c : 5;
}

/**
 * `outcome` label of an upstream attempt: the status class of the endpoint's answer; `reset` (the
 * connection broke, or the upstream failed in the middle of the body), `timeout` (no response headers in
 * time), `refused` (no connection made: refused, unreachable, connect timeout); `aborted` when the client
 * went away before the endpoint answered (not the endpoint's doing).
 */
export const ATTEMPT_OUTCOMES = ['2xx', '3xx', '4xx', '5xx', 'reset', 'timeout', 'refused', 'aborted', '1xx'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];
/** Index of each attempt outcome (the position in {@link ATTEMPT_OUTCOMES}). */
export const ATTEMPT: { readonly [K in AttemptOutcome]: number } = Object.fromEntries(ATTEMPT_OUTCOMES.map((o, i) => [o, i])) as {
  [K in AttemptOutcome]: number;
};
/** The attempt outcome of a status an endpoint answered with. */
export function attemptOfStatus(status: number): number {
  const c = (status / 100) | 0;
  return c >= 2 && c <= 5 ? c - 2 : c === 1 ? ATTEMPT['1xx'] : ATTEMPT['5xx'];
}

export class RouterMetrics {
  readonly registry: Registry;
  readonly names = { service: new Interner(), cluster: new Interner(), region: new Interner(), version: new Interner() };
  readonly requests: CounterVec;
  readonly duration: HistogramVec;
  readonly attempts: CounterVec;
  readonly attemptDuration: HistogramVec;
  readonly connectErrors: CounterVec;
  readonly upstreamFailures: CounterVec;
  readonly ejections: CounterVec;
  readonly takenOut: CounterVec;
  readonly retries: CounterVec;
  readonly tableSwaps: CounterVec;
  readonly tableVersion: GaugeVec;
  readonly tableBuild: HistogramVec;
  readonly endpoints: GaugeVec;
  readonly inFlight: GaugeVec;
  readonly stickyAssigned: CounterVec;
  readonly #rejectSeries = new Map<number, number>();

  constructor(opts: { registry?: Registry; collect?: (m: RouterMetrics) => void } = {}) {
    const registers = [(this.registry = opts.registry ?? createRegistry())];
    this.names.region.id('unknown'); // id 0: the client region of a request answered before any decision
    this.requests = new CounterVec({
      name: 'meridian_router_requests_total',
      help: 'Requests answered, by service, client region, serving cluster and version, status class and routing reason.',
      labelNames: ['service', 'client_region', 'cluster', 'version', 'code', 'reason'],
      registers,
    });
    this.duration = new HistogramVec({
      name: 'meridian_router_request_duration_seconds',
      help: 'Time from receiving a request to the end of its response, by service, client region, serving cluster and version.',
      labelNames: ['service', 'client_region', 'cluster', 'version'],
      registers,
    });
    this.attempts = new CounterVec({
      name: 'meridian_router_upstream_attempts_total',
      help: 'Upstream attempts (every try of every request, retries included), by service, cluster, version and track of the endpoint tried, and outcome (2xx, 3xx, 4xx, 5xx, reset, timeout, refused, aborted).',
      labelNames: ['service', 'cluster', 'version', 'track', 'outcome'],
      registers,
    });
    this.attemptDuration = new HistogramVec({
      name: 'meridian_router_upstream_attempt_duration_seconds',
      help: 'Time from sending an upstream attempt to its end (response complete, or failed), by service, cluster, version and track of the endpoint tried.',
      labelNames: ['service', 'cluster', 'version', 'track'],
      registers,
    });
    this.connectErrors = new CounterVec({
      name: 'meridian_router_upstream_connect_errors_total',
      help: 'Connections to an upstream endpoint that failed, by service, cluster and error.',
      labelNames: ['service', 'cluster', 'error'],
      registers,
    });
    this.upstreamFailures = new CounterVec({
      name: 'meridian_router_upstream_failures_total',
      help: 'Upstream attempts that failed after connecting, by service, cluster and kind (5xx, reset, timeout).',
      labelNames: ['service', 'cluster', 'kind'],
      registers,
    });
    this.ejections = new CounterVec({
      name: 'meridian_router_ejections_total',
      help: 'Endpoints taken out by passive outlier detection, by service, cluster and cause.',
      labelNames: ['service', 'cluster', 'cause'],
      registers,
    });
    this.takenOut = new CounterVec({
      name: 'meridian_router_endpoints_taken_out_total',
      help: 'Times an endpoint was taken out of rotation, by service, cluster, version and track, and cause (ejected by outlier detection, unhealthy by active checks, unreachable).',
      labelNames: ['service', 'cluster', 'version', 'track', 'cause'],
      registers,
    });
    this.retries = new CounterVec({
      name: 'meridian_router_retries_total',
      help: 'Retry decisions, by service and outcome (sent, budget-exhausted, no-cluster, not-retryable).',
      labelNames: ['service', 'outcome'],
      registers,
    });
    this.tableSwaps = new CounterVec({
      name: 'meridian_router_table_swaps_total',
      help: 'Routing snapshots swapped in.',
      labelNames: [],
      registers,
    });
    this.tableVersion = new GaugeVec({
      name: 'meridian_router_table_version',
      help: 'Version of the routing snapshot in use.',
      labelNames: [],
      registers,
    });
    this.tableBuild = new HistogramVec({
      name: 'meridian_router_table_build_seconds',
      help: 'Time to build a routing snapshot.',
      labelNames: [],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.endpoints = new GaugeVec({
      name: 'meridian_router_endpoints',
      help: 'Upstream endpoints by service, cluster and state (healthy, ejected, unreachable, unhealthy, source-unhealthy).',
      labelNames: ['service', 'cluster', 'state'],
      registers,
      collect: () => opts.collect?.(this),
    });
    this.inFlight = new GaugeVec({
      name: 'meridian_router_requests_in_flight',
      help: 'Requests being handled.',
      labelNames: [],
      registers,
    });
    this.stickyAssigned = new CounterVec({
      name: 'meridian_router_sticky_assignments_total',
      help: 'Sticky cookies set for users who came without one, by service.',
      labelNames: ['service'],
      registers,
    });
    this.tableSwaps.series([]);
    this.tableBuild.series([]);
    this.tableVersion.series([]);
    this.inFlight.series([]);
  }

  /** The series of a request served by an endpoint. */
  requestSeries(u: Upstream, homeId: number, code: number, reason: number): number {
    const key = (homeId * 8 + code) * 16 + reason;
    let s = u.requestSeries.get(key);
    if (s === undefined) {
      s = this.requests.series([
        u.service,
        this.names.region.name(homeId),
        u.cluster,
        u.version,
        CODE_CLASSES[code] ?? '5xx',
        REASONS[reason] ?? 'primary',
      ]);
      u.requestSeries.set(key, s);
    }
    return s;
  }

  /** The series of an attempt on `u` with outcome index `outcome` (see {@link ATTEMPT_OUTCOMES}; created on first use). */
  attemptSeries(u: Upstream, outcome: number): number {
    let s = u.attemptSeries[outcome] as number;
    if (s < 0) {
      s = this.attempts.series([u.service, u.cluster, u.version, u.track, ATTEMPT_OUTCOMES[outcome] ?? 'reset']);
      u.attemptSeries[outcome] = s;
    }
    return s;
  }

  /** The attempt-duration series of `u` (created on first use). */
  attemptDurationSeries(u: Upstream): number {
    let s = u.attemptDurationSeries;
    if (s < 0) {
      s = this.attemptDuration.series([u.service, u.cluster, u.version, u.track]);
      u.attemptDurationSeries = s;
    }
    return s;
  }

  /** Counts `u` taken out of rotation (not on the request path: series looked up by label). */
  countTakenOut(u: Upstream, cause: 'ejected' | 'unhealthy' | 'unreachable'): void {
    this.takenOut.inc(this.takenOut.series([u.service, u.cluster, u.version, u.track, cause]));
  }

  /** The series of a request answered by the router itself (no cluster). */
  rejectSeries(serviceId: number, homeId: number, code: number, reason: number): number {
    const key = ((serviceId * 4096 + homeId) * 8 + code) * 16 + reason;
    let s = this.#rejectSeries.get(key);
    if (s === undefined) {
      s = this.requests.series([
        serviceId < 0 ? 'none' : this.names.service.name(serviceId),
        this.names.region.name(homeId),
        'none',
        'none',
        CODE_CLASSES[code] ?? '5xx',
        REASONS[reason] ?? 'no-route',
      ]);
      this.#rejectSeries.set(key, s);
    }
    return s;
  }

  /** The duration series of requests from client region `homeId` served by `u` (created on first use). */
  durationSeries(u: Upstream, homeId: number): number {
    let s = u.durationSeries[homeId];
    if (s === undefined) {
      s = this.duration.series([u.service, this.names.region.name(homeId), u.cluster, u.version]);
      u.durationSeries[homeId] = s;
    }
    return s;
  }
}
