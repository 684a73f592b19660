/**
 * The forwarding policy for attempts: which endpoint an attempt goes to, and after a failed attempt
 * whether the request is retried on another cluster of its row, rerouted at once, or answered as it is.
 * Each step points the {@link Exchange} at its next cluster with the routing table's `nextAttempt` (the
 * same residency rule as the first decision) and counts what it did in the router's metrics.
 */
import { nextAttempt, type Decision } from '../routing/index.js';
import type { Exchange, Failure } from './exchange.js';
import { REASON, type RouterMetrics } from './router-metrics.js';
import type { Upstream } from './upstream.js';

/** The metrics reason of each decision kind. */
export const REASON_OF_KIND: Record<Decision['kind'], number> = {
  primary: REASON.primary,
  spillover: REASON.spillover,
  panic: REASON.panic,
  'residency-widened': REASON['residency-widened'],
  'residency-reject': REASON['residency-reject'],
  'no-healthy': REASON['no-healthy'],
  'unknown-service': REASON['no-route'],
};

/** A random non-negative 31-bit integer (the decision's tie-break among weighted clusters). */
export function randInt(): number {
  return (Math.random() * 0x80000000) | 0;
}

/**
 * An endpoint of the decided cluster; when that cluster has none usable (the table is not rebuilt yet),
 * the next cluster of the same row (`nextAttempt`: the same residency rule). When nothing in the row is
 * usable, any endpoint of the first choice (panic). Choosing another cluster here is not a retry.
 * `d` is scratch space for the decision.
 */
export function chooseUpstream(x: Exchange, d: Decision): Upstream | null {
  const svc = x.svc;
  let up = svc.sets[x.clusterIndex]?.pick(x.canary) ?? null;
  if (up !== null) return up;
  const first = x.clusterIndex;
  const firstCanary = x.canary;
  while (up === null) {
    (x.excluded ??= []).push(x.clusterIndex);
    nextAttempt(svc.table, svc.name, x.country, x.userKey, randInt(), x.excluded, d);
    if (d.clusterIndex < 0) break;
    x.clusterIndex = d.clusterIndex;
    x.canary = d.canary;
    if (x.reason !== REASON.retry && x.reason !== REASON.override) x.reason = REASON_OF_KIND[d.kind];
    up = svc.sets[x.clusterIndex]?.pick(x.canary) ?? null;
  }
  if (up !== null) return up;
  x.clusterIndex = first;
  x.canary = firstCanary;
  return svc.sets[first]?.pickAny(firstCanary) ?? null;
}

/**
 * May the request be tried again on another cluster? Connect failures (nothing was sent: no connection
 * in time, an unreachable host) for any method; 5xx, resets and timeouts for idempotent methods only;
 * never a streamed body nor a pinned request; within the service's `retries.attempts` and retry budget;
 * and only when the row has another cluster. On yes, `x` points at that cluster. (A refused connection
 * is not retried but rerouted: {@link reroute}.)
 */
export function planRetry(x: Exchange, failure: Failure, m: RouterMetrics, d: Decision): boolean {
  const svc = x.svc;
  const budget = svc.retry;
  if (x.reason === REASON.override) {
    m.retries.inc(m.retries.series([svc.name, 'not-retryable'])); // a pinned request stays where it was pinned
    return false;
  }
  if (budget === null || !x.replayable || (!x.idempotent && failure !== 'connect')) {
    m.retries.inc(m.retries.series([svc.name, 'not-retryable']));
    return false;
  }
  if (!budget.allows(x.attempts, { activeRequests: svc.counters.active, activeRetries: svc.counters.retries })) {
    m.retries.inc(m.retries.series([svc.name, 'budget-exhausted']));
    return false;
  }
  return nextCluster(x, m, d);
}

/**
 * After a refused connection: nothing listens at that endpoint (it is out of rotation already) and
 * nothing was sent, so the request moves on to the next cluster of its row at once — as when a
 * cluster has no usable endpoint ({@link chooseUpstream}), not as a retry: for any method and body that
 * is still whole, whatever `retries` says, without using the budget. Bounded by the row: each cluster once.
 */
export function reroute(x: Exchange, m: RouterMetrics, d: Decision): boolean {
  if (x.reason === REASON.override || !x.replayable) {
    m.retries.inc(m.retries.series([x.svc.name, 'not-retryable'])); // pinned, or a streamed body may be partly read
    return false;
  }
  if (!nextCluster(x, m, d)) return false;
  m.retries.inc(m.retries.series([x.svc.name, 'rerouted']));
  if (x.reason !== REASON.retry) x.reason = REASON_OF_KIND[d.kind];
  return true;
}

/** Points `x` at the next cluster of its row (not one tried); false, counted as `no-cluster`, when none is left. */
function nextCluster(x: Exchange, m: RouterMetrics, d: Decision): boolean {
  const svc = x.svc;
  const excluded = (x.excluded ??= []);
  excluded.push(x.clusterIndex);
  nextAttempt(svc.table, svc.name, x.country, x.userKey, randInt(), excluded, d);
  if (d.clusterIndex < 0) {
    excluded.pop();
    m.retries.inc(m.retries.series([svc.name, 'no-cluster']));
    return false;
  }
  x.clusterIndex = d.clusterIndex;
  x.canary = d.canary;
  return true;
}
