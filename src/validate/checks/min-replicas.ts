/** Built-in rule `min-replicas`: every service runs at least `policies.settings.minReplicas` replicas (default 2). */
import type { CheckContext } from '../context.js';
import type { Finding } from '../../findings/finding.js';

export const DEFAULT_MIN_REPLICAS = 2;

export function checkMinReplicas(ctx: CheckContext): Finding[] {
  if (!ctx.rules.has('min-replicas')) return [];
  const min = ctx.fleet.policies?.settings?.minReplicas ?? DEFAULT_MIN_REPLICAS;
  const findings: Finding[] = [];
  for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
    for (const [service, s] of Object.entries(c.services)) {
      if (s.replicas >= min) continue;
      let o = ctx.origin(cluster, service, 'replicas');
      const defaulted = o.path === `services.${service}` || !ctx.written(o.segments);
      if (defaulted) o = { segments: ['services', service], path: `services.${service}`, ...ctx.at(['services', service], { key: true }) };
      findings.push({
        code: 'MERIDIAN_E_REPLICAS_BELOW_MIN',
        severity: 'error',
        rule: 'min-replicas',
        message: `${service} runs ${s.replicas} replica${s.replicas === 1 ? '' : 's'}${defaulted ? ' (the default)' : ''}, fewer than the minimum of ${min}`,
        path: defaulted ? `services.${service}.replicas` : o.path,
        ...(o.location ? { location: o.location } : {}),
        fix: `set replicas to ${min} or more${defaulted ? ` (services.${service}.replicas)` : ` at ${o.path}`}, or waive min-replicas for this service with a reason`,
        target: { service, cluster, region: c.region },
      });
    }
  }
  return findings;
}
