/**
 * The fleet's own rules, in CEL (@marcbachmann/cel-js). Each rule is compiled and type-checked once;
 * it is evaluated for every (cluster, service) its `match` selects, with the variables `service`,
 * `cluster` and `region`. False is a violation; a key the expression reads but the service does not
 * have (`service.env.X` without `has(...)`) fails the rule as well; any other runtime error is
 * MERIDIAN_E_POLICY_ERROR. Whole numbers are CEL ints, so `service.replicas >= 2` works. Every
 * evaluation runs under a cost limit and `matches()` is RE2 (./cel-budget.ts): a rule that spends the
 * limit is MERIDIAN_E_POLICY_ERROR, once, and is not run for the remaining services.
 */
import type { RenderedService } from '../../render/render.js';
import { matches } from '../../render/selector.js';
import type { CheckContext } from '../context.js';
import type { Finding } from '../../findings/finding.js';
import { CelCostError, celCostLimit, compileRule } from './cel-budget.js';

/** Plain data → CEL values: whole numbers become ints (bigint), nulls are left out (so `has()` is false). */
export function toCel(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toCel);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = toCel(x);
    return out;
  }
  return v;
}

/** The variables a rule sees for one service on one cluster. */
export function celVariables(ctx: CheckContext, cluster: string, service: string, s: RenderedService): Record<string, unknown> {
  const c = ctx.revision.clusters[cluster];
  const r = c ? ctx.revision.regions[c.region] : undefined;
  return {
    service: toCel({ name: service, ...s }),
    cluster: toCel({ name: cluster, labels: c?.labels ?? {}, driver: c?.driver, capacity: c?.capacity, weight: c?.weight }),
    region: toCel({ name: c?.region, jurisdiction: r?.jurisdiction, countries: r?.countries ?? [] }),
  };
}

function missingKey(message: string): string {
  const key = /No such key: (\S+)/.exec(message)?.[1];
  return key ? `the key ${key} it reads is missing` : firstLine(message);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** The fleet's CEL rules as findings; `costLimit` bounds each evaluation (default: {@link celCostLimit}). */
export function checkCustomRules(ctx: CheckContext, costLimit = celCostLimit()): Finding[] {
  const findings: Finding[] = [];
  const rules = ctx.fleet.policies?.custom ?? [];
  rules.forEach((rule, i) => {
    const celPath = ['policies', 'custom', i, 'cel'];
    const invalid = (why: string): void => {
      findings.push({
        code: 'MERIDIAN_E_POLICY_INVALID',
        severity: 'error',
        rule: rule.name,
        message: `the rule ${rule.name} does not compile: ${why}`,
        path: `policies.custom[${i}].cel`,
        ...ctx.at(celPath),
        fix: 'write a CEL expression over service, cluster and region that yields a bool, e.g. "service.replicas >= 2" or "has(service.env.X) && service.env.X == \'on\'"',
      });
    };
    const program = compileRule(rule.cel);
    if (typeof program === 'string') {
      invalid(program);
      return;
    }
    if (program.type !== 'bool' && program.type !== 'dyn') {
      invalid(`it yields ${program.type}, not bool`);
      return;
    }
    const code = rule.severity === 'warning' ? 'MERIDIAN_W_POLICY_VIOLATION' : 'MERIDIAN_E_POLICY_VIOLATION';
    clusters: for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
      const facts = ctx.facts(cluster);
      if (!facts || (rule.match && !matches(rule.match, facts))) continue;
      for (const [service, s] of Object.entries(c.services)) {
        const serviceAt = ctx.at(['services', service], { key: true });
        const base = { path: `services.${service}`, ...serviceAt, rule: rule.name, target: { service, cluster, region: c.region } };
        let result: unknown;
        try {
          result = program.run(celVariables(ctx, cluster, service, s), costLimit);
        } catch (err) {
          const e = err as { code?: string; message?: string };
          if (err instanceof CelCostError) {
            findings.push({
              ...base,
              code: 'MERIDIAN_E_POLICY_ERROR',
              severity: 'error',
              message: `the rule ${rule.name} stopped on ${service} in ${cluster}: ${err.message}; it is not run for the services after it`,
              fix: `simplify the expression at policies.custom[${i}].cel (nested comprehensions multiply their steps), or raise MERIDIAN_CEL_COST_LIMIT (default ${err.limit})`,
            });
            break clusters;
          }
          if (e.code === 'no_such_key') {
            findings.push({
              ...base,
              code,
              severity: rule.severity,
              message: `${rule.message} (rule ${rule.name}: ${missingKey(e.message ?? '')})`,
              fix: `make ${service} satisfy ${rule.name} (${rule.cel}), or waive it with a reason; if the key is optional, guard it with has()`,
            });
          } else {
            findings.push({
              ...base,
              code: 'MERIDIAN_E_POLICY_ERROR',
              severity: 'error',
              message: `the rule ${rule.name} failed to evaluate for ${service}: ${firstLine(e.message ?? String(err))}`,
              fix: `fix the expression at policies.custom[${i}].cel so that it evaluates for every service it matches`,
            });
          }
          continue;
        }
        if (result === true) continue;
        if (result === false) {
          findings.push({
            ...base,
            code,
            severity: rule.severity,
            message: `${rule.message} (rule ${rule.name})`,
            fix: `make ${service} satisfy ${rule.name} (${rule.cel}), or waive it with a reason`,
          });
        } else {
          findings.push({
            ...base,
            code: 'MERIDIAN_E_POLICY_ERROR',
            severity: 'error',
            message: `the rule ${rule.name} yielded ${typeof result === 'bigint' ? 'an int' : typeof result} for ${service}, not a bool`,
            fix: `make the expression at policies.custom[${i}].cel yield true or false`,
          });
        }
      }
    }
  });
  return findings;
}
