/** The JSON reporter: `{ ok, summary, findings }` with a fixed key order, for machines. */
import { failing, type Finding } from '../../findings/finding.js';
import { summarize } from './summary.js';

/** One finding with its keys in a fixed order; absent fields are left out. */
function stable(f: Finding): Record<string, unknown> {
  const out: Record<string, unknown> = { code: f.code, severity: f.severity, message: f.message };
  if (f.path !== undefined) out['path'] = f.path;
  if (f.location) out['location'] = { file: f.location.file, line: f.location.line, col: f.location.col };
  if (f.fix !== undefined) out['fix'] = f.fix;
  if (f.rule !== undefined) out['rule'] = f.rule;
  if (f.check !== undefined) out['check'] = f.check;
  if (f.target) {
    const t: Record<string, string> = {};
    for (const k of ['service', 'cluster', 'region'] as const) if (f.target[k] !== undefined) t[k] = f.target[k];
    out['target'] = t;
  }
  if (f.clusters) out['clusters'] = [...f.clusters];
  if (f.waivedBy) out['waivedBy'] = { reason: f.waivedBy.reason, approvedBy: f.waivedBy.approvedBy, expires: f.waivedBy.expires };
  return out;
}

export function formatJson(findings: readonly Finding[]): string {
  const s = summarize(findings);
  const doc = {
    ok: !failing(findings),
    summary: { errors: s.errors, warnings: s.warnings, waived: s.waived },
    findings: findings.map(stable),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
