/**
 * How long does `meridian` take to start? Each command below runs as a whole process (the CLI compiled
 * from src/ as bin/meridian.js runs it), interleaved with the peer — `node` starting an empty module, the
 * floor no Node CLI goes under — so that both see the same machine; medians over `--runs`.
 *
 * Run: `npx tsx bench/cli-startup.ts [--runs 11]`
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { buildLibrary } from './lib/build.js';
import { median, mib, ms, runNode } from './lib/measure.js';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', 'out');
const LIB = join(OUT, 'dist');
const i = process.argv.indexOf('--runs');
const RUNS = i >= 0 ? Number(process.argv[i + 1]) : 11;

const COMMANDS: readonly (readonly string[])[] = [
  ['--version'],
  ['--help'],
  ['flag', '--help'],
  ['validate', join(ROOT, 'examples', 'shop'), '--no-state'],
  ['route', 'simulate', join(ROOT, 'examples', 'shop')],
];

async function main(): Promise<void> {
  const build = buildLibrary(ROOT, LIB);
  if (!build.ok) throw new Error(`could not compile src/ for the benchmark: ${build.message}`);
  const cli = join(ROOT, 'bench', 'lib', 'fresh-cli.mjs'); // runs bench/out/dist/cli/main.js
  const empty = join(OUT, 'empty.mjs');
  writeFileSync(empty, '');
  const rows: string[] = [];
  for (const args of COMMANDS) {
    const walls: number[] = [];
    const floors: number[] = [];
    let rss = 0;
    for (let r = 0; r < RUNS; r++) {
      const floor = await runNode(empty, [], { cwd: ROOT });
      const run = await runNode(cli, args, { cwd: ROOT, env: { NO_COLOR: '1' } });
      if (run.code !== 0) throw new Error(`meridian ${args.join(' ')} exited ${run.code}: ${run.stderr.slice(0, 500)}`);
      floors.push(floor.wallMs);
      walls.push(run.wallMs);
      rss = Math.max(rss, run.maxRssMiB ?? 0);
    }
    const wall = median(walls);
    const floor = median(floors);
    const shown = args.map((a) => (a.startsWith(ROOT) ? a.slice(ROOT.length + 1) : a)).join(' ');
    rows.push(`| \`meridian ${shown}\` | ${ms(wall)} | ${ms(floor)} | ${(wall / floor).toFixed(1)}× | ${mib(rss)} |`);
  }
  console.log('### CLI start-up (bench/cli-startup.ts)\n');
  console.log(
    `machine: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}; ${RUNS} runs each, interleaved with the peer; medians of whole-process wall time.\n`,
  );
  console.log('| command | wall | `node` on an empty module | ratio | peak RSS |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
}

await main();
