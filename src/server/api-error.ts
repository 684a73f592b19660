/**
 * Errors of the control-plane API and how every Meridian error maps to an HTTP status: the status is the
 * catalogue's (src/error-codes.ts). The body is always `{ "error": { "code", "message", "hint" } }`; codes
 * are stable (`MERIDIAN_E_…`).
 */
import { type ErrorCodeOf, errorSpec } from '../error-codes.js';
import { MeridianError } from '../errors.js';

/** An error raised by the API layer itself (authentication, routing, request validation). */
export class ApiError extends MeridianError {
  constructor(code: ErrorCodeOf<'ApiError'>, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

/** The HTTP status of an error: its code's in the catalogue; 500 for anything else (a bug). */
export function statusOf(err: unknown): number {
  if (!(err instanceof MeridianError)) return 500;
  return errorSpec(err.code)?.status ?? 500;
}

/** The JSON body of an error response. Internal errors do not leak their message. */
export function errorBody(err: unknown): { error: { code: string; message: string; hint: string | null } } {
  if (err instanceof MeridianError && err.user) return { error: { code: err.code, message: err.message, hint: err.hint ?? null } };
  const code = 'MERIDIAN_E_API_INTERNAL';
  return {
    error: {
      code,
      message: 'the control plane failed to answer; the error is in its log',
      hint: errorSpec(code)?.hint ?? null,
    },
  };
}
