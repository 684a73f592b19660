/** Built-in rule `tls-ingress`: an ingress is served over TLS. */
import type { CheckContext } from '../context.js';
import { valueAt } from '../context.js';
import type { Finding } from '../../findings/finding.js';

export function checkTlsIngress(ctx: CheckContext): Finding[] {
  if (!ctx.rules.has('tls-ingress')) return [];
  const findings: Finding[] = [];
  for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
    for (const [service, s] of Object.entries(c.services)) {
      if (!s.ingress || s.ingress.tls) continue;
      const o = ctx.origin(cluster, service, 'ingress.tls');
      const hostOrigin = ctx.origin(cluster, service, 'ingress.host');
      const written = valueAt(ctx.fleet, hostOrigin.segments);
      const host = typeof written === 'string' ? written : s.ingress.host;
      findings.push({
        code: 'MERIDIAN_E_INGRESS_NO_TLS',
        severity: 'error',
        rule: 'tls-ingress',
        message: `the ingress of ${service} (${host}) is served without TLS`,
        path: o.path,
        ...(o.location ? { location: o.location } : {}),
        fix: `set tls: true on the ingress (${o.path})`,
        target: { service, cluster, region: c.region },
      });
    }
  }
  return findings;
}
