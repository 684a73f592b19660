/**
 * The CLI's own entry point for commands that run other commands in the same process (`meridian demo`).
 * main.ts sets it, so that no command imports main.ts (which loads the commands): no import cycle.
 */
import type { Io } from './io.js';

type Runner = (argv: readonly string[], io: Io) => Promise<number>;

let runner: Runner | null = null;

/** Called once by main.ts. */
export function setCliRunner(r: Runner): void {
  runner = r;
}

/** Runs `meridian ARGV` in this process with the given output; resolves to its exit code. */
export function runCli(argv: readonly string[], io: Io): Promise<number> {
  if (runner === null) throw new Error('the CLI runner is not set: load src/cli/main.ts first');
  return runner(argv, io);
}
