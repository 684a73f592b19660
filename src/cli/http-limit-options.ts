/** The `--*-timeout` and `--max-connections` options that `meridian router` and `meridian serve` share. */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../http-limits.js';
import { formatDuration, parseDuration } from '../units/duration.js';

/** The flags as commander hands them over. */
export interface HttpLimitFlags {
  headersTimeout?: string;
  requestTimeout?: string;
  idleTimeout?: string;
  maxConnections?: string;
}

const d = DEFAULT_HTTP_LIMITS;

/** Adds the limit options to a command. */
export function addHttpLimitOptions(cmd: Command): Command {
  return cmd
    .option(
      '--headers-timeout <duration>',
      `time a client has to send its request headers; 0 for none (default ${formatDuration(d.headersTimeoutMs)})`,
    )
    .option(
      '--request-timeout <duration>',
      `time a client has to send a whole request, body included (default ${formatDuration(d.requestTimeoutMs)})`,
    )
    .option(
      '--idle-timeout <duration>',
      `a connection with a request open and no byte either way for this long is closed (default ${formatDuration(d.idleTimeoutMs)})`,
    )
    .option('--max-connections <n>', `connections beyond this many are closed at once; 0 for no cap (default ${d.maxConnections})`);
}

function durationOf(flag: string, value: string): number {
  const ms = value === '0' ? 0 : parseDuration(value);
  if (ms === undefined) throw new UsageError(`${flag} must be a duration like 20s or 1m (or 0 for none), not ${JSON.stringify(value)}`);
  return ms;
}

/** The limits the flags set (only those given; the rest keep their defaults). */
export function httpLimitsOf(flags: HttpLimitFlags): Partial<HttpLimits> {
  const out: { -readonly [K in keyof HttpLimits]?: number } = {};
  if (flags.headersTimeout !== undefined) out.headersTimeoutMs = durationOf('--headers-timeout', flags.headersTimeout);
  if (flags.requestTimeout !== undefined) out.requestTimeoutMs = durationOf('--request-timeout', flags.requestTimeout);
  if (flags.idleTimeout !== undefined) out.idleTimeoutMs = durationOf('--idle-timeout', flags.idleTimeout);
  if (flags.maxConnections !== undefined) {
    const n = Number(flags.maxConnections);
    if (!Number.isInteger(n) || n < 0)
      throw new UsageError(`--max-connections must be a whole number (0 for no cap), not ${JSON.stringify(flags.maxConnections)}`);
    out.maxConnections = n;
  }
  return out;
}

/** A comma-separated list of addresses and CIDR blocks (`--trusted-sources`, `--admin-sources`). */
export function sourcesOf(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
