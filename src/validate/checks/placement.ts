/** Placement: a service that no cluster runs is probably a placement mistake (a warning). */
import type { CheckContext } from '../context.js';
import type { Finding } from '../../findings/finding.js';

export function checkPlacement(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  const running = new Set(Object.values(ctx.revision.clusters).flatMap((c) => Object.keys(c.services)));
  for (const [service, s] of Object.entries(ctx.fleet.services)) {
    if (running.has(service)) continue;
    const placement = s.placement !== undefined;
    findings.push({
      code: 'MERIDIAN_W_SERVICE_UNPLACED',
      severity: 'warning',
      message: `${service} runs on no cluster${placement ? ': its placement matches none' : ''}`,
      path: placement ? `services.${service}.placement` : `services.${service}`,
      ...ctx.at(placement ? ['services', service, 'placement'] : ['services', service], { key: !placement }),
      fix: placement
        ? `fix services.${service}.placement so that it matches a cluster, or remove the service`
        : 'add a cluster, or remove the service',
      target: { service },
    });
  }
  return findings;
}
