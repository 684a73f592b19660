/**
 * How long do `meridian validate` and `meridian plan` take on a big fleet, and where does the time go?
 *
 * Generates fleets of 100, 1,000 and 5,000 clusters × 50 services (bench/gen-fleet.ts) into bench/out/,
 * then measures:
 *   1. the library phases (load, render) in a fresh process per run — median of --phase-runs;
 *   2. the CLI as whole processes — `validate DIR`, `plan DIR --state TMP.sqlite` (and `render DIR`):
 *      median wall time of --runs, peak RSS from /usr/bin/time -v (or a wrapper's own resourceUsage).
 * Targets at 1,000 × 50: validate and plan under 5 s wall and under 1 GiB.
 *
 *   npm run bench                                     # every bench script
 *   node --import tsx bench/validate-plan.ts [--sizes 100,1000,5000] [--services 50] [--runs 5]
 *        [--phase-runs 3] [--skip-cli] [--profile] [--fresh]
 *   --profile: a CPU profile of the library phases at 1,000 clusters, summarised
 *   --fresh:   run the CLI from bench/out/dist (tsc's build of src/ as it is now) instead of bin/meridian.js
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchSecretEnv, writeFleet } from './gen-fleet.js';
import { median, mib, ms, rssMethod, runNode, type ProcessRun } from './lib/measure.js';
import type { PhaseResult } from './lib/phases.js';
import { hotFunctions } from './lib/profile.js';
import { buildLibrary } from './lib/build.js';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', 'out');
const BIN = join(ROOT, 'bin', 'meridian.js');
const FRESH_BIN = join(ROOT, 'bench', 'lib', 'fresh-cli.mjs');
const PHASES = join(ROOT, 'bench', 'lib', 'phases.ts');
const LIB = join(OUT, 'dist');
const TARGET = { clusters: 1000, wallMs: 5000, rssMiB: 1024 };

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,5000' },
    services: { type: 'string', default: '50' },
    runs: { type: 'string', default: '5' },
    'phase-runs': { type: 'string', default: '3' },
    'skip-cli': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
  },
});
const sizes = values.sizes.split(',').map(Number);
const nServices = Number(values.services);
const runs = Number(values.runs);
const phaseRuns = Number(values['phase-runs']);
const env = benchSecretEnv();
const say = (s = ''): void => void process.stdout.write(`${s}\n`);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

let libEnv: Record<string, string> = {};
/** The script that runs the CLI: bin/meridian.js, or bench/lib/fresh-cli.mjs with `--fresh`. */
let cli = BIN;

async function phases(dir: string, nodeArgs: readonly string[] = []): Promise<PhaseResult> {
  const r = await runNode(PHASES, [dir], { cwd: ROOT, env: { ...env, ...libEnv }, nodeArgs: ['--import', 'tsx', ...nodeArgs] });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 && !line.startsWith('{')) throw new Error(`the phases run failed (exit ${r.code}): ${r.stderr.slice(0, 2000)}`);
  return JSON.parse(line) as PhaseResult;
}

interface CliCommand {
  readonly name: string;
  readonly args: (dir: string, tmp: string) => string[];
}

const COMMANDS: readonly CliCommand[] = [
  { name: 'validate', args: (dir) => ['validate', dir] },
  { name: 'plan', args: (dir, tmp) => ['plan', dir, '--state', join(tmp, 'state.sqlite')] },
  { name: 'render', args: (dir) => ['render', dir, '--output', 'json'] },
];

/** The commands the built CLI has, from its help (`meridian X --help` shows the main help for an unknown X). */
async function cliCommands(): Promise<Set<string>> {
  const r = await runNode(cli, ['--help'], { cwd: ROOT });
  const section = r.stdout.split(/^Commands:$/m)[1] ?? '';
  return new Set([...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1] ?? ''));
}

interface Row {
  clusters: number;
  cells: string[];
}

