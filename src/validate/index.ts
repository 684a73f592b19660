/** Preflight (`meridian validate`): the checks, the reporters and the exit code. See docs/findings.md. */
export { preflight, PREFLIGHT_CHECKS, CHECKS, type PreflightInput } from './preflight.js';
export { validateFleet, type ValidateResult } from './run.js';
export { exitCodeFor, VALIDATE_EXIT } from './exit-code.js';
export { FINDING_CODES, INPUT_CODES, PREFLIGHT_CODES, WAIVER_CODES, type FindingCode } from '../findings/codes.js';
export { type Finding, type Severity, compareFindings, failing, formatPath } from '../findings/finding.js';
export { report, OUTPUTS, type Output, formatText, formatJson, formatJunit, formatGithub } from './report/index.js';
