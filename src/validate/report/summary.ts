/** Counts shared by the reporters. */
import type { Finding } from '../../findings/finding.js';

export interface Summary {
  /** Errors that no waiver covers: any fails the run. */
  readonly errors: number;
  /** Warnings that no waiver covers. */
  readonly warnings: number;
  /** Findings a waiver covers (reported, not failing). */
  readonly waived: number;
}

export function summarize(findings: readonly Finding[]): Summary {
  let errors = 0;
  let warnings = 0;
  let waived = 0;
  for (const f of findings) {
    if (f.waivedBy) waived++;
    else if (f.severity === 'error') errors++;
    else warnings++;
  }
  return { errors, warnings, waived };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `2 errors, 1 warning, 0 waived`. */
export function summaryLine(s: Summary): string {
  return `${plural(s.errors, 'error')}, ${plural(s.warnings, 'warning')}, ${s.waived} waived`;
}
