/**
 * How fast is a bad canary caught, and how often is a good one wrongly stopped?
 *
 * On the local fleet (`meridian up`, real processes behind the router, the built CLI as users run it),
 * with 200 req/s of synthetic traffic per region (src/traffic) and the analysis of docs/analysis.md
 * (interval 10s, minSamples 200, error rate max 1% and at most 0.5 points over the baseline,
 * failureLimit 1):
 *
 * 1. Bad: the new version fails 5% of requests in the EU only. Its canary (5% of the EU's traffic, then
 *    25%) must be judged failed and the region rolled back within 30 s of the canary receiving traffic,
 *    and fewer than 0.5% of the region's requests in that time may fail. Measured from the rollout's
 *    events: weight set → verdict fail → the cluster back on the old revision; failed requests counted by
 *    the clients.
 * 2. Good: a new version with the same 0.5% background error rate as the stable one, one 25% step of
 *    20 s (short runs); promoted, paused (inconclusive) or failed, over N runs.
 *
 * Retries and outlier detection are on, as in production fleets (`retries: { attempts: 1, budget: 20% }`,
 * `outlierDetection: { consecutive5xx: 5 }`; `--no-retries` leaves both out): a canary's failed attempt is
 * retried on another cluster, so clients see few of its failures, and the judge must read the router's
 * upstream attempts to see them at all.
 *
 * The fault injector of the example services is deterministic (exactly every 20th request fails at 5%),
 * so run-to-run spread comes from real timing (traffic, scheduling), not from binomial noise; the
 * judge's behaviour under random errors is simulated in test/rollout-analysis-simulation.test.ts.
 *
 * Run: `npm run build && npx tsx bench/rollout-canary.ts [--bad-runs 5] [--good-runs 20] [--no-retries] [--json]`
 */
import os from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { runTraffic } from '../src/traffic/generator.js';
import { liveFleet, type LiveFleet } from '../test/support/rollout-live-kit.js';
import { median } from './lib/measure.js';

const argN = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const BAD_RUNS = argN('bad-runs', 5);
const GOOD_RUNS = argN('good-runs', 20);
const JSON_OUT = process.argv.includes('--json');
const RETRIES = !process.argv.includes('--no-retries');
const ROUTING = RETRIES ? '    retries: { attempts: 1, budget: 20% }\n    outlierDetection: { consecutive5xx: 5 }\n' : '';
const RPS_PER_REGION = 200;

const ANALYSIS = `  analysis:
    interval: 10s
    minSamples: 200
    failureLimit: 1
    metrics:
      - { name: error-rate, source: router, max: 1%, maxIncreaseOverBaseline: 0.5% }
  onFailure: rollback-wave
`;

/** The tiny rollout fleet with one cluster per region, clients placed by header, and `waves`. */
function fleetYaml(y: string, waves: string, regions: 'eu' | 'eu+us', background: string): string {
  let out = y
    .replace(/rollout:\n[\s\S]*?\n\n/, `rollout:\n  waves:\n${waves}${ANALYSIS}\n`)
    .replace(/ {2}local-b: .*\n/, '')
    .replace(
      '    match: { hosts: [tiny.example] }\n',
      `    match: { hosts: [tiny.example] }\n    clientCountryHeader: x-client-country\n${ROUTING}`,
    )
    .replace("config: { FAULT_HEALTH: 'false' }", `config: { FAULT_HEALTH: 'false', FAULT_ERROR_RATIO: '${background}' }`);
  if (regions === 'eu') out = out.replace(/ {2}local-c: .*\n/, '').replace(/ {2}us:\n(?: {4}.*\n)+/, '');
  return out;
}

/** Moves fleet.yaml to version `v`, with `fault` requests failing in the EU (none: `null`). */
function setVersion(live: LiveFleet, v: string, fault: string | null): void {
  live.edit((y) =>
    y
      .replace(/version: \d+\.\d+\.\d+/, `version: ${v}`)
      .replace(/web:\d+\.\d+\.\d+@/, `web:${v}@`)
      .replace(/\n {4}overrides: .*\n/, '\n')
      .replace(
        /(\n {4}config: .*\n)/,
        fault ? `$1    overrides: [{ match: { region: eu }, set: { config: { FAULT_ERROR_RATIO: '${fault}' } } }]\n` : '$1',
      ),
  );
}

