/**
 * Option values and files the user names, read and written so that a bad value or an unwritable path
 * ends in a usage error naming the flag (exit 2), never in a crash with a stack trace.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

/**
 * A parser for commander's `.option(flags, description, parser)`: a whole number from `min` to `max`,
 * else a usage error that names the flag.
 */
export function wholeNumber(flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value.trim());
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
      throw new UsageError(`${flag} must be a whole number ${range}, not ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** Writes (or, with `append`, appends to) the file the user named with `flag`; a path that cannot be written is a usage error. */
export function writeNamedFile(flag: string, path: string, text: string, opts: { append?: boolean } = {}): void {
  try {
    if (opts.append) appendFileSync(path, text);
    else writeFileSync(path, text);
  } catch (err) {
    throw new UsageError(
      `${flag} ${path} cannot be written: ${(err as Error).message}`,
      'name a file in a directory that exists and that you may write to',
    );
  }
}
