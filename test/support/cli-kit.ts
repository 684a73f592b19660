/** Runs the built `meridian` command (bin/meridian.js) as a user would, for tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'meridian.js');

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

/** A long-running Node process of a test, with what it printed so far. */
export interface NodeProcess {
  readonly proc: ChildProcess;
  out(): string;
  err(): string;
  /** Its exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

/** Starts `node NODE_ARGS` (for `meridian`: `[BIN, ...args]`) and collects its output; the caller stops it. */
export function spawnNode(nodeArgs: readonly string[], o: Omit<CliOptions, 'timeout'>): NodeProcess {
  const proc = spawn(process.execPath, [...nodeArgs], {
    cwd: o.cwd,
    env: { ...process.env, NO_COLOR: '1', ...(o.actor !== undefined ? { MERIDIAN_ACTOR: o.actor } : {}), ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, out: () => out, err: () => err, exited };
}

/** Processes whose working directory is `dir`: the replicas the local driver started for a fleet there. */
export function replicaPids(dir: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readlinkSync(`/proc/${d}/cwd`) === dir;
      } catch {
        return false; // gone, or not ours to read
      }
    })
    .map(Number);
}
