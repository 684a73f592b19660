/**
 * Active health checks of every endpoint (`routing.<svc>.healthCheck`): an HTTP GET on the path (2xx and
 * 3xx pass) or a TCP connect when no path is known, every `interval`, failing after `timeout`. Each
 * endpoint's first check is spread over the first interval so that a large fleet is not checked in bursts.
 */
import { probe } from '../health/probe.js';
import { parseDuration } from '../units/duration.js';
import type { Routing } from '../spec/schema.js';
import type { RouterClock } from './clock.js';
import type { ProbeResult, Upstream } from './upstream.js';

export interface CheckPolicy {
  /** HTTP path, or null for a TCP connect check. */
  readonly path: string | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** The fleet's `healthCheck` with defaults: the service's own health path, every 5 s, 1 s timeout, 3 down, 2 up. */
export function checkPolicy(r: Routing['healthCheck'] | undefined, servicePath: string | null): CheckPolicy {
  return {
    path: r?.path ?? servicePath,
    intervalMs: (r?.interval !== undefined ? parseDuration(r.interval) : undefined) ?? 5000,
    timeoutMs: (r?.timeout !== undefined ? parseDuration(r.timeout) : undefined) ?? 1000,
    unhealthyThreshold: r?.unhealthyThreshold ?? 3,
    healthyThreshold: r?.healthyThreshold ?? 2,
  };
}

/** Runs one check; never rejects. */
export type Probe = (host: string, port: number, path: string | null, timeoutMs: number) => Promise<ProbeResult>;

/** The shared probe (src/health/probe.ts): HTTP GET (or TCP connect) on a fresh connection. */
export const httpProbe: Probe = (host, port, path, timeoutMs) =>
  probe({ host, port, path, timeoutMs, userAgent: 'meridian-router-health' });

export class ActiveHealthChecker {
  #closed = false;

  constructor(
    private readonly clock: RouterClock,
    private readonly policyOf: (u: Upstream) => CheckPolicy,
    private readonly onResult: (u: Upstream, r: ProbeResult, p: CheckPolicy) => void,
    private readonly probe: Probe = httpProbe,
    private readonly random: () => number = Math.random,
  ) {}

  /** Starts checking an endpoint (the first check within one interval). */
  start(u: Upstream): void {
    if (this.#closed || u.checkTimer !== null) return;
    const p = this.policyOf(u);
    this.#arm(u, Math.floor(this.random() * p.intervalMs));
  }

  /** Runs a check now (e.g. right after an endpoint appears), then keeps the interval. */
  checkNow(u: Upstream): void {
    this.stop(u);
    this.#arm(u, 0);
  }

  stop(u: Upstream): void {
    if (u.checkTimer !== null) this.clock.clearTimeout(u.checkTimer);
    u.checkTimer = null;
  }

  close(): void {
    this.#closed = true;
  }

  #arm(u: Upstream, delay: number): void {
    if (this.#closed) return;
    u.checkTimer = this.clock.setTimeout(() => {
      if (this.#closed || u.gone) return;
      const p = this.policyOf(u);
      void this.probe(u.host, u.port, p.path, p.timeoutMs).then((r) => {
        if (this.#closed || u.gone || u.checkTimer === null) return;
        this.onResult(u, r, p);
        this.#arm(u, p.intervalMs);
      });
    }, delay);
  }
}
