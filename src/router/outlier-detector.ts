/**
 * Passive outlier detection, as Envoy's `consecutive_5xx`: an endpoint that answers N times in a row with
 * a 5xx (or fails locally: reset, timeout) is ejected for `baseEjectionTime × times ejected` (capped), and
 * returns by itself when that time is up. At most `maxEjectionPercent` of a service's endpoints are
 * ejected at once (at least one, unless the percentage is 0). Every `interval` that an endpoint is not
 * ejected and has not failed, its ejection multiplier decays by one.
 *
 * A refused connection is not an ejection: nothing listens there, so the endpoint is marked unreachable at
 * once (no percentage cap) until an active check passes again.
 */
import { parseDuration } from '../units/duration.js';
import type { Routing } from '../spec/schema.js';
import type { RouterClock } from './clock.js';
import type { Upstream } from './upstream.js';

export interface OutlierPolicy {
  readonly consecutive5xx: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
  /** Longest ejection (Envoy's `max_ejection_time`): 300 s, or the base time when that is longer. */
  readonly maxEjectionMs: number;
}

/** Envoy's defaults for what the fleet does not set. */
export function outlierPolicy(r: Routing['outlierDetection'] | undefined): OutlierPolicy {
  const base = (r?.baseEjectionTime !== undefined ? parseDuration(r.baseEjectionTime) : undefined) ?? 30_000;
  return {
    consecutive5xx: r?.consecutive5xx ?? 5,
    intervalMs: (r?.interval !== undefined ? parseDuration(r.interval) : undefined) ?? 10_000,
    baseEjectionMs: base,
    maxEjectionPercent: r?.maxEjectionPercent ?? 10,
    maxEjectionMs: Math.max(300_000, base),
  };
}

/** Why an endpoint was taken out. */
export type EjectionCause = 'consecutive-5xx' | 'connect-refused';

export interface OutlierHooks {
  /** The endpoint's `usable` changed: the router rebuilds its tables. */
  changed(u: Upstream): void;
  /** Counted in metrics. */
  ejected(u: Upstream, cause: EjectionCause): void;
  /** Every endpoint of a service (for the ejection cap). */
  endpointsOf(service: string): Iterable<Upstream>;
  policyOf(service: string): OutlierPolicy;
}

export class OutlierDetector {
  readonly #decayTimers = new Map<string, unknown>();
  #closed = false;

  constructor(
    private readonly clock: RouterClock,
    private readonly hooks: OutlierHooks,
  ) {}

  /** A response below 500. */
  success(u: Upstream): void {
    if (u.consecutiveFailures !== 0) u.consecutiveFailures = 0;
  }

  /** A 5xx response or a local-origin failure after the connection was made (reset, timeout). */
  failure(u: Upstream): void {
    u.lastFailureAt = this.clock.now();
    u.consecutiveFailures++;
    const p = this.hooks.policyOf(u.service);
    if (u.ejectedUntil === 0 && u.consecutiveFailures >= p.consecutive5xx) this.eject(u, p);
  }

  /** The connection was refused: out at once, until an active check passes. */
  refused(u: Upstream): void {
    u.lastFailureAt = this.clock.now();
    if (u.unreachable) return;
    u.unreachable = true;
    this.hooks.ejected(u, 'connect-refused');
    if (u.update()) this.hooks.changed(u);
  }

  /** Ejects if the cap allows; returns whether it did. */
  eject(u: Upstream, p: OutlierPolicy = this.hooks.policyOf(u.service)): boolean {
    if (this.#closed || u.ejectedUntil !== 0) return false;
    let total = 0;
    let ejected = 0;
    for (const x of this.hooks.endpointsOf(u.service)) {
      if (x.gone) continue;
      total++;
      if (x.ejectedUntil !== 0) ejected++;
    }
    const allowed = p.maxEjectionPercent <= 0 ? 0 : Math.max(1, Math.floor((total * p.maxEjectionPercent) / 100));
    if (ejected >= allowed) return false;
    u.ejections++;
    const ms = Math.min(p.maxEjectionMs, p.baseEjectionMs * u.ejections);
    u.ejectedUntil = this.clock.now() + ms;
    u.consecutiveFailures = 0;
    u.ejectionTimer = this.clock.setTimeout(() => this.uneject(u), ms);
    this.hooks.ejected(u, 'consecutive-5xx');
    if (u.update()) this.hooks.changed(u);
    this.#scheduleDecay(u, p);
    return true;
  }

  /** Returns an ejected endpoint (its time is up). */
  uneject(u: Upstream): void {
    if (u.ejectionTimer !== null) this.clock.clearTimeout(u.ejectionTimer);
    u.ejectionTimer = null;
    if (u.ejectedUntil === 0) return;
    u.ejectedUntil = 0;
    u.consecutiveFailures = 0;
    if (u.update()) this.hooks.changed(u);
  }

  /** Stops the timers of an endpoint that is gone. */
  forget(u: Upstream): void {
    if (u.ejectionTimer !== null) this.clock.clearTimeout(u.ejectionTimer);
    u.ejectionTimer = null;
    const t = this.#decayTimers.get(u.key);
    if (t !== undefined) this.clock.clearTimeout(t);
    this.#decayTimers.delete(u.key);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#decayTimers.values()) this.clock.clearTimeout(t);
    this.#decayTimers.clear();
  }

  #scheduleDecay(u: Upstream, p: OutlierPolicy): void {
    if (this.#decayTimers.has(u.key) || this.#closed) return;
    const tick = (): void => {
      this.#decayTimers.delete(u.key);
      if (this.#closed || u.gone) return;
      const now = this.clock.now();
      if (u.ejectedUntil === 0 && now - u.lastFailureAt >= p.intervalMs && u.ejections > 0) u.ejections--;
      if (u.ejections > 0) this.#decayTimers.set(u.key, this.clock.setTimeout(tick, p.intervalMs));
    };
    this.#decayTimers.set(u.key, this.clock.setTimeout(tick, p.intervalMs));
  }
}
