/**
 * `meridian demo` and `npm start` as a newcomer meets them: the story (traffic routed by country, a good
 * version promoted through every wave, a bad one caught in the first wave and rolled back), and a SIGTERM
 * — to the demo, or to npm running the package's own start script — that leaves no process behind.
 * Runs the small test fleet (three clusters, one service) with gates on the error rate, not the shop.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';
import { BIN, spawnNode } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const started: number[] = [];

/** Processes whose working directory is `dir` or below it: the demo itself and every replica it started. */
function pidsUnder(dir: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const cwd = readlinkSync(`/proc/${d}/cwd`);
        return cwd === dir || cwd.startsWith(`${dir}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** A work directory with the tiny fleet, its steps a few seconds long and gated on the error rate. */
function workDir(): { work: string; fleet: string } {
  const work = mkdtempSync(join(tmpdir(), 'meridian-demo-'));
  const fleet = join(work, 'tiny');
  copyRolloutFleet(fleet);
  const file = join(fleet, 'fleet.yaml');
  writeFileSync(
    file,
    readFileSync(file, 'utf8')
      .replaceAll('pause: 50ms', 'pause: 3s')
      .replace(
        '  analysis: { interval: 50ms }',
        '  analysis:\n    interval: 1s\n    minSamples: 10\n    metrics:\n      - { name: error-rate, source: router, max: 1%, onNoData: inconclusive }',
      ),
  );
  return { work, fleet };
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

const ARGS = ['--port', '0', '--server-port', '0', '--rps', '40', '--mix', 'DE:50,US:50'];

describe('meridian demo', () => {
  it('tells the story — routing, a promoted rollout, a rolled-back one — and a SIGTERM leaves no process', async () => {
    const { work } = workDir();
    const demo = spawnNode([BIN, 'demo', 'tiny', ...ARGS], { cwd: work });
    started.push(demo.proc.pid as number);
    await until('the story', () => demo.out().includes('Ctrl-C stops everything.\n') && demo.out().includes('The story'), 240_000);
    const out = demo.out();
    expect(out).toContain('The story is told: one rollout promoted everywhere, one caught in its first wave and rolled back.');
    // the routing at a glance: both countries, the clusters that served them
    expect(out).toMatch(/^ {2}DE +→ local-[abc] \d+%/m);
    expect(out).toMatch(/^ {2}US +→ local-[abc] \d+%/m);
    // the first rollout starts after a traffic report that finds the traffic answered, or says it starts all the same
    const beforeFirst = out.slice(0, out.indexOf('A good release'));
    const reports = [...beforeFirst.matchAll(/^traffic: \d+ requests in \d+ s, ([\d.]+)% errors/gm)].map((m) => Number(m[1]));
    expect(reports.length).toBeGreaterThan(0);
    expect((reports.at(-1) ?? 100) < 5 || beforeFirst.includes('the rollouts start all the same')).toBe(true);
    // the good release: every wave, gates passed with their numbers, promoted
    expect(out).toContain('A good release: web 1.0.0 → 1.1.0');
    expect(out).toMatch(/▸ wave canary \[local-a\]: 1\.1\.0 starts beside 1\.0\.0 as a canary/);
    expect(out).toMatch(/▸ wave rest \[local-b, local-c\]: 1\.1\.0 starts beside 1\.0\.0/);
    expect(out).toMatch(/✓ gate passed at wave canary step 1\/2 \(50%\): error-rate pass: canary 0% \(0\/\d+\)/);
    expect(out).toMatch(/✓ rollout ro-\S+ promoted: every wave promoted/);
    // the bad release: caught in the first wave, rolled back
    const bad = out.slice(out.indexOf('A bad release: web 1.1.0 → 1.2.0'));
    expect(bad).toMatch(/✗ gate fail at wave canary step 1\/2 \(50%\): error-rate fail: canary [\d.]+% \(\d+\/\d+\)/);
    expect(bad).toContain('↩ local-a is back on the old revision');
    expect(bad).toMatch(/↩ rollout ro-\S+ rolled-back/);
    expect(bad).not.toContain('▸ wave rest');
    const pids = pidsUnder(work);
    expect(pids.length).toBeGreaterThanOrEqual(4); // the demo and a replica per cluster
    demo.proc.kill('SIGTERM');
    await demo.exited;
    await until('every process to stop', () => pidsUnder(work).length === 0, 20_000);
  }, 300_000);

  it('npm start runs the demo with exec: a SIGTERM to npm reaches it, and no process is left', async () => {
    const { work } = workDir();
    // the package's own start script, pointed at this checkout's CLI and the small fleet
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
    const script = pkg.scripts.start.replace('bin/meridian.js', BIN).replace('examples/shop', 'tiny');
    expect(script).toMatch(/^exec node /);
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'demo-start', version: '0.0.0', scripts: { start: script } }));
    const npm = spawn('npm', ['start', '--', ...ARGS], {
      cwd: work,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(npm.pid as number);
    let out = '';
    npm.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<void>((r) => npm.on('exit', () => r()));
    await until('the fleet and its traffic', () => out.includes('Traffic:'), 120_000);
    expect(pidsUnder(work).length).toBeGreaterThanOrEqual(4);
    npm.kill('SIGTERM');
    await exited;
    await until('every process to stop', () => pidsUnder(work).length === 0, 20_000);
  }, 180_000);
});
