/**
 * Meridian's error classes. Every error carries a stable code (`MERIDIAN_E_…`) from the catalogue in
 * src/error-codes.ts, which says what it means, how to fix it, and how the CLI and the API report it.
 */

import { type ErrorCode, type ErrorCodeOf, errorSpec } from './error-codes.js';
import type { Finding } from './findings/finding.js';

/** Base class of every error Meridian raises on purpose. */
export class MeridianError extends Error {
  readonly code: ErrorCode;
  /** How to fix it: the error's own hint, else the catalogue's. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = opts.hint ?? errorSpec(code)?.hint;
  }

  /**
   * A user error is the user's to fix: the CLI prints the message without a stack. Decided by the
   * catalogue (exit kind `internal` is a bug); a code missing from it counts as a bug too.
   */
  get user(): boolean {
    return (errorSpec(this.code)?.exit ?? 'internal') !== 'internal';
  }
}

/** A problem found in input: reported as a list of findings, exit code 2. */
export class InputError extends MeridianError {
  readonly findings: readonly Finding[];
  constructor(message: string, findings: readonly Finding[]) {
    super('MERIDIAN_E_INPUT', message);
    this.findings = findings;
  }
}

/** A file or directory the user named does not exist or cannot be read. */
export class FleetNotFoundError extends MeridianError {
  constructor(path: string, cause?: unknown) {
    super('MERIDIAN_E_FLEET_NOT_FOUND', `no fleet at ${path}`, {
      cause,
      hint: 'pass a directory (or a .yaml file) whose files start with `apiVersion: meridian/v1`, e.g. `meridian validate examples/shop`',
    });
  }
}

/** The state store refused or failed an operation. */
export class StoreError extends MeridianError {
  constructor(code: ErrorCodeOf<'StoreError'>, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
  }
}

/** The audit log failed verification. */
export class AuditChainError extends MeridianError {
  constructor(
    message: string,
    readonly seq: number,
  ) {
    super('MERIDIAN_E_AUDIT_CHAIN_BROKEN', message, {
      hint: 'restore the store from a backup; the entry named above and everything after it cannot be trusted',
    });
  }
}

/** A saved plan does not match its own hash or the fleet it claims to plan. */
export class PlanError extends MeridianError {
  constructor(code: ErrorCodeOf<'PlanError'>, message: string, hint?: string) {
    super(code, message, hint === undefined ? {} : { hint });
  }
}

/** A request to the CLI that cannot be carried out as given (bad flag, unknown cluster…). */
export class UsageError extends MeridianError {
  constructor(message: string, hint?: string) {
    super('MERIDIAN_E_USAGE', message, hint === undefined ? {} : { hint });
  }
}

/** A rollout, approval, lock or rollback could not go ahead (`MERIDIAN_E_ROLLOUT_…`, `MERIDIAN_E_APPROVAL_…`). */
export class RolloutError extends MeridianError {
  constructor(code: ErrorCodeOf<'RolloutError'>, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
  }
}
