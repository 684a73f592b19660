/**
 * Errors raised by deployment drivers. Codes are `MERIDIAN_E_TARGET_…` and, like every Meridian code,
 * are never reused for something else.
 */
import type { ErrorCodeOf } from '../error-codes.js';
import { MeridianError } from '../errors.js';

/** A driver could not do what was asked (bad request, unsupported platform, closed driver, timeout). */
export class TargetError extends MeridianError {
  constructor(code: ErrorCodeOf<'TargetError' | 'SecretResolutionError'>, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
  }
}

/**
 * A secret reference could not be resolved for a cluster. The message names the reference and the service,
 * never a value.
 */
export class SecretResolutionError extends TargetError {
  readonly ref: string;
  constructor(code: ErrorCodeOf<'SecretResolutionError'>, ref: string, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.ref = ref;
  }
}
