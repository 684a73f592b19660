/**
 * The human reporter: findings grouped by file, each as `file:line:col  CODE  message` and
 * `  fix: …`, then a summary line. Colour only when asked (the CLI asks on a terminal).
 */
import { formatLocation, type Finding } from '../../findings/finding.js';
import { summarize, summaryLine } from './summary.js';

export interface TextOptions {
  /** ANSI colours (default false). */
  readonly color?: boolean;
}

const ANSI = { red: 31, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;

export function formatText(findings: readonly Finding[], opts: TextOptions = {}): string {
  const paint = (style: keyof typeof ANSI, s: string): string => (opts.color ? `\u001b[${ANSI[style]}m${s}\u001b[0m` : s);
  const byFile = new Map<string, Finding[]>();
  for (const f of findings) {
    const file = f.location?.file ?? '';
    const list = byFile.get(file) ?? [];
    list.push(f);
    byFile.set(file, list);
  }
  const blocks: string[] = [];
  const files = [...byFile.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : a > b ? 1 : 0));
  for (const file of files) {
    const lines: string[] = [];
    for (const f of byFile.get(file) ?? []) {
      const where = formatLocation(f.location) || f.path || '(fleet)';
      const codeStyle = f.waivedBy ? 'dim' : f.severity === 'error' ? 'red' : 'yellow';
      lines.push(`${paint('bold', where)}  ${paint(codeStyle, f.code)}  ${f.message}`);
      if (f.waivedBy)
        lines.push(`  ${paint('dim', 'waived')}: ${f.waivedBy.reason} (approved by ${f.waivedBy.approvedBy}, until ${f.waivedBy.expires})`);
      if (f.fix) lines.push(`  ${paint('cyan', 'fix')}: ${f.fix}`);
    }
    blocks.push(lines.join('\n'));
  }
  const summary = summaryLine(summarize(findings));
  return blocks.length ? `${blocks.join('\n\n')}\n\n${summary}\n` : `${summary}\n`;
}
