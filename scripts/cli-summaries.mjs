// After `tsc`: writes dist/cli/commands/summaries.json — each command's name, usage term and description,
// read from the compiled command modules themselves — so that `meridian --help` lists every command
// without loading them all (src/cli/commands/index.ts). Run by `npm run build` (and so by `prepare`), and
// by the benchmarks' build (bench/lib/build.ts) with the folder they compile into.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';

// the compiled tree: dist/ by default, or the folder given (the benchmarks compile into their own)
const dist = process.argv[2] ? pathToFileURL(`${process.argv[2].replace(/\/+$/, '')}/cli/`) : new URL('../dist/cli/', import.meta.url);
const { registerCommands } = await import(new URL('commands/index.js', dist).href);
const { processIo } = await import(new URL('io.js', dist).href);
const program = new Command('meridian');
await registerCommands(program, processIo(), { code: 0 }, [], { summaries: false });
const help = program.createHelp();
const summaries = program.commands.map((c) => ({
  name: c.name(),
  term: help.subcommandTerm(c),
  description: help.subcommandDescription(c),
}));
writeFileSync(new URL('commands/summaries.json', dist), `${JSON.stringify(summaries, null, 2)}\n`);
