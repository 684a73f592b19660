/** The router's errors, with stable codes (see src/errors.ts for the catalogue's rules). */
import { MeridianError } from '../errors.js';

/** A problem with the router's input or setup (endpoints file, GeoIP database, address list). */
export class RouterError extends MeridianError {
  constructor(code: `MERIDIAN_E_ROUTER_${string}`, message: string, opts: { cause?: unknown; hint?: string; user?: boolean } = {}) {
    super(code, message, opts);
  }
}
