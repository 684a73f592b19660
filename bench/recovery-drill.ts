/**
 * Recovery time of a region's failure on the local fleet, with the Node router and with HAProxy as the data
 * plane (`meridian up --data-plane haproxy`): `meridian drill` of region eu-west of a copy of examples/shop
 * (six client regions at 60 req/s), as users run it, N times per fault — `kill` (SIGKILL of every replica
 * of the region; the supervisor restarts them) and `hang` (SIGSTOP for the whole observation: the region is
 * there but answers nothing, the harder case).
 * The recovery time is the drill's: from the fault to the moment every client region is served within
 * its SLO again (99 % success and p99 ≤ 1 s in every 500 ms window), so its resolution is one window.
 *
 * Before each drill it waits until eu-west serves its own clients again (the last drill's hang leaves its
 * endpoints ejected by the router's outlier detection for 30 s or more): a drill on a region already out
 * of rotation would measure nothing.
 *
 * Next to it, computed (not run): the same failure with DNS failover at a 30 s health-check interval and
 * a 60 s TTL, the usual managed-DNS setting (Route 53's defaults: interval 30 s, failure threshold 3).
 *
 * Run: `npm run build && npx tsx bench/recovery-drill.ts [--runs 5] [--faults kill,hang] [--data-plane node,haproxy]
 * [--reports DIR] [--json]` (`--reports` keeps every drill's drill.json and drill.md there, and each fleet's up.log).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { median } from './lib/measure.js';
import { argNumber, meridian } from './lib/cli.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const RUNS = argNumber('runs', 5);
const FAULTS = arg('faults', 'kill,hang').split(',');
/** `node` is Meridian's router (`meridian up --data-plane router`). */
const PLANES = arg('data-plane', 'node').split(',');
for (const p of PLANES) if (p !== 'node' && p !== 'haproxy') throw new Error(`--data-plane takes node and/or haproxy, not ${p}`);
const REPORTS = arg('reports', '');
const JSON_OUT = process.argv.includes('--json');
const PLACE = 'eu-west';
const root = join(import.meta.dirname, '..');

interface Region {
  readonly region: string;
  readonly rtoMs: number | null;
  readonly requests: number;
  readonly failed: number;
}
interface Drill {
  readonly plane: string;
  readonly fault: string;
  readonly exit: number | null;
  /** The slowest client region's recovery time; null when one never recovered in the observation. */
  readonly allMs: number | null;
  readonly placeMs: number | null;
  readonly failed: number;
  readonly requests: number;
}

/**
 * Waits until eu-west serves its own clients again — 20 Irish requests in a row answered by eu-west's
 * clusters — so that a drill starts on a whole fleet: after a hang, the router keeps the hung endpoints
 * ejected for its outlier detection's ejection time (examples/shop: 30 s, longer after repeated
 * ejections), and a drill started meanwhile would fail over nothing. Returns how long it waited, or null
 * after `limitMs`.
 */
