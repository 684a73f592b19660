/** Stable exit codes of the `meridian` command, and the one mapping from an error to its exit code. */
import { errorSpec } from '../error-codes.js';
import { MeridianError } from '../errors.js';

export const EXIT = {
  ok: 0,
  /** Findings (validate), or a check that did not pass. */
  findings: 1,
  /** Unusable input: a fleet that cannot be loaded, a bad flag, a plan that does not match. */
  input: 2,
  /** The state store or another dependency failed. */
  unavailable: 3,
  /** `meridian rollout` / `rollback`: the rollout failed a gate and was rolled back (to the last known-good revision). */
  rolledBack: 4,
  /** `meridian rollout`: paused — waiting for approvals, or paused by an operator or by a failed gate (onFailure: pause). */
  paused: 5,
  /** `meridian rollout` / `rollback`: another rollout holds a service it touches (the message names the holder). */
  locked: 6,
  /** `meridian rollout` / `rollback`: a rollback did not verify; the fleet needs a person (see `meridian rollout status`). */
  rollbackFailed: 7,
  /** A bug in Meridian: the stack is printed and a report is asked for. */
  internal: 70,
} as const;

/**
 * The exit code of an error that ends a command: its code's exit kind in the catalogue
 * (src/error-codes.ts); {@link EXIT.internal} for anything else (a bug).
 */
export function exitCodeOf(err: unknown): number {
  if (!(err instanceof MeridianError)) return EXIT.internal;
  return EXIT[errorSpec(err.code)?.exit ?? 'internal'];
}
