/**
 * Registers the commands. One file per command; each is thin. A command's module (and everything it
 * imports) is loaded only when it runs: `meridian flag get …` does not load the router, the server or
 * the rollout engine, and `meridian --version` loads none.
 */
import { readFileSync } from 'node:fs';
import { Help, type Command } from 'commander';
import type { Io } from '../io.js';

import type { Result } from '../io.js';

/** @deprecated import `Result` from src/cli/io.ts (kept while other branches' commands still import it from here). */
export type { Result } from '../io.js';

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
  [['logs'], async () => (await import('./logs.js')).registerLogs],
  [['demo'], async () => (await import('./demo.js')).registerDemo],
  [['router'], async () => (await import('./router.js')).registerRouter],
  [['rollout'], async () => (await import('./rollout.js')).registerRollout],
  [['approve', 'reject'], async () => (await import('./approve.js')).registerApprove],
  [['rollback'], async () => (await import('./rollback.js')).registerRollback],
  [['serve'], async () => (await import('./serve.js')).registerServe],
  [['token'], async () => (await import('./token.js')).registerToken],
  [['flag'], async () => (await import('./flag.js')).registerFlag],
  [['export'], async () => (await import('./export.js')).registerExport],
  [['evacuate', 'restore', 'disaster'], async () => (await import('./evacuate.js')).registerEvacuate],
  [['drill'], async () => (await import('./drill.js')).registerDrill],
];

/** The top-level command names, for tests and completion. */
export const COMMAND_NAMES: readonly string[] = MODULES.flatMap(([names]) => names);

/** One command as the top-level help lists it (written at build time by scripts/cli-summaries.mjs). */
interface Summary {
  readonly name: string;
  readonly term: string;
  readonly description: string;
}

/**
 * Registers what `argv` needs: nothing for `--version`, only the named command's module when the first
 * argument names one (also after `help`), else every command (no command, `help`, `--help`, or an
 * unknown name, which gets "did you mean" from the full list). For those, when the build wrote
 * summaries.json, each command is registered by its name and help line only, without loading its module.
 */
export async function registerCommands(
  program: Command,
  io: Io,
  result: Result,
  argv?: readonly string[],
  opts: { summaries?: boolean } = {},
): Promise<void> {
  const first = argv?.[0];
  if (first === '-V' || first === '--version') return;
  const name = first === 'help' ? argv?.[1] : first;
  const named = name === undefined ? undefined : MODULES.find(([names]) => names.includes(name));
  if (named !== undefined) return (await named[1]())(program, io, result);
  const summaries = opts.summaries === false ? null : readSummaries();
  if (summaries === null) {
    for (const [, load] of MODULES) (await load())(program, io, result);
    return;
  }
  for (const s of summaries) program.command(s.name).description(s.description);
  const term = new Map(summaries.map((s) => [s.name, s.term]));
  program.configureHelp({
    subcommandTerm(c) {
      return term.get(c.name()) ?? Help.prototype.subcommandTerm.call(this, c); // `help [command]`
    },
  });
}

/** The build's summaries.json beside this module, when it lists exactly the commands there are; else null. */
function readSummaries(): readonly Summary[] | null {
  try {
    const list = JSON.parse(readFileSync(new URL('summaries.json', import.meta.url), 'utf8')) as Summary[];
    const names = list.map((s) => s.name);
    return names.length === COMMAND_NAMES.length && COMMAND_NAMES.every((n) => names.includes(n)) ? list : null;
  } catch {
    return null; // not built (tests run the sources): load every command
  }
}
