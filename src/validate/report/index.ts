/** The reporters of `meridian validate`: pure functions from findings to text. */
import type { Finding } from '../../findings/finding.js';
import { formatGithub } from './github.js';
import { formatJson } from './json.js';
import { formatJunit, type JunitOptions } from './junit.js';
import { formatText, type TextOptions } from './text.js';

export { formatGithub, escapeData, escapeProperty } from './github.js';
export { formatJson } from './json.js';
export { formatJunit, escapeXml, type JunitOptions } from './junit.js';
export { formatText, type TextOptions } from './text.js';
export { summarize, summaryLine, type Summary } from './summary.js';

/** The `--output` formats. */
export const OUTPUTS = ['text', 'json', 'junit', 'github'] as const;
export type Output = (typeof OUTPUTS)[number];

/** Formats findings for an `--output` format. */
export function report(output: Output, findings: readonly Finding[], opts: TextOptions & JunitOptions = {}): string {
  switch (output) {
    case 'text':
      return formatText(findings, opts);
    case 'json':
      return formatJson(findings);
    case 'junit':
      return formatJunit(findings, opts);
    case 'github':
      return formatGithub(findings);
  }
}
