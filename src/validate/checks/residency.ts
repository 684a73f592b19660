/**
 * Residency coverage: for every routed service and every client jurisdiction, the residency rule
 * leaves at least one cluster running the service. A `lock` rule with nothing left is an error (its
 * clients get 503); a `prefer` rule with nothing preferred is a warning (every request leaves).
 */
import type { Routing } from '../../spec/schema.js';
import type { CheckContext } from '../context.js';
import type { Finding } from '../../findings/finding.js';
import { type AppliedRule, allows, ruleFor } from '../../routing/servable.js';

/** The client jurisdictions to check: those of regions that are home for some countries, and `default`. */
export function clientJurisdictions(ctx: CheckContext, routing: Routing): string[] {
  const js = new Set<string>();
  for (const r of Object.values(ctx.fleet.regions)) if (r.countries.length > 0) js.add(r.jurisdiction);
  const out = [...js].sort();
  if (routing.residency?.['default']) out.push('default');
  return out;
}

export function checkResidency(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  for (const [service, routing] of Object.entries(ctx.fleet.routing)) {
    const running = Object.entries(ctx.revision.clusters).filter(([, c]) => service in c.services);
    const runningJ = [...new Set(running.map(([, c]) => c.jurisdiction))].sort();
    const ran = `runs only in ${runningJ.join(', ')}`;
    if (running.length === 0) {
      findings.push({
        code: 'MERIDIAN_E_RESIDENCY_UNCOVERED',
        severity: 'error',
        message: `${service} is routed but runs on no cluster, so no client can be served`,
        path: `routing.${service}`,
        ...ctx.at(['routing', service], { key: true }),
        fix: `place ${service} on at least one cluster (check services.${service}.placement), or remove routing.${service}`,
        target: { service },
      });
      continue;
    }
    // One finding per rule: the client jurisdictions it applies to, when it leaves them no cluster.
    const byRule = new Map<string, { rule: AppliedRule; clients: string[] }>();
    for (const j of clientJurisdictions(ctx, routing)) {
      const rule = ruleFor(routing, j);
      if (rule.key === null || running.some(([, c]) => allows(rule, c.jurisdiction))) continue;
      const e = byRule.get(rule.key) ?? { rule, clients: [] };
      e.clients.push(j);
      byRule.set(rule.key, e);
    }
    for (const [key, { rule, clients }] of byRule) {
      const named = clients.filter((j) => j !== 'default');
      const who = [
        named.length ? `clients in ${named.join(', ')}` : '',
        clients.includes('default') ? `clients of ${named.length ? 'every other' : 'any'} jurisdiction` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      const location = ctx.at(['routing', service, 'residency', key, 'allow']);
      const path = `routing.${service}.residency.${key}.allow`;
      const allow = rule.allow?.join(', ') ?? '';
      if (rule.mode === 'lock') {
        findings.push({
          code: 'MERIDIAN_E_RESIDENCY_UNCOVERED',
          severity: 'error',
          message: `${who} may only be served by ${allow} (residency ${key}, lock), but ${service} ${ran}: every request from them would fail with 503`,
          path,
          ...location,
          fix: `place ${service} on a cluster in ${rule.allow?.join(' or ')}, or allow a jurisdiction it runs in (${runningJ.join(', ')})`,
          target: { service },
        });
      } else {
        findings.push({
          code: 'MERIDIAN_W_RESIDENCY_PREFERENCE_UNMET',
          severity: 'warning',
          message: `${who} prefer ${allow} (residency ${key}, prefer), but ${service} ${ran}: every request from them leaves the preferred jurisdictions`,
          path,
          ...location,
          fix: `place ${service} on a cluster in ${rule.allow?.join(' or ')}, or prefer a jurisdiction it runs in (${runningJ.join(', ')})`,
          target: { service },
        });
      }
    }
  }
  return findings;
}
