/**
 * One upstream endpoint (a replica of a service track in a cluster) with its connection pool and every
 * health signal the router merges for it: the source's view, active checks, connection refusals and
 * outlier ejection. An endpoint takes new requests only while all of them say yes (`usable`).
 */
import { Pool } from 'undici';
import { DEFAULT_ROUTE_TIMEOUT_MS } from '../routing/index.js';
import type { Track } from '../routing/view.js';
import type { RouterEndpoint } from './endpoints.js';
import type { ProbeResult } from '../health/probe.js';

/** Why an endpoint is not usable (the first that applies), or `healthy`. */
export type UpstreamState = 'healthy' | 'gone' | 'source-unhealthy' | 'unreachable' | 'ejected' | 'unhealthy';

/** Settings of the active checks that decide `activeHealthy`. */
export interface CheckThresholds {
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

export type { ProbeResult };

export interface PoolOptions {
  /** Connections per endpoint (default 256). */
  readonly connections?: number;
  /** Idle keep-alive time of an upstream connection, ms (default 4000). */
  readonly keepAliveTimeoutMs?: number;
  /** Connect timeout, ms (default 2000). */
  readonly connectTimeoutMs?: number;
  /** Time to wait for response headers and between body chunks, ms (default 15000). */
  readonly upstreamTimeoutMs?: number;
}

/** The key that identifies an endpoint across refreshes of the source. */
export function upstreamKey(e: Pick<RouterEndpoint, 'cluster' | 'service' | 'track' | 'host' | 'port'>): string {
  return `${e.service}\u0000${e.cluster}\u0000${e.track}\u0000${e.host}:${e.port}`;
}

export class Upstream {
  readonly key: string;
  readonly service: string;
  readonly cluster: string;
  readonly track: Track;
  readonly host: string;
  readonly port: number;
  readonly origin: string;
  readonly pool: Pool;
  version: string;
  replica: string | null;

  /** The source says it is healthy (a driver's own checks). */
  sourceHealthy: boolean;
  /** Active checks: false after `unhealthyThreshold` failures in a row, true again after `healthyThreshold` passes. */
  activeHealthy = true;
  /** A connection was refused (by a request or a check); cleared by `healthyThreshold` passing checks. */
  unreachable = false;
  /** Removed from the source; its pool is closing. */
  gone = false;
  /** Ejected by outlier detection until this time (0 = not ejected). */
  ejectedUntil = 0;
  /** Times ejected (the ejection time multiplier); decays while the endpoint behaves. */
  ejections = 0;
  /** Consecutive 5xx responses and local-origin failures. */
  consecutiveFailures = 0;
  lastFailureAt = 0;
  checkPasses = 0;
  checkFailures = 0;
  lastCheckError: string | null = null;
  /** True while every signal allows new requests. */
  usable = true;
  /** Requests in flight to this endpoint. */
  inFlight = 0;

  /** @internal metrics: series numbers by (client region, code class, reason) key, and duration series by client region id. */
  readonly requestSeries = new Map<number, number>();
  readonly durationSeries: number[] = [];
  /** @internal metrics: attempt series by outcome index (-1: not created yet), and the attempt-duration series. */
  readonly attemptSeries = new Int32Array(9).fill(-1);
  attemptDurationSeries = -1;
  /** @internal timers owned by the outlier detector and the active checker. */
  ejectionTimer: unknown = null;
  checkTimer: unknown = null;

  constructor(e: RouterEndpoint, opts: PoolOptions = {}) {
    this.key = upstreamKey(e);
    this.service = e.service;
    this.cluster = e.cluster;
    this.track = e.track;
    this.host = e.host;
    this.port = e.port;
    this.version = e.version;
    this.replica = e.replica ?? null;
    this.sourceHealthy = e.healthy ?? true;
    const host = e.host.includes(':') && !e.host.startsWith('[') ? `[${e.host}]` : e.host;
    this.origin = `http://${host}:${e.port}`;
    const timeout = opts.upstreamTimeoutMs ?? DEFAULT_ROUTE_TIMEOUT_MS; // headers, and between body chunks
    this.pool = new Pool(this.origin, {
      connections: opts.connections ?? 256,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 4000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: opts.connectTimeoutMs ?? 2000 },
    });
    this.update();
  }

