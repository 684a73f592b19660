/**
 * How fast does a flag turned off in one region stop that region's clusters from serving?
 *
 * `meridian up --detach` runs a small fleet (test/fixtures/rollout-fleet: regions eu and us, three
 * clusters, the web service gated by the flag `beta`) as real processes behind the router, which polls
 * the flags over OFREP (default every 250 ms). Four keep-alive clients send requests as German clients
 * (home region eu) without pause. Each trial runs `meridian flag set beta --region eu --off` and records
 * the send time of the last request eu served; the delay is measured from the flag change's commit (its
 * audit entry's time, the store's clock — the same machine) and from the command's start (which adds the
 * CLI's own start-up). Then `--on` brings eu back for the next trial. Loopback only.
 *
 * Run: `npm run bench -- flag-killswitch [--trials 20] [--interval 250ms] [--json]` (needs a built dist/).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { copyFlagGatedFleet, type Sample, trafficUntil } from '../test/fixtures/flag-gated-fleet.js';
import { median } from './lib/measure.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'meridian.js');
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const TRIALS = Number(arg('trials', '20'));
const INTERVAL = arg('interval', '250ms');
const JSON_OUT = process.argv.includes('--json');

const work = mkdtempSync(join(os.tmpdir(), 'meridian-bench-flags-'));
const fleet = join(work, 'fleet');
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

function meridian(args: string[]): Promise<{ code: number; out: string; err: string; startedAt: number; endedAt: number }> {
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    const child = spawn(process.execPath, [BIN, ...args], { cwd: work, env: { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'bench' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err, startedAt, endedAt: Date.now() }));
  });
}

const traffic = (router: string, stop: (s: readonly Sample[]) => boolean): Promise<Sample[]> => trafficUntil(router, agent, stop);

async function must(args: string[]): Promise<Awaited<ReturnType<typeof meridian>>> {
  const r = await meridian(args);
  if (r.code !== 0) throw new Error(`meridian ${args.join(' ')} exited ${r.code}: ${r.out}${r.err}`);
  return r;
}

interface Trial {
  readonly fromCommitMs: number;
  readonly fromCommandMs: number;
  readonly cliMs: number;
  readonly requests: number;
  readonly strayAfter: number;
}

async function trial(router: string): Promise<Trial> {
  await must(['flag', 'set', 'beta', '--region', 'eu', '--on', '-f', fleet]);
  await traffic(router, (s) => (s.length >= 20 && s.slice(-20).every((x) => x.region === 'eu')) || s.length > 20_000);
  let done = 0;
  const running = traffic(router, (s) => {
    if (done === 0) return false;
    let lastEu = 0;
    for (const x of s) if (x.region === 'eu' && x.sentAt > lastEu) lastEu = x.sentAt;
    return Date.now() - Math.max(lastEu, done) > 1000 || Date.now() - done > 10_000;
  });
  const off = await must(['flag', 'set', 'beta', '--region', 'eu', '--off', '-f', fleet]);
  done = Date.now();
  const samples = await running;
  const entry = (JSON.parse((await must(['audit', 'log', '-o', 'json', '-n', '1'])).out) as { action: string; at: string }[])[0];
  if (entry?.action !== 'flag.set') throw new Error('the newest audit entry is not the flag change');
  const committed = Date.parse(entry.at);
  const lastEu = Math.max(...samples.filter((s) => s.region === 'eu').map((s) => s.sentAt));
  return {
    fromCommitMs: lastEu - committed,
    fromCommandMs: lastEu - off.startedAt,
    cliMs: off.endedAt - off.startedAt,
    requests: samples.length,
    strayAfter: samples.filter((s) => s.sentAt > committed + 5000 && s.region === 'eu').length,
  };
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  copyFlagGatedFleet(fleet);
  await must(['up', fleet, '--detach', '--port', '0', '--quiet', '--flags-interval', INTERVAL]);
  const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { router: string };
  const trials: Trial[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) trials.push(await trial(info.router));
  } finally {
    agent.destroy();
    await meridian(['down']);
    rmSync(work, { recursive: true, force: true });
  }
  const stat = (f: (t: Trial) => number): { median: number; max: number; min: number } => {
    const v = trials.map(f);
    return { median: median(v), max: Math.max(...v), min: Math.min(...v) };
  };
  const commit = stat((t) => t.fromCommitMs);
  const command = stat((t) => t.fromCommandMs);
  const cli = stat((t) => t.cliMs);
  const result = {
    trials: trials.length,
    interval: INTERVAL,
    fromCommitMs: commit,
    fromCommandMs: command,
    cliMs: cli,
    requestsPerTrial: median(trials.map((t) => t.requests)),
    strayAfter5s: trials.reduce((n, t) => n + t.strayAfter, 0),
    raw: trials,
  };
  if (JSON_OUT) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const ms = (n: number): string => `${Math.round(n)} ms`;
  const intervalMs = Number.parseFloat(INTERVAL) * (INTERVAL.endsWith('ms') ? 1 : 1000);
  process.stdout.write(
    [
      `## flag kill switch (\`bench/flag-killswitch.ts\`)`,
      '',
      `${os.cpus().length} vCPU ${os.cpus()[0]?.model ?? ''}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; ${trials.length} trials, router polling every ${INTERVAL}`,
      '',
      '| from | median | min | max |',
      '| --- | ---: | ---: | ---: |',
      `| the flag change's commit to the last request eu served | ${ms(commit.median)} | ${ms(commit.min)} | ${ms(commit.max)} |`,
      `| \`meridian flag set\` started to the last request eu served | ${ms(command.median)} | ${ms(command.min)} | ${ms(command.max)} |`,
      `| \`meridian flag set\` wall time (process start to exit) | ${ms(cli.median)} | ${ms(cli.min)} | ${ms(cli.max)} |`,
      '',
      `Median from commit / polling interval: ${(commit.median / intervalMs).toFixed(2)} (a change waits on average half an interval for the next poll, then one poll and one table build).`,
      `Requests per trial (median): ${result.requestsPerTrial}; requests eu served more than 5 s after a commit: ${result.strayAfter5s}.`,
      '',
    ].join('\n'),
  );
}

await main();
