/**
 * Errors of the control-plane API and how every Meridian error maps to an HTTP status. The body is
 * always `{ "error": { "code", "message", "hint" } }`; codes are stable (`MERIDIAN_E_…`).
 */
import { MeridianError } from '../errors.js';

/** An error raised by the API layer itself (authentication, routing, request validation). */
export class ApiError extends MeridianError {
  constructor(code: `MERIDIAN_E_API_${string}`, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

/** The codes the API raises, with their statuses (documented in docs/server.md and the OpenAPI document). */
export const API_ERROR_STATUS: Readonly<Record<string, number>> = {
  MERIDIAN_E_API_BAD_REQUEST: 400,
  MERIDIAN_E_API_UNAUTHENTICATED: 401,
  MERIDIAN_E_API_FORBIDDEN: 403,
  MERIDIAN_E_API_HOST: 403,
  MERIDIAN_E_APPROVAL_AUTHOR: 403,
  MERIDIAN_E_API_NOT_FOUND: 404,
  MERIDIAN_E_ROLLOUT_UNKNOWN: 404,
  MERIDIAN_E_FLAG_UNKNOWN: 404,
  MERIDIAN_E_FLAG_UNKNOWN_REGION: 404,
  MERIDIAN_E_API_METHOD: 405,
  MERIDIAN_E_ROLLOUT_CONTROL: 409,
  MERIDIAN_E_APPROVAL_FINISHED: 409,
  MERIDIAN_E_API_CONFLICT: 409,
  MERIDIAN_E_API_INVALID: 422,
  MERIDIAN_E_APPROVAL_UNKNOWN_WAVE: 422,
  MERIDIAN_E_APPROVAL_NOT_REQUIRED: 422,
  MERIDIAN_E_APPROVAL_ROLE: 422,
  MERIDIAN_E_API_FLEET_ROUTER: 502,
  MERIDIAN_E_API_UNAVAILABLE: 503,
  MERIDIAN_E_TARGET_UNREACHABLE: 503,
};

/** The HTTP status of an error. Store problems are 503; other user errors 409; anything else 500. */
export function statusOf(err: unknown): number {
  if (!(err instanceof MeridianError)) return 500;
  const known = API_ERROR_STATUS[err.code];
  if (known !== undefined) return known;
  if (err.code.startsWith('MERIDIAN_E_STORE_')) return 503;
  if (err.code.startsWith('MERIDIAN_E_FLAG_')) return 422;
  return err.user ? 409 : 500;
}

/** The JSON body of an error response. Internal errors do not leak their message. */
export function errorBody(err: unknown): { error: { code: string; message: string; hint: string | null } } {
  if (err instanceof MeridianError) return { error: { code: err.code, message: err.message, hint: err.hint ?? null } };
  return {
    error: {
      code: 'MERIDIAN_E_API_INTERNAL',
      message: 'the control plane failed to answer; the error is in its log',
      hint: 'this is a bug in Meridian: please report it with the server log',
    },
  };
}
