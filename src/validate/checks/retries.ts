/** Retries: a per-try timeout that is not shorter than the request's timeout can never lead to a retry (a warning). */
import { parseDuration } from '../../units/duration.js';
import type { CheckContext } from '../context.js';
import type { Finding } from '../finding.js';

/** The router's timeout for a request whose route sets none (src/router/upstream.ts, as Envoy's). */
const DEFAULT_TIMEOUT = '15s';

export function checkRetries(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  for (const [service, r] of Object.entries(ctx.fleet.routing)) {
    const perTry = r.retries?.perTryTimeout;
    if (perTry === undefined) continue;
    const timeout = r.timeout ?? DEFAULT_TIMEOUT;
    if ((parseDuration(perTry) ?? 0) < (parseDuration(timeout) ?? Infinity)) continue;
    findings.push({
      code: 'MERIDIAN_W_RETRY_TIMEOUT_UNUSED',
      severity: 'warning',
      message: `routing.${service}.retries.perTryTimeout (${perTry}) is not shorter than the request's timeout (${timeout}${r.timeout === undefined ? ', the default' : ''}): an attempt that times out leaves no time for a retry`,
      path: `routing.${service}.retries.perTryTimeout`,
      ...ctx.at(['routing', service, 'retries', 'perTryTimeout']),
      fix: `make perTryTimeout a fraction of timeout (e.g. timeout: 10s, perTryTimeout: 2s), or drop it`,
      target: { service },
    });
  }
  return findings;
}