  /** Recomputes `usable`; returns true when it changed. */
  update(): boolean {
    const u = !this.gone && this.sourceHealthy && this.activeHealthy && !this.unreachable && this.ejectedUntil === 0;
    const changed = u !== this.usable;
    this.usable = u;
    return changed;
  }

  get state(): UpstreamState {
    if (this.gone) return 'gone';
    if (!this.sourceHealthy) return 'source-unhealthy';
    if (this.unreachable) return 'unreachable';
    if (this.ejectedUntil !== 0) return 'ejected';
    if (!this.activeHealthy) return 'unhealthy';
    return 'healthy';
  }

  /** Applies one active check; returns true when `usable` changed. */
  recordCheck(r: ProbeResult, t: CheckThresholds): boolean {
    if (r.ok) {
      this.checkPasses++;
      this.checkFailures = 0;
      this.lastCheckError = null;
      if ((!this.activeHealthy || this.unreachable) && this.checkPasses >= t.healthyThreshold) {
        this.activeHealthy = true;
        this.unreachable = false;
      }
    } else {
      this.checkFailures++;
      this.checkPasses = 0;
      this.lastCheckError = r.reason ?? 'check failed';
      if (r.refused) this.unreachable = true;
      if (this.activeHealthy && this.checkFailures >= t.unhealthyThreshold) this.activeHealthy = false;
    }
    return this.update();
  }

  /** Forgets the cached metric series (the version changed: new label values). */
  resetSeries(): void {
    this.requestSeries.clear();
    this.durationSeries.length = 0;
    this.attemptSeries.fill(-1);
    this.attemptDurationSeries = -1;
  }

  /** Forgets health history (the replica behind the address was replaced). */
  resetHealth(): void {
    this.activeHealthy = true;
    this.unreachable = false;
    this.consecutiveFailures = 0;
    this.checkPasses = 0;
    this.checkFailures = 0;
    this.lastCheckError = null;
  }

  /** A plain description for `/debug/route` and `stats()`. */
  describe(now: number): Record<string, unknown> {
    return {
      address: `${this.host}:${this.port}`,
      track: this.track,
      version: this.version,
      replica: this.replica,
      state: this.state,
      usable: this.usable,
      inFlight: this.inFlight,
      ejections: this.ejections,
      ejectedForMs: this.ejectedUntil === 0 ? 0 : Math.max(0, Math.round(this.ejectedUntil - now)),
      consecutiveFailures: this.consecutiveFailures,
      lastCheckError: this.lastCheckError,
    };
  }
}

/** The endpoints of one service in one cluster, both tracks, with round-robin choice among the usable ones. */
export class EndpointSet {
  stable: Upstream[] = [];
  canary: Upstream[] = [];
  #rr = 0;

  constructor(
    readonly service: string,
    readonly cluster: string,
  ) {}

  get size(): number {
    return this.stable.length + this.canary.length;
  }

  usableCount(): number {
    let n = 0;
    for (const u of this.stable) if (u.usable) n++;
    for (const u of this.canary) if (u.usable) n++;
    return n;
  }

  /** A usable endpoint of the track (the other track when that one has none), or null. */
  pick(canary: boolean): Upstream | null {
    return pickFrom(canary ? this.canary : this.stable, this.#rr++) ?? pickFrom(canary ? this.stable : this.canary, this.#rr);
  }

  /** Any endpoint of the track (or the other), usable or not: for a cluster chosen in panic. */
  pickAny(canary: boolean): Upstream | null {
    const list =
      (canary ? this.canary : this.stable).length > 0 ? (canary ? this.canary : this.stable) : canary ? this.stable : this.canary;
    const n = list.length;
    if (n === 0) return null;
    for (let i = 0; i < n; i++) {
      const u = list[(this.#rr + i) % n] as Upstream;
      if (!u.gone) {
        this.#rr++;
        return u;
      }
    }
    return null;
  }

  all(): Upstream[] {
    return [...this.stable, ...this.canary];
  }
}

function pickFrom(list: readonly Upstream[], rr: number): Upstream | null {
  const n = list.length;
  if (n === 0) return null;
  const start = (rr & 0x7fffffff) % n;
  for (let i = 0; i < n; i++) {
    const u = list[(start + i) % n] as Upstream;
    if (u.usable) return u;
  }
  return null;
}
