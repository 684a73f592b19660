/**
 * The README's rollout as a user runs it, end to end with the built CLI: `meridian up` of a copy of
 * examples/shop, the traffic that `up`'s `try` line suggests (run exactly as printed), the next version of
 * `web`, and `meridian rollout`. The canary wave (steps 5 %, 25 %, 100 %; `minSamples: 100`) should be
 * promoted without a pause for samples, and the rollout then wait for the europe wave's approval (exit 5).
 *
 * Per run: the exit code, whether any step measured past its end for samples (`analysis.sampleWait`) and
 * how long, and the fewest canary samples (upstream attempts) a step had at its end when it had too few.
 *
 * Run: `npm run build && npx tsx bench/readme-rollout.ts [--runs 3] [--json]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { bumpVersion } from '../src/demo/demo-fleet.js';
import { argNumber, meridian, MERIDIAN_BIN } from './lib/cli.js';

const RUNS = argNumber('runs', 3);
const JSON_OUT = process.argv.includes('--json');
const root = join(import.meta.dirname, '..');

interface RunResult {
  readonly exit: number | null;
  readonly canaryPromoted: boolean;
  readonly pausedForSamples: boolean;
  /** Steps that measured past their end for samples, and the longest such wait. */
  readonly extendedSteps: number;
  readonly maxWaitedS: number;
  /** The fewest canary samples a step had at its end when it had too few (null: every step had enough). */
  readonly fewestAtStepEnd: number | null;
  readonly seconds: number;
  readonly suggested: string;
}

/** Splits a command line printed for a shell (double quotes only, as `up` prints it). */
function shellWords(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

async function once(): Promise<RunResult> {
  const work = mkdtempSync(join(os.tmpdir(), 'meridian-readme-rollout-'));
  cpSync(join(root, 'examples', 'shop'), join(work, 'shop'), { recursive: true });
  let traffic: ChildProcess | null = null;
  try {
    const up = meridian(work, ['up', 'shop', '--detach', '--port', '0', '--no-server']);
    if (up.code !== 0) throw new Error(`meridian up failed: ${up.err}`);
    // the detached fleet's full summary (with the `try` line) is in its log
    const summary = `${up.out}\n${readFileSync(join(work, '.meridian', 'up.log'), 'utf8')}`;
    const tryLine = /try\s+meridian traffic (.*)$/m.exec(summary)?.[1];
    if (!tryLine) throw new Error(`meridian up printed no traffic suggestion:\n${up.out}`);
    traffic = spawn(process.execPath, [MERIDIAN_BIN, 'traffic', ...shellWords(tryLine)], { cwd: work, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 5000)); // the README starts the traffic first
    bumpVersion(join(work, 'shop'), 'web');
    const t0 = performance.now();
    const ro = meridian(work, ['rollout', 'shop', '--actor', 'alice'], 'alice');
    const seconds = (performance.now() - t0) / 1000;
    writeFileSync(join(os.tmpdir(), 'meridian-readme-rollout-last.txt'), `${ro.out}\n${ro.err}`);
    const log = `${ro.out}\n${ro.err}`; // the events go to stderr, the outcome to stdout
    const waited = [...log.matchAll(/after waiting ([\d.]+) s past the step's end for samples/g)].map((m) => Number(m[1]));
    const short = [...log.matchAll(/waiting for samples: (\d+) of minSamples/g)].map((m) => Number(m[1]));
    meridian(work, ['rollout', 'abort', '--reason', 'bench over']);
    return {
      exit: ro.code,
      canaryPromoted: /#\d+ promoted → waiting for approvals of wave europe/.test(log),
      pausedForSamples: /→ paused/.test(log),
      extendedSteps: waited.length,
      maxWaitedS: waited.length ? Math.max(...waited) : 0,
      fewestAtStepEnd: short.length ? Math.min(...short) : null,
      seconds,
      suggested: `meridian traffic ${tryLine}`,
    };
  } finally {
    if (traffic?.pid) process.kill(traffic.pid, 'SIGTERM');
    meridian(work, ['down']);
    rmSync(work, { recursive: true, force: true });
  }
}

const results: RunResult[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await once();
  results.push(r);
  process.stderr.write(`run ${i + 1}: ${JSON.stringify(r)}\n`);
}
if (JSON_OUT) {
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} else {
  const promoted = results.filter((r) => r.exit === 5 && r.canaryPromoted && !r.pausedForSamples).length;
  const lines = [
    `### The README's rollout at the suggested rate (\`bench/readme-rollout.ts\`), ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}, load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ')}. Traffic as \`meridian up\` suggests: \`${results[0]?.suggested ?? ''}\`.`,
    '',
    `Canary wave promoted without a pause for samples, rollout waiting for europe's approval (exit 5): **${promoted} of ${results.length}**.`,
    '',
    '| run | exit | canary wave promoted | paused | steps that measured past their end for samples (longest wait) | fewest canary samples at the end of a short step (minSamples 100) | rollout time |',
    '| ---: | ---: | --- | --- | --- | ---: | ---: |',
    ...results.map(
      (r, i) =>
        `| ${i + 1} | ${r.exit ?? '-'} | ${r.canaryPromoted ? 'yes' : 'no'} | ${r.pausedForSamples ? 'yes' : 'no'} | ${r.extendedSteps} (${r.maxWaitedS} s) | ${r.fewestAtStepEnd ?? '-'} | ${r.seconds.toFixed(0)} s |`,
    ),
    '',
  ];
  process.stdout.write(lines.join('\n'));
}
