/** Built-in rule `resources-required`: every service requests CPU and memory (quotas and schedulers need both). */
import type { CheckContext } from '../context.js';
import type { Finding } from '../../findings/finding.js';

export function checkResourcesRequired(ctx: CheckContext): Finding[] {
  if (!ctx.rules.has('resources-required')) return [];
  const findings: Finding[] = [];
  for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
    for (const [service, s] of Object.entries(c.services)) {
      const missing = (['cpu', 'memory'] as const).filter((d) => s.resources[d] === undefined);
      if (missing.length === 0) continue;
      const own = ctx.fleet.services[service]?.resources !== undefined;
      const path = own ? ['services', service, 'resources'] : ['services', service];
      findings.push({
        code: 'MERIDIAN_E_RESOURCES_MISSING',
        severity: 'error',
        rule: 'resources-required',
        message: `${service} requests no ${missing.join(' and ')}`,
        path: own ? `services.${service}.resources` : `services.${service}`,
        ...ctx.at(path, { key: !own }),
        fix: `set services.${service}.resources: { cpu: 250m, memory: 256Mi } (your values); quotas and failover checks count them`,
        target: { service, cluster, region: c.region },
      });
    }
  }
  return findings;
}
