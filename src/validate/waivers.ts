/**
 * Waivers: `policies.waivers` entries that accept a finding for a while, with a reason and an approver.
 * A waiver matches a finding when its `rule` is the finding's rule or code and every target field it
 * gives equals the finding's. A waived finding is still reported, with `waivedBy`, but does not fail
 * the run. An expired waiver does not apply and is itself an error; one that waived nothing is a warning.
 */
import { closest } from '../spec/schema-walk.js';
import { BUILTIN_RULES, type Fleet } from '../spec/schema.js';
import { PREFLIGHT_CODES } from '../findings/codes.js';
import type { CheckContext } from './context.js';
import type { Finding } from '../findings/finding.js';

type Waiver = NonNullable<NonNullable<Fleet['policies']>['waivers']>[number];

function matchesWaiver(w: Waiver, f: Finding): boolean {
  if (w.rule !== f.rule && w.rule !== f.code) return false;
  const t = f.target ?? {};
  if (w.target.service !== undefined && w.target.service !== t.service) return false;
  if (w.target.cluster !== undefined && w.target.cluster !== t.cluster) return false;
  if (w.target.region !== undefined && w.target.region !== t.region) return false;
  return true;
}

/** The day `now` is in, UTC, as YYYY-MM-DD (waivers are valid through their `expires` day). */
export function today(now: Date): string {
  return now.toISOString().slice(0, 10);
}

function realDate(d: string): boolean {
  const t = new Date(`${d}T00:00:00Z`);
  return !Number.isNaN(t.getTime()) && t.toISOString().slice(0, 10) === d;
}

/**
 * Marks the findings each live waiver covers, and returns the waivers' own findings. Expects findings
 * one per cluster (before grouping), so a waiver for one cluster covers that cluster only.
 */
export function applyWaivers(ctx: CheckContext, findings: readonly Finding[]): { findings: Finding[]; waiverFindings: Finding[] } {
  const waivers = ctx.fleet.policies?.waivers ?? [];
  const day = today(ctx.now);
  const used = new Set<number>();
  const live = waivers.map((w, i) => ({ w, i })).filter(({ w }) => realDate(w.expires) && w.expires >= day);
  const out = findings.map((f) => {
    if (f.waivedBy) return f;
    const hit = live.find(({ w }) => matchesWaiver(w, f));
    if (!hit) return f;
    used.add(hit.i);
    return { ...f, waivedBy: { reason: hit.w.reason, approvedBy: hit.w.approvedBy, expires: hit.w.expires } };
  });

  const waiverFindings: Finding[] = [];
  const known: string[] = [...BUILTIN_RULES, ...(ctx.fleet.policies?.custom ?? []).map((c) => c.name), ...PREFLIGHT_CODES];
  waivers.forEach((w, i) => {
    const what = `the waiver of ${w.rule}${describeTarget(w.target)}`;
    if (!realDate(w.expires)) {
      waiverFindings.push({
        code: 'MERIDIAN_E_WAIVER_INVALID',
        severity: 'error',
        message: `${what} expires on ${w.expires}, which is not a date`,
        path: `policies.waivers[${i}].expires`,
        ...ctx.at(['policies', 'waivers', i, 'expires']),
        fix: 'write a real calendar date, like 2027-01-31',
      });
    } else if (w.expires < day) {
      waiverFindings.push({
        code: 'MERIDIAN_E_WAIVER_EXPIRED',
        severity: 'error',
        message: `${what} expired on ${w.expires} (approved by ${w.approvedBy}: ${w.reason}); it no longer applies`,
        path: `policies.waivers[${i}].expires`,
        ...ctx.at(['policies', 'waivers', i, 'expires']),
        fix: 'fix what it waived and delete the waiver, or have it approved again with a new expiry date',
      });
    } else if (!used.has(i)) {
      const guess = known.includes(w.rule) ? undefined : closest(w.rule, known);
      waiverFindings.push({
        code: 'MERIDIAN_W_WAIVER_UNUSED',
        severity: 'warning',
        message: `${what} waived nothing${known.includes(w.rule) ? '' : `: no rule or finding code is named ${w.rule}`}`,
        path: `policies.waivers[${i}]`,
        ...ctx.at(['policies', 'waivers', i]),
        fix: guess
          ? `did you mean ${guess}? Else delete the waiver`
          : 'delete it: what it waived is fixed, or its rule or target does not match any finding',
      });
    }
  });
  return { findings: out, waiverFindings };
}

function describeTarget(t: Waiver['target']): string {
  const parts = (['service', 'cluster', 'region'] as const).filter((k) => t[k] !== undefined).map((k) => `${k} ${t[k]}`);
  return parts.length ? ` for ${parts.join(', ')}` : '';
}
