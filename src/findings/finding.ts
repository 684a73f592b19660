/** A finding: one problem in a fleet, with a stable code, where it is, and how to fix it (the ground floor: imports nothing). */

/** Where in the fleet description something is. */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** Formats `file:line:col`, or the empty string when the location is unknown. */
export function formatLocation(loc: SourceLocation | undefined): string {
  return loc ? `${loc.file}:${loc.line}:${loc.col}` : '';
}

export type Severity = 'error' | 'warning';

export interface Finding {
  /** Stable code, `MERIDIAN_E_…`; see docs/findings.md. */
  readonly code: string;
  readonly severity: Severity;
  /** What is wrong, in one sentence. */
  readonly message: string;
  /** The dotted path in the fleet description (`services.web.overrides[0].set.replicas`). */
  readonly path?: string;
  readonly location?: SourceLocation;
  /** How to fix it. */
  readonly fix?: string;
  /** The policy rule that produced it, when it came from one (for waivers). */
  readonly rule?: string;
  /** What it is about, for waivers and reports. */
  readonly target?: { readonly service?: string; readonly cluster?: string; readonly region?: string };
  /**
   * Every cluster the problem shows up on, sorted, when it concerns clusters. A problem in a service
   * definition that shows on 300 clusters is one finding with 300 names here, not 300 findings.
   */
  readonly clusters?: readonly string[];
  /** The preflight check that produced it (`digests`, `versions`, …); absent for load and render findings. */
  readonly check?: string;
  /** Set when a waiver covers it: the finding is reported but does not fail the run. */
  readonly waivedBy?: { readonly reason: string; readonly approvedBy: string; readonly expires: string };
}

/** Formats a path array as `services.web.overrides[0].set.replicas`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else {
      const s = String(p);
      out += /^[A-Za-z_][\w-]*$/.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** Orders findings for stable output: by file, line, column, code, message. */
export function compareFindings(a: Finding, b: Finding): number {
  const fa = a.location?.file ?? '\uffff';
  const fb = b.location?.file ?? '\uffff';
  if (fa !== fb) return fa < fb ? -1 : 1;
  const la = a.location?.line ?? 0;
  const lb = b.location?.line ?? 0;
  if (la !== lb) return la - lb;
  const ca = a.location?.col ?? 0;
  const cb = b.location?.col ?? 0;
  if (ca !== cb) return ca - cb;
  if (a.code !== b.code) return a.code < b.code ? -1 : 1;
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}

/** Whether a list of findings fails the run (any unwaived error). */
export function failing(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === 'error' && !f.waivedBy);
}
