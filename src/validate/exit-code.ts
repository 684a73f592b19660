/** The exit code of `meridian validate`: 0 clean, 1 findings, 2 unusable input. */
import { failing, type Finding } from '../findings/finding.js';

export const VALIDATE_EXIT = { clean: 0, findings: 1, unusable: 2 } as const;

/**
 * 2 when the input could not be used (the fleet did not load), else 1 when any finding fails the run
 * (an error that no waiver covers), else 0. Warnings and waived findings do not fail it.
 */
export function exitCodeFor(findings: readonly Finding[], opts: { unusable?: boolean } = {}): 0 | 1 | 2 {
  if (opts.unusable) return VALIDATE_EXIT.unusable;
  return failing(findings) ? VALIDATE_EXIT.findings : VALIDATE_EXIT.clean;
}
