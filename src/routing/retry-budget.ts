/**
 * Retry budget, as Envoy's `retry_budget`: concurrent retries are limited to a percentage of active
 * requests, never below a minimum concurrency. Pure: the router injects its live counters.
 */
import type { Routing } from '../spec/schema.js';
import { parseDuration } from '../units/duration.js';
import type { RoutingTable } from './table.js';

/** Live counters supplied by the router. */
export interface RetryCounters {
  /** Upstream requests in flight, retries included. */
  readonly activeRequests: number;
  /** Retries in flight. */
  readonly activeRetries: number;
}

export interface RetryBudgetOptions {
  /** Retries allowed per request (the route's `retries.attempts`); default 1. */
  readonly attempts?: number;
  /** Fraction of active requests that may be retries; default 0.2 (Envoy's default is 20%). */
  readonly budget?: number;
  /** The limit never goes below this many concurrent retries; default 3 (as Envoy). */
  readonly minRetryConcurrency?: number;
}

/** Methods that may be retried (RFC 9110 §9.2.2 idempotent methods). */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Whether a request with this method may be retried. */
export function isIdempotent(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method) || IDEMPOTENT_METHODS.has(method.toUpperCase());
}

/** A retry budget. Immutable; every check takes the counters it needs. */
export class RetryBudget {
  readonly attempts: number;
  readonly budget: number;
  readonly minRetryConcurrency: number;

  constructor(opts: RetryBudgetOptions = {}) {
    this.attempts = Math.max(0, Math.floor(opts.attempts ?? 1));
    this.budget = Math.min(1, Math.max(0, opts.budget ?? 0.2));
    this.minRetryConcurrency = Math.max(0, Math.floor(opts.minRetryConcurrency ?? 3));
  }

  /** The most retries that may be in flight with this many active requests. */
  limit(activeRequests: number): number {
    return Math.max(this.minRetryConcurrency, Math.floor(this.budget * Math.max(0, activeRequests)));
  }

  /**
   * Whether the request may be retried now: it has retries left (`retriesSoFar < attempts`) and the
   * retries in flight are under the limit.
   */
  allows(retriesSoFar: number, counters: RetryCounters): boolean {
    return retriesSoFar < this.attempts && counters.activeRetries < this.limit(counters.activeRequests);
  }
}

/** The retry budget of a service from its routing policy, or null when the service has no `retries`. */
export function retryBudgetFor(t: RoutingTable, service: string): RetryBudget | null {
  const s = t.serviceIndex.get(service);
  if (s === undefined) return null;
  const policy = t.model.policies[s]?.retries;
  return policy ? new RetryBudget({ attempts: policy.attempts, budget: policy.budget }) : null;
}

/** The time for an upstream's response headers when a route sets no `timeout` (Envoy's default route timeout). */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

/** A route's timeouts in milliseconds: `timeout` (all attempts together) and `retries.perTryTimeout`. */
export interface RouteTimeouts {
  readonly timeoutMs: number;
  /** 0 when unset: each attempt may use what is left of `timeoutMs`. */
  readonly perTryTimeoutMs: number;
  /** The route sets either (else the defaults apply, and the router leaves timing to its upstream pool). */
  readonly timed: boolean;
}

export function routeTimeouts(r: Pick<Routing, 'timeout' | 'retries'> | undefined): RouteTimeouts {
  const timeout = r?.timeout;
  const perTry = r?.retries?.perTryTimeout;
  return {
    timeoutMs: (timeout !== undefined ? parseDuration(timeout) : undefined) ?? DEFAULT_ROUTE_TIMEOUT_MS,
    perTryTimeoutMs: (perTry !== undefined ? parseDuration(perTry) : undefined) ?? 0,
    timed: timeout !== undefined || perTry !== undefined,
  };
}