interface Events {
  readonly outcome: string;
  readonly at: (type: string, pred?: (d: Record<string, unknown>) => boolean) => number | null;
}

async function lastRollout(live: LiveFleet): Promise<Events> {
  const store = await openSqliteStore(join(live.work, '.meridian', 'state.db'));
  try {
    const [r] = await store.listRollouts({ limit: 1 });
    const events = await store.listRolloutEvents(r?.id ?? '');
    return {
      outcome: r?.state ?? 'none',
      at: (type, pred = () => true) => {
        const e = events.find((x) => x.type === type && pred((x.data ?? {}) as Record<string, unknown>));
        return e ? Date.parse(e.at) : null;
      },
    };
  } finally {
    await store.close();
  }
}

/** Runs a rollout under traffic; the clients' counts per second for the EU region (DE clients). */
async function rollout(live: LiveFleet, countries: string[]) {
  const stop = new AbortController();
  const samples: { t: number; sent: number; failed: number }[] = [];
  const failedOf = (s: Record<string, number> | undefined): number =>
    Object.entries(s ?? {}).reduce((n, [k, v]) => (k === '200' ? n : n + v), 0);
  const traffic = runTraffic({
    url: live.info().router,
    rps: RPS_PER_REGION * countries.length,
    mix: countries.map((country) => ({ country, weight: 1 })),
    host: 'tiny.example',
    users: 1000,
    durationMs: 600_000,
    signal: stop.signal,
    onProgress: (r) => samples.push({ t: Date.now(), sent: r.countries['DE']?.sent ?? 0, failed: failedOf(r.countries['DE']?.statuses) }),
  });
  const run = await live.run(['rollout', 'tiny', '--poll', '50ms', '--healthy-checks', '1']);
  await new Promise((r) => setTimeout(r, 1000));
  stop.abort();
  const report = await traffic;
  const de = report.countries['DE'];
  samples.push({ t: Date.now(), sent: de?.sent ?? 0, failed: failedOf(de?.statuses) });
  /** Requests the EU clients sent between two instants (interpolated between the once-a-second counts). */
  const sentBetween = (a: number, b: number): number => at(samples, b) - at(samples, a);
  return { code: run.code, err: run.err, failed: failedOf(de?.statuses), sentBetween };
}

function at(samples: readonly { t: number; sent: number }[], t: number): number {
  let prev = { t: 0, sent: 0 };
  for (const s of samples) {
    if (s.t >= t) return prev.sent + ((s.sent - prev.sent) * (t - prev.t)) / Math.max(1, s.t - prev.t);
    prev = s;
  }
  return prev.sent;
}

interface BadRun {
  toJudgedS: number;
  toRolledBackS: number;
  failed: number;
  sent: number;
  ratio: number;
  exit: number;
}

async function badRuns(): Promise<BadRun[]> {
  const waves = `    - name: canary\n      clusters: { labels: { tier: canary } }\n      steps: [{ weight: 5, pause: 30s }, { weight: 25, pause: 30s }]\n    - name: us\n      clusters: { region: us }\n      steps: [{ weight: 25, pause: 30s }]\n`;
  const live = liveFleet('bench-rollout-bad', (y) => fleetYaml(y, waves, 'eu+us', '0'));
  const out: BadRun[] = [];
  try {
    await live.up();
    for (let i = 0; i < BAD_RUNS; i++) {
      setVersion(live, '1.1.0', '5%');
      const r = await rollout(live, ['DE', 'US']);
      const ev = await lastRollout(live);
      const t0 = ev.at('weight-set');
      const judged = ev.at('verdict', (d) => d['outcome'] === 'fail');
      const back = ev.at('cluster-rolled-back');
      if (t0 === null || judged === null || back === null) {
        process.stderr.write(`bad run ${i + 1}: not failed (exit ${r.code}, ${ev.outcome})\n${r.err.slice(-2000)}\n`);
        out.push({ toJudgedS: Number.NaN, toRolledBackS: Number.NaN, failed: r.failed, sent: 0, ratio: Number.NaN, exit: r.code });
        if (ev.outcome === 'paused') await live.run(['rollout', 'abort', '--reason', 'bench']);
        continue;
      }
      const sent = r.sentBetween(t0, back);
      out.push({
        toJudgedS: (judged - t0) / 1000,
        toRolledBackS: (back - t0) / 1000,
        failed: r.failed,
        sent: Math.round(sent),
        ratio: r.failed / sent,
        exit: r.code,
      });
      process.stderr.write(`bad run ${i + 1}: ${JSON.stringify(out.at(-1))}\n`);
    }
  } finally {
    await live.down();
    live.remove();
  }
  return out;
}

