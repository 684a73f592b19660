/** The router's errors, with stable codes (catalogued in src/error-codes.ts). */
import type { ErrorCodeOf } from '../error-codes.js';
import { MeridianError } from '../errors.js';

/** A problem with the router's input or setup (endpoints file, GeoIP database, address list). */
export class RouterError extends MeridianError {
  constructor(code: ErrorCodeOf<'RouterError'>, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
  }
}
