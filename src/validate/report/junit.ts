/**
 * The JUnit XML reporter: one `<testsuite>`; a passing `<testcase>` for every check that found
 * nothing, and one failing `<testcase>` (with `file` and `line`) for every error. Warnings and waived
 * findings are passing test cases that say so in `<system-out>` / `<skipped>`, so CI shows them
 * without failing.
 */
import { formatLocation, type Finding } from '../../findings/finding.js';

export interface JunitOptions {
  /** Every check that ran (a passing test case each when it found nothing); default: the checks seen. */
  readonly checks?: readonly string[];
  /** The suite's name (default `meridian validate`). */
  readonly name?: string;
  /** ISO timestamp for the suite (left out by default, so output is reproducible). */
  readonly timestamp?: string;
}

/** Escapes text and attribute values, dropping characters XML 1.0 cannot hold. */
export function escapeXml(s: string): string {
  return s
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function attrs(a: Record<string, string | number | undefined>): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${escapeXml(String(v))}"`)
    .join('');
}

export function formatJunit(findings: readonly Finding[], opts: JunitOptions = {}): string {
  const name = opts.name ?? 'meridian validate';
  const checkOf = (f: Finding): string => f.check ?? 'load';
  const checks = opts.checks ?? [...new Set(findings.map(checkOf))];
  const cases: string[] = [];
  let failures = 0;
  let skipped = 0;
  const withFindings = new Set(findings.map(checkOf));
  for (const check of checks) {
    if (!withFindings.has(check)) cases.push(`  <testcase${attrs({ classname: `meridian.${check}`, name: check })}/>`);
  }
  for (const f of findings) {
    const where = formatLocation(f.location) || f.path || '';
    const caseAttrs = attrs({
      classname: `meridian.${checkOf(f)}`,
      name: `${f.code}${where ? ` ${where}` : ''}`,
      file: f.location?.file,
      line: f.location?.line,
    });
    const body = [f.message, f.fix ? `fix: ${f.fix}` : undefined, f.path ? `path: ${f.path}` : undefined].filter(Boolean).join('\n');
    if (f.waivedBy) {
      skipped++;
      cases.push(
        `  <testcase${caseAttrs}>\n    <skipped${attrs({ message: `waived: ${f.waivedBy.reason} (approved by ${f.waivedBy.approvedBy}, until ${f.waivedBy.expires})` })}/>\n  </testcase>`,
      );
    } else if (f.severity === 'error') {
      failures++;
      cases.push(
        `  <testcase${caseAttrs}>\n    <failure${attrs({ message: f.message, type: f.code })}>${escapeXml(body)}</failure>\n  </testcase>`,
      );
    } else {
      cases.push(`  <testcase${caseAttrs}>\n    <system-out>${escapeXml(`warning: ${body}`)}</system-out>\n  </testcase>`);
    }
  }
  const head = `<testsuite${attrs({ name, tests: cases.length, failures, errors: 0, skipped, timestamp: opts.timestamp })}>`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${head}\n${cases.join('\n')}${cases.length ? '\n' : ''}</testsuite>\n`;
}
