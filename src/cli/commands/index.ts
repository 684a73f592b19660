/**
 * Registers the commands. One file per command; each is thin. A command's module (and everything it
 * imports) is loaded only when it runs: `meridian flag get …` does not load the router, the server or
 * the rollout engine, and `meridian --version` loads none.
 */
import type { Command } from 'commander';
import type { Io } from '../io.js';

/** Where a command leaves its exit code. */
export interface Result {
  code: number;
}

type Register = (program: Command, io: Io, result: Result) => void;

/** Every command module, in the order `--help` lists them, with the top-level command names it registers. */
const MODULES: readonly (readonly [names: readonly string[], load: () => Promise<Register>])[] = [
  [['schema'], async () => (await import('./schema.js')).registerSchema],
  [['render'], async () => (await import('./render.js')).registerRender],
  [['validate'], async () => (await import('./validate.js')).registerValidate],
  [['plan'], async () => (await import('./plan.js')).registerPlan],
  [['audit'], async () => (await import('./audit.js')).registerAudit],
  [['route'], async () => (await import('./route.js')).registerRoute],
  [['traffic'], async () => (await import('./traffic.js')).registerTraffic],
  [['up', 'down'], async () => (await import('./up.js')).registerUp],
  [['router'], async () => (await import('./router.js')).registerRouter],
  [['rollout'], async () => (await import('./rollout.js')).registerRollout],
  [['approve', 'reject'], async () => (await import('./approve.js')).registerApprove],
  [['rollback'], async () => (await import('./rollback.js')).registerRollback],
  [['serve'], async () => (await import('./serve.js')).registerServe],
  [['token'], async () => (await import('./token.js')).registerToken],
  [['flag'], async () => (await import('./flag.js')).registerFlag],
  [['export'], async () => (await import('./export.js')).registerExport],
];

/** The top-level command names, for tests and completion. */
export const COMMAND_NAMES: readonly string[] = MODULES.flatMap(([names]) => names);

/**
 * Registers what `argv` needs: nothing for `--version`, only the named command's module when the first
 * argument names one, else every command (no command, `help`, `--help`, or an unknown name, which gets
 * "did you mean" from the full list).
 */
export async function registerCommands(program: Command, io: Io, result: Result, argv?: readonly string[]): Promise<void> {
  const first = argv?.[0];
  if (first === '-V' || first === '--version') return;
  const named = first === undefined ? undefined : MODULES.find(([names]) => names.includes(first));
  for (const [, load] of named !== undefined ? [named] : MODULES) (await load())(program, io, result);
}
