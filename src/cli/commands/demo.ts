/**
 * `meridian demo` (what `npm start` runs): the whole job in one terminal. A copy of the fleet comes up
 * (`meridian up`, dashboard included) with synthetic traffic from several countries through the router;
 * then a good version of the routed service is rolled out through every wave — canary steps, gates,
 * approvals — and a bad one is caught in the first wave and rolled back, told as a story. The commands
 * run in this process through the CLI's own entry point (`meridian plan`, `rollout -o jsonl`, `approve`),
 * so the story is what those commands do. Ctrl-C or SIGTERM stops everything.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Plan } from '../../plan/plan.js';
import { applyDemoOverlay, bumpVersion, copyFleet, DEMO_TIMINGS } from '../../demo/demo-fleet.js';
import { Narrator } from '../../demo/narrator.js';
import { DEMO_TRAFFIC, errorShare, rolloutReadiness, trafficLine } from '../../demo/traffic-story.js';
import { runTraffic } from '../../traffic/generator.js';
import { parseMix } from '../../traffic/mix.js';
import type { Io } from '../io.js';
import { readUpInfo, type UpInfo } from '../up-info.js';
import { routedExample } from '../up-summary.js';
import type { Result } from './index.js';
import { loadAndRender } from './render.js';
import { runCli as main } from '../cli-runner.js';

/** Where the clients come from: every region of the example fleet, weighted towards the canary regions. */
export const DEMO_MIX = 'GB:22,FR:5,DE:15,US:28,CA:6,MX:4,BR:4,IN:8,JP:8';

interface DemoOptions {
  port: string;
  serverPort: string;
  rps: string;
  mix: string;
  errorRatio: string;
}

/** A stream that hands each whole line written to it to `onLine`. */
function lines(onLine: (line: string) => void): Writable {
  let rest = '';
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      rest += chunk.toString();
      let i: number;
      while ((i = rest.indexOf('\n')) >= 0) {
        onLine(rest.slice(0, i));
        rest = rest.slice(i + 1);
      }
      cb();
    },
  });
}

/** An Io for a command run inside the demo: its stdout and stderr go to the given line handlers. */
function subIo(io: Io, out: (l: string) => void, err: (l: string) => void, env: NodeJS.ProcessEnv = io.env): Io {
  return { ...io, env, out: lines(out), err: lines(err) };
}

export function registerDemo(program: Command, io: Io, result: Result): void {
  program
    .command('demo')
    .description('a guided tour: the fleet up with traffic, a good version rolled out through every wave, a bad one caught and rolled back')
    .argument('[fleet]', 'fleet directory (copied; the copy is changed, never the fleet)', 'examples/shop')
    .option('-p, --port <n>', 'router port (another free one when taken)', '8080')
    .option('--server-port <n>', 'dashboard port (another free one when taken)', '7070')
    .option('--rps <n>', 'synthetic requests per second through the router', '100')
    .option('--mix <mix>', 'client countries and weights', DEMO_MIX)
    .option('--error-ratio <ratio>', 'share of requests the bad version answers with an error', '0.3')
    .action(async (dir: string, opts: DemoOptions) => {
      result.code = await demo(dir, opts, io);
    });
}