async function main(): Promise<number> {
  say('## validate and plan at scale');
  say();
  say(
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
  );
  say(`- date: ${new Date().toISOString().slice(0, 10)}`);
  say(`- command: npm run bench -- validate-plan --sizes ${values.sizes} --services ${nServices} --runs ${runs} --phase-runs ${phaseRuns}`);
  say(`- peak RSS from: ${rssMethod() === 'gnu-time' ? '/usr/bin/time -v' : 'process.resourceUsage() in a wrapper process'}`);
  say();

  mkdirSync(OUT, { recursive: true });
  const dirs = new Map<number, string>();
  say('| fleet | files | size | generate |');
  say('| --- | ---: | ---: | ---: |');
  for (const n of sizes) {
    const dir = join(OUT, `fleet-${n}x${nServices}`);
    const t0 = performance.now();
    const { files, bytes } = writeFleet(dir, { clusters: n, services: nServices });
    say(`| ${n} × ${nServices} | ${files} | ${(bytes / 1024).toFixed(0)} KiB | ${ms(performance.now() - t0)} |`);
    dirs.set(n, dir);
  }
  say();

  const build = buildLibrary(ROOT, LIB);
  if (build.ok) libEnv = { MERIDIAN_BENCH_LIB: LIB };
  say(`### Library phases (fresh process per run, median of ${phaseRuns})`);
  say();
  say(
    build.ok
      ? `src/ compiled by tsc into bench/out/dist (${build.message}); the phases run that build.`
      : `tsc could not build src/ (${build.message.split('\n')[0] ?? ''}); the phases run src/ through tsx.`,
  );
  say();
  say('| fleet | instances | load | render | preflight | diff (plan) | total | peak RSS | failing findings |');
  say('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  let unclean = false;
  for (const [n, dir] of dirs) {
    const results: PhaseResult[] = [];
    for (let i = 0; i < phaseRuns; i++) results.push(await phases(dir));
    const last = results[results.length - 1];
    const phase = (get: (r: PhaseResult) => number | null): string =>
      results.some((r) => get(r) === null) ? 'n/a' : ms(median(results.map((r) => get(r) ?? 0)));
    const total = median(results.map((r) => r.loadMs + r.renderMs + (r.preflightMs ?? 0) + (r.diffMs ?? 0)));
    say(
      `| ${n} × ${nServices} | ${last?.instances ?? 0} | ${phase((r) => r.loadMs)} | ${phase((r) => r.renderMs)} | ${phase((r) => r.preflightMs)} | ${phase((r) => r.diffMs)} | ${ms(total)} | ${mib(median(results.map((r) => r.maxRssMiB)))} | ${last?.findings ?? '?'} |`,
    );
    if (last && last.findings > 0) {
      unclean = true;
      for (const f of last.firstFindings) process.stderr.write(`  ${n} x ${nServices}: ${f}\n`);
    }
  }
  say();

  let code = unclean ? 1 : 0;
  if (unclean) say('**A generated fleet has failing findings (listed on stderr): the generator or a check is wrong.**\n');

  if (values.profile) await profile(dirs);

  if (values['skip-cli']) return code;
  say(`### CLI, whole process (median wall of ${runs} runs, highest peak RSS)`);
  say();
  if (values.fresh) {
    if (!existsSync(join(LIB, 'cli', 'main.js'))) {
      say('--fresh: tsc did not build src/cli into bench/out/dist, so the CLI was not measured.');
      return 1;
    }
    cli = FRESH_BIN;
    say("The CLI runs from bench/out/dist (`--fresh`: tsc's build of src/ as it is now).");
    say();
  } else if (!existsSync(BIN)) {
    say(`bin/meridian.js is missing: the CLI is not there yet, so only the library phases were measured.`);
    return 1;
  }
  const distMain = join(ROOT, 'dist', 'cli', 'main.js');
  if (!values.fresh && existsSync(distMain) && newestMtime(join(ROOT, 'src')) > statSync(distMain).mtimeMs) {
    say('> note: src/ is newer than dist/, and bin/meridian.js runs dist/: run `npm run build` first, or pass `--fresh`.');
    say();
  }
  const commands: CliCommand[] = [];
  const known = await cliCommands();
  for (const c of COMMANDS) {
    if (known.has(c.name)) commands.push(c);
    else say(`- \`meridian ${c.name}\` is not in this build of the CLI (not in \`meridian --help\`): not measured.`);
  }
  if (commands.length === 0) return 1;
  if (!commands.some((c) => c.name === 'validate') || !commands.some((c) => c.name === 'plan')) code = 1;
  say();
  say(`| fleet | ${commands.map((c) => `${c.name} wall | ${c.name} RSS`).join(' | ')} |`);
  say(`| --- | ${commands.map(() => '---: | ---:').join(' | ')} |`);
  const rows: Row[] = [];
  for (const [n, dir] of dirs) {
    const cells: string[] = [];
    for (const c of commands) {
      const results: ProcessRun[] = [];
      for (let i = 0; i < runs; i++) {
        const tmp = mkdtempSync(join(tmpdir(), 'meridian-bench-'));
        try {
          results.push(await runNode(cli, c.args(dir, tmp), { cwd: ROOT, env }));
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      }
      const wall = median(results.map((r) => r.wallMs));
      const rss = Math.max(...results.map((r) => r.maxRssMiB ?? Number.NaN));
      const codes = [...new Set(results.map((r) => r.code))];
      const bad = codes.some((x) => x !== 0);
      const meets = n !== TARGET.clusters || c.name === 'render' ? '' : wall < TARGET.wallMs && rss < TARGET.rssMiB ? ' ✓' : ' ✗';
      cells.push(`${ms(wall)}${meets}${bad ? ` (exit ${codes.join('/')})` : ''}`, mib(rss));
      if (bad) {
        code = 1;
        const first = results.find((r) => r.code !== 0);
        process.stderr.write(
          `meridian ${c.args(dir, '<tmp>').join(' ')} exited ${first?.code}:\n${(first?.stderr || first?.stdout || '').slice(0, 1500)}\n`,
        );
      }
    }
    rows.push({ clusters: n, cells });
    say(`| ${n} × ${nServices} | ${cells.join(' | ')} |`);
  }
  say();
  say(`✓/✗: the target at ${TARGET.clusters} × ${nServices} (under ${TARGET.wallMs / 1000} s and ${TARGET.rssMiB} MiB).`);
  return code;
}

async function profile(dirs: Map<number, string>): Promise<void> {
  const n = dirs.has(TARGET.clusters) ? TARGET.clusters : Math.max(...dirs.keys());
  const dir = dirs.get(n) ?? '';
  const profDir = join(OUT, 'profiles');
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(profDir, { recursive: true });
  await phases(dir, ['--cpu-prof', '--cpu-prof-dir', profDir]);
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  // the largest profile is the child's (tsx may leave a small one for its loader thread)
  const file = files.map((f) => join(profDir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!file) return;
  const { totalMs, functions } = hotFunctions(file, ROOT);
  say(`### Where the library phases spend their time at ${n} × ${nServices} (CPU profile, ${ms(totalMs)} sampled)`);
  say();
  say(`Profile: \`${file.slice(ROOT.length + 1)}\` (open it in Chrome DevTools or speedscope).`);
  say();
  say('| function | self | total |');
  say('| --- | ---: | ---: |');
  for (const f of functions.slice(0, 25)) say(`| \`${f.where}\` | ${ms(f.selfMs)} | ${ms(f.totalMs)} |`);
  say();
  const ours = functions.filter((f) => /\((src|bench\/out\/dist)\//.test(f.where)).sort((a, b) => b.totalMs - a.totalMs);
  say('Meridian functions by total time:');
  say();
  say('| function | self | total |');
  say('| --- | ---: | ---: |');
  for (const f of ours.slice(0, 15)) say(`| \`${f.where}\` | ${ms(f.selfMs)} | ${ms(f.totalMs)} |`);
  say();
}

process.exitCode = await main();
