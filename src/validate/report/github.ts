/**
 * The GitHub Actions reporter: one workflow command per finding
 * (`::error file=F,line=L,col=C,title=CODE::message`), escaped as the runner expects: `%`, `\r`, `\n`
 * everywhere, and `:` and `,` too in properties. Warnings are `::warning`, waived findings `::notice`.
 */
import type { Finding } from '../../findings/finding.js';
import { summarize, summaryLine } from './summary.js';

/** Escapes a command's message. */
export function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Escapes a property value. */
export function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function formatGithub(findings: readonly Finding[]): string {
  const lines = findings.map((f) => {
    const command = f.waivedBy ? 'notice' : f.severity === 'error' ? 'error' : 'warning';
    const props: string[] = [];
    if (f.location) {
      props.push(`file=${escapeProperty(f.location.file)}`, `line=${f.location.line}`, `col=${f.location.col}`);
    }
    props.push(`title=${escapeProperty(f.code)}`);
    let text = f.message;
    if (f.waivedBy) text += `\nwaived: ${f.waivedBy.reason} (approved by ${f.waivedBy.approvedBy}, until ${f.waivedBy.expires})`;
    if (f.fix) text += `\nfix: ${f.fix}`;
    if (!f.location && f.path) text = `${f.path}: ${text}`;
    return `::${command} ${props.join(',')}::${escapeData(text)}`;
  });
  lines.push(summaryLine(summarize(findings)));
  return `${lines.join('\n')}\n`;
}