async function demo(dir: string, opts: DemoOptions, io: Io): Promise<number> {
  const s = io.style;
  const say = (text: string): void => void io.out.write(`${text}\n`);
  const rps = Number(opts.rps);
  if (!Number.isFinite(rps) || rps <= 0) throw new UsageError(`--rps must be a positive number, not ${JSON.stringify(opts.rps)}`);
  const mix = parseMix(opts.mix);
  const running = readUpInfo(io);
  if (running)
    throw new UsageError(
      `a fleet is already running here (pid ${running.pid}, router ${running.router})`,
      'stop it first (`meridian down`, or Ctrl-C in its terminal); the demo starts its own',
    );
  if (!existsSync(dir))
    throw new UsageError(`there is no fleet at ${dir}`, 'run the demo from the repository root, or name a fleet directory');

  // a copy of the fleet with demo timings, and a state store of its own: each run starts from nothing
  const work = join(io.cwd, '.meridian', 'demo');
  rmSync(work, { recursive: true, force: true });
  const copy = join(work, basename(resolve(dir)));
  copyFleet(resolve(dir), copy);
  applyDemoOverlay(copy);
  const state = join(work, 'state.db');
  const shown = relative(io.cwd, copy) || copy;
  const revision = loadAndRender(copy).rendered.revision;
  const ex = routedExample(revision);
  if (!ex) throw new UsageError(`the fleet at ${dir} routes no service`, 'the demo needs a `routing:` entry to send traffic to');

  say(s.bold(`Meridian demo: the fleet ${revision.fleet} on this machine, traffic through its router, two rollouts`));
  say(
    s.dim(
      `(a copy in ${shown}: rollout pauses ≤ ${DEMO_TIMINGS.pause}, bakes ≤ ${DEMO_TIMINGS.bake}, judged every ${DEMO_TIMINGS.interval}, flags polled every ${DEMO_TIMINGS.flagsPoll}; state in ${relative(io.cwd, state)})`,
    ),
  );
  say('');

  // 1. the fleet, in this process: `meridian up` (its signal handlers stop everything on Ctrl-C or SIGTERM)
  let upEnded: number | null = null;
  const upErr: string[] = [];
  void main(
    ['up', copy, '--fresh', '--state', state, '--port', opts.port, '--server-port', opts.serverPort, '--actor', 'demo'],
    subIo(
      io,
      (l) => say(l),
      (l) => {
        upErr.push(l);
        if (/ready in|starting|taken/.test(l)) say(s.dim(l));
      },
    ),
  ).then((code) => (upEnded = code));
  let info: UpInfo | undefined;
  while (!(info = readUpInfo(io)) || info.pid !== process.pid) {
    if (upEnded !== null) {
      say(upErr.join('\n'));
      return upEnded;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const up = info;

  // 2. traffic from several countries, for as long as the process runs, told every ten seconds
  say('');
  say(
    s.bold(
      `Traffic: ${rps} requests/s from ${mix.map((m) => m.country).join(', ')} through the router (${up.router}, host ${ex.host ?? '-'})`,
    ),
  );
  // a short first period, then one every ten seconds; each starts as the one before stops sending (its last
  // answers are still awaited, so the traffic has no gap); the first rollout waits for traffic answered well
  let ready: 'answered' | 'patience' | null = null;
  void (async () => {
    for (let period = 1; ; period++) {
      const ms = period === 1 ? DEMO_TRAFFIC.firstReportMs : DEMO_TRAFFIC.reportMs;
      void runTraffic({ url: up.router, rps, mix, durationMs: ms, ...(ex.host ? { host: ex.host } : {}) }).then((r) => {
        for (const l of trafficLine(r, period === 1)) say(s.dim(l));
        if (ready !== null) return;
        const now = rolloutReadiness(r, period);
        if (now === 'wait') return;
        if (now === 'patience')
          say(`the traffic still sees ${(100 * errorShare(r)).toFixed(1)}% errors (a busy machine?); the rollouts start all the same`);
        ready = now;
      });
      await new Promise((r) => setTimeout(r, ms));
    }
  })();
  while (ready === null) await new Promise((r) => setTimeout(r, 100));

  // 3. a good version through every wave; 4. a bad one, caught in the first wave
  const rollOut = async (label: string, errorRatio?: string): Promise<number> => {
    const v = bumpVersion(copy, ex.service, errorRatio === undefined ? {} : { errorRatio });
    say('');
    say(
      s.bold(
        `${label}: ${ex.service} ${v.from} → ${v.to}${errorRatio === undefined ? '' : ` (this version answers ${Number(errorRatio) * 100}% of requests with an error)`}`,
      ),
    );
    const planFile = join(work, `plan-${v.to}.json`);
    const captured: string[] = [];
    const keep = (l: string): void => void captured.push(l);
    const planned = await main(['plan', copy, '--state', state, '--out', planFile, '--actor', 'demo'], subIo(io, keep, keep));
    if (planned !== 0) {
      say(captured.join('\n'));
      return planned;
    }
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as Plan;
    say(
      `  plan ${plan.hash.slice(0, 12)}: ${plan.summary.update} clusters to update in ${plan.waves.length} waves (${s.dim(relative(io.cwd, planFile))})`,
    );
    const narrator = new Narrator(plan.waves, v);
    const approving: Promise<number>[] = [];
    let resumes = 0;
    const code = await main(
      [
        'rollout',
        '--plan',
        planFile,
        '--state',
        state,
        '--actor',
        'demo',
        '-o',
        'jsonl',
        '--wait',
        '--poll',
        '200ms',
        '--healthy-checks',
        '1',
      ],
      subIo(
        io,
        (l) => {
          let event: Record<string, unknown>;
          try {
            event = JSON.parse(l) as Record<string, unknown>;
          } catch {
            return;
          }
          for (const line of narrator.tell(event)) say(line.startsWith('    measuring') ? s.dim(line) : line);
          const to = ((event['data'] ?? {}) as Record<string, unknown>)['to'] as Record<string, unknown> | undefined;
          const wave = plan.waves[Number(to?.['wave'])];
          if (to?.['phase'] === 'paused' && resumes < 3) {
            // an inconclusive gate (too few requests on a busy machine) pauses the rollout: the demo carries on
            resumes++;
            say(`  paused (${String(to['reason'] ?? '')}); the demo resumes it: meridian rollout resume --rollout ${narrator.rollout}`);
            approving.push(
              new Promise((r) => setTimeout(r, 2000)).then(() =>
                main(['rollout', 'resume', '--rollout', narrator.rollout, '--state', state, '--actor', 'demo'], subIo(io, keep, keep)),
              ),
            );
          }
          if (to?.['phase'] === 'approval' && wave?.approvals) {
            const role = wave.approvals.roles[0] ?? 'approver';
            say(`  the demo approves as bob (${role}): meridian approve --rollout ${narrator.rollout} --wave ${wave.name} --role ${role}`);
            approving.push(
              main(
                ['approve', '--rollout', narrator.rollout, '--wave', wave.name, '--role', role, '--state', state, '--actor', 'bob'],
                subIo(io, keep, keep),
              ),
            );
          }
        },
        keep,
      ),
    );
    await Promise.all(approving);
    if (code !== 0 && code !== 4) say(captured.join('\n'));
    return code;
  };

  const good = await rollOut('A good release');
  const bad = good === 0 ? await rollOut('A bad release', opts.errorRatio) : good;
  say('');
  if (good === 0 && bad === 4)
    say(s.bold('The story is told: one rollout promoted everywhere, one caught in its first wave and rolled back.'));
  else say(s.bold(`The story did not go as planned (exit codes ${good}, ${bad}); see the lines above.`));
  say(`The fleet keeps running with traffic; look around:`);
  if (up.dashboard) say(`  dashboard  ${up.dashboard}`);
  say(`  status     meridian rollout status --state ${relative(io.cwd, state)}`);
  say(`  audit      meridian audit log --state ${relative(io.cwd, state)}`);
  say(`  logs       meridian logs -f`);
  say('Ctrl-C stops everything.');
  await new Promise<never>(() => {}); // until a signal: `up`'s shutdown handlers stop the fleet and exit
  return 0;
}
