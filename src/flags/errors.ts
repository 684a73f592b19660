/** Errors of the flags part (`MERIDIAN_E_FLAG_…`): unknown flags and regions, bad settings. */
import type { ErrorCodeOf } from '../error-codes.js';
import { MeridianError } from '../errors.js';
import { closest } from '../spec/schema-walk.js';

/** A flag request that cannot be carried out as given. */
export class FlagError extends MeridianError {
  constructor(code: ErrorCodeOf<'FlagError'>, message: string, hint?: string) {
    super(code, message, hint === undefined ? {} : { hint });
  }
}

/**
 * `did you mean "x"?` when a known name is close to `name`, else the list of known names. Shared by the
 * CLI's errors and the OFREP error details.
 */
export function suggestName(kind: string, name: string, known: readonly string[]): string {
  const guess = closest(name, known);
  if (guess !== undefined) return `did you mean ${JSON.stringify(guess)}?`;
  return known.length > 0 ? `the fleet's ${kind}s are: ${known.join(', ')}` : `the fleet defines no ${kind}s`;
}

/** The error for a flag the fleet does not define. */
export function unknownFlag(name: string, fleet: string, known: readonly string[]): FlagError {
  return new FlagError(
    'MERIDIAN_E_FLAG_UNKNOWN',
    `the fleet ${fleet} has no flag ${JSON.stringify(name)}`,
    `${suggestName('flag', name, known)} (flags are declared under \`flags:\` in the fleet files)`,
  );
}

/** The error for a region the fleet does not define. */
export function unknownRegion(name: string, fleet: string, known: readonly string[]): FlagError {
  return new FlagError(
    'MERIDIAN_E_FLAG_UNKNOWN_REGION',
    `the fleet ${fleet} has no region ${JSON.stringify(name)}`,
    suggestName('region', name, known),
  );
}