async function waitServing(work: string, limitMs = 180_000): Promise<number | null> {
  const { router } = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { router: string };
  const t0 = Date.now();
  let inRow = 0;
  while (Date.now() - t0 < limitMs) {
    const cluster = await fetch(router, { headers: { 'x-client-country': 'IE', connection: 'close' } })
      .then((r) => r.json() as Promise<{ cluster?: string }>)
      .then((b) => b.cluster ?? '')
      .catch(() => '');
    inRow = cluster.startsWith(`${PLACE}-`) ? inRow + 1 : 0;
    if (inRow >= 20) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

const loadBefore = os.loadavg();
const startedAt = new Date();
const drills: Drill[] = [];
for (const plane of PLANES) {
  const work = mkdtempSync(join(os.tmpdir(), 'meridian-recovery-drill-'));
  cpSync(join(root, 'examples', 'shop'), join(work, 'shop'), { recursive: true });
  try {
    const up = meridian(work, [
      'up',
      'shop',
      '--detach',
      '--port',
      '0',
      '--no-server',
      '--data-plane',
      plane === 'node' ? 'router' : 'haproxy',
    ]);
    if (up.code !== 0) throw new Error(`meridian up failed: ${up.err}`);
    for (const fault of FAULTS) {
      for (let i = 0; i < RUNS; i++) {
        await new Promise((r) => setTimeout(r, 5000)); // the supervisor has restarted what the last drill killed
        const waited = await waitServing(work);
        const report = REPORTS ? join(REPORTS, `${plane}-${fault}-${i + 1}`) : join(work, `drill-${fault}-${i}`);
        if (REPORTS) mkdirSync(report, { recursive: true });
        const d = meridian(work, ['drill', PLACE, '--fault', fault, '--duration', '8s', '-o', 'json', '--report', report]);
        const json = JSON.parse(d.out) as { regions: Region[] };
        const rtos = json.regions.map((r) => r.rtoMs);
        const drill: Drill = {
          plane,
          fault,
          exit: d.code,
          allMs: rtos.includes(null) ? null : Math.max(...(rtos as number[])),
          placeMs: json.regions.find((r) => r.region === PLACE)?.rtoMs ?? null,
          failed: json.regions.reduce((a, r) => a + r.failed, 0),
          requests: json.regions.reduce((a, r) => a + r.requests, 0),
        };
        drills.push(drill);
        process.stderr.write(
          `${plane} ${fault} ${i + 1}: ${JSON.stringify(drill)} load ${os.loadavg()[0]?.toFixed(1)}; waited ${waited === null ? 'in vain' : `${waited} ms`} for ${PLACE} to serve its clients before\n`,
        );
      }
    }
  } finally {
    meridian(work, ['down']);
    if (REPORTS) cpSync(join(work, '.meridian', 'up.log'), join(REPORTS, `${plane}-up.log`));
    rmSync(work, { recursive: true, force: true });
  }
}
const loadAfter = os.loadavg();

// DNS failover, computed: the failure is seen after `threshold` failed checks (the first 0..interval after
// the fault), then resolvers keep the old answer for up to the TTL.
const INTERVAL_S = 30;
const THRESHOLD = 3;
const TTL_S = 60;
const dnsBest = (THRESHOLD - 1) * INTERVAL_S;
const dnsWorst = THRESHOLD * INTERVAL_S + TTL_S;
const dnsMid = (dnsBest + dnsWorst) / 2;

const s = (ms: number | null): string => (ms === null ? 'not recovered' : `${(ms / 1000).toFixed(1)} s`);
if (JSON_OUT) {
  process.stdout.write(`${JSON.stringify({ drills, loadBefore, loadAfter, dns: { bestS: dnsBest, worstS: dnsWorst } }, null, 2)}\n`);
} else {
  const load = (l: number[]): string => l.map((x) => x.toFixed(1)).join(' / ');
  const lines = [
    `### Recovery time of a region's failure (\`bench/recovery-drill.ts\`), ${startedAt.toISOString().slice(0, 10)}`,
    '',
    `${startedAt.toISOString().slice(11, 16)}–${new Date().toISOString().slice(11, 16)} UTC. Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}, load average ${load(loadBefore)} before, ${load(loadAfter)} after. \`meridian drill ${PLACE} --fault F --duration 8s\` on a copy of examples/shop, ${RUNS} runs per fault and data plane.`,
    '',
    '| data plane | fault | every client region within SLO again: median (runs) | eu-west clients: median | failed requests / sent |',
    '| --- | --- | --- | --- | --- |',
    ...PLANES.flatMap((plane) =>
      FAULTS.map((fault) => {
        const ds = drills.filter((d) => d.fault === fault && d.plane === plane);
        const all = ds.map((d) => d.allMs);
        const recovered = all.filter((x): x is number => x !== null);
        const place = ds.map((d) => d.placeMs).filter((x): x is number => x !== null);
        const med =
          recovered.length === all.length && all.length > 0 ? s(median(recovered)) : `${recovered.length} of ${all.length} recovered`;
        return `| ${plane === 'node' ? 'Node router' : 'HAProxy'} | ${fault} | **${med}** (${all.map(s).join(', ')}) | ${place.length ? s(median(place)) : '-'} | ${ds.reduce((a, d) => a + d.failed, 0)} / ${ds.reduce((a, d) => a + d.requests, 0)} |`;
      }),
    ),
    `| DNS failover, computed | region down: ${INTERVAL_S} s checks × ${THRESHOLD} failures, TTL ${TTL_S} s | ${dnsBest}–${dnsWorst} s (middle ${dnsMid} s) | | |`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}
