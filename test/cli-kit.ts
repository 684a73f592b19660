/** Runs the built `meridian` command (bin/meridian.js) as a user would, for tests. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '..', 'bin', 'meridian.js');

/** How a `meridian` run ended. */
export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export interface CliOptions {
  readonly cwd: string;
  /** `MERIDIAN_ACTOR` (who the audit log names); none by default. */
  readonly actor?: string;
  /** More environment, over the test's own with `NO_COLOR=1`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Milliseconds before the run is killed (a hung command fails its test instead of the suite). */
  readonly timeout?: number;
}

/** Runs `meridian ARGS` to its end and returns its exit code and output. */
export function runMeridian(args: readonly string[], o: CliOptions): CliRun {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: o.cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...(o.actor !== undefined ? { MERIDIAN_ACTOR: o.actor } : {}), ...o.env },
    timeout: o.timeout ?? 120_000,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