async function goodRuns(): Promise<Record<string, number>> {
  const waves = `    - name: canary\n      clusters: { labels: { tier: canary } }\n      steps: [{ weight: 25, pause: 20s }]\n`;
  const live = liveFleet('bench-rollout-good', (y) => fleetYaml(y, waves, 'eu', '0.5%'));
  const outcomes: Record<string, number> = {};
  try {
    await live.up();
    for (let i = 0; i < GOOD_RUNS; i++) {
      setVersion(live, `1.1.${i}`, null);
      const r = await rollout(live, ['DE']);
      const ev = await lastRollout(live);
      outcomes[ev.outcome] = (outcomes[ev.outcome] ?? 0) + 1;
      process.stderr.write(`good run ${i + 1}: ${ev.outcome} (exit ${r.code}, ${r.failed} failed requests)\n`);
      if (ev.outcome !== 'promoted') {
        process.stderr.write(`${r.err.slice(-1500)}\n`);
        if (ev.outcome === 'paused') await live.run(['rollout', 'abort', '--reason', 'bench']);
      }
    }
  } finally {
    await live.down();
    live.remove();
  }
  return outcomes;
}

const bad = await badRuns();
const good = await goodRuns();
const ok = bad.filter((b) => Number.isFinite(b.toRolledBackS));
const result = {
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${os.platform()}`,
  date: new Date().toISOString().slice(0, 10),
  rpsPerRegion: RPS_PER_REGION,
  retries: RETRIES,
  bad: {
    runs: bad.length,
    failedInTime: ok.filter((b) => b.toRolledBackS <= 30).length,
    medianJudgedS: median(ok.map((b) => b.toJudgedS)),
    medianRolledBackS: median(ok.map((b) => b.toRolledBackS)),
    maxRolledBackS: Math.max(...ok.map((b) => b.toRolledBackS)),
    medianFailedRequests: median(ok.map((b) => b.failed)),
    maxFailedRatio: Math.max(...ok.map((b) => b.ratio)),
    runsDetail: bad,
  },
  good: { runs: GOOD_RUNS, outcomes: good },
};
if (JSON_OUT) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  process.stdout.write(
    [
      `### rollout canary analysis (\`bench/rollout-canary.ts\`), ${result.date}`,
      '',
      `Machine: ${result.machine}. Traffic: ${RPS_PER_REGION} req/s per region through the router. Retries ${RETRIES ? 'on' : 'off'}.`,
      '',
      '| bad canary (5% errors in the EU) | value |',
      '| --- | --- |',
      `| runs judged failed and rolled back within 30 s of receiving traffic | ${result.bad.failedInTime} of ${result.bad.runs} |`,
      `| runs rolled back within 15 s | ${ok.filter((b) => b.toRolledBackS <= 15).length} of ${result.bad.runs} |`,
      `| traffic → verdict fail, median | ${result.bad.medianJudgedS.toFixed(1)} s |`,
      `| traffic → region back on the old revision, median (max) | ${result.bad.medianRolledBackS.toFixed(1)} s (${result.bad.maxRolledBackS.toFixed(1)} s) |`,
      `| failed requests of the region in that time, median per run | ${result.bad.medianFailedRequests} |`,
      `| …as a share of the region's requests in that time, worst run | ${pct(result.bad.maxFailedRatio)} |`,
      '',
      `| good canary (0.5% errors, like the stable), ${GOOD_RUNS} runs | count |`,
      '| --- | --- |',
      ...Object.entries(good).map(([k, v]) => `| ${k} | ${v} |`),
      '',
      'Per bad run (s to verdict, s to rolled back, failed / sent in the region):',
      '',
      ...bad.map(
        (b, i) =>
          `- run ${i + 1}: ${b.toJudgedS.toFixed(1)} s, ${b.toRolledBackS.toFixed(1)} s, ${b.failed} / ${b.sent} (${pct(b.ratio)}), exit ${b.exit}`,
      ),
      '',
    ].join('\n'),
  );
}
