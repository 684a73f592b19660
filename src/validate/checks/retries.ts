/** Retries: a per-try timeout that is not shorter than the request's timeout can never lead to a retry (a warning). */
import { DEFAULT_ROUTE_TIMEOUT_MS, routeTimeouts } from '../../routing/index.js';
import type { CheckContext } from '../context.js';
import type { Finding } from '../../findings/finding.js';

export function checkRetries(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  for (const [service, r] of Object.entries(ctx.fleet.routing)) {
    const perTry = r.retries?.perTryTimeout;
    const t = routeTimeouts(r);
    if (perTry === undefined || t.perTryTimeoutMs < t.timeoutMs) continue;
    const timeout = r.timeout ?? `${DEFAULT_ROUTE_TIMEOUT_MS / 1000}s, the default`;
    findings.push({
      code: 'MERIDIAN_W_RETRY_TIMEOUT_UNUSED',
      severity: 'warning',
      message: `routing.${service}.retries.perTryTimeout (${perTry}) is not shorter than the request's timeout (${timeout}): an attempt that times out leaves no time for a retry`,
      path: `routing.${service}.retries.perTryTimeout`,
      ...ctx.at(['routing', service, 'retries', 'perTryTimeout']),
      fix: `make perTryTimeout a fraction of timeout (e.g. timeout: 10s, perTryTimeout: 2s), or drop it`,
      target: { service },
    });
  }
  return findings;
}
