/**
 * Recovery time of a region's failure on the local fleet with the Node router: `meridian drill` of
 * region eu-west of a copy of examples/shop (six client regions at 60 req/s), as users run it, N times per
 * fault — `kill` (SIGKILL of every replica of the region; the supervisor restarts them) and `hang`
 * (SIGSTOP for the whole observation: the region is there but answers nothing, the harder case).
 * The recovery time is the drill's: from the fault to the moment every client region is served within
 * its SLO again (99 % success and p99 ≤ 1 s in every 500 ms window), so its resolution is one window.
 *
 * Next to it, computed (not run): the same failure with DNS failover at a 30 s health-check interval and
 * a 60 s TTL, the usual managed-DNS setting (Route 53's defaults: interval 30 s, failure threshold 3).
 *
 * Run: `npm run build && npx tsx bench/recovery-drill.ts [--runs 5] [--faults kill,hang] [--json]`
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
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
  readonly fault: string;
  readonly exit: number | null;
  /** The slowest client region's recovery time; null when one never recovered in the observation. */
  readonly allMs: number | null;
  readonly placeMs: number | null;
  readonly failed: number;
  readonly requests: number;
}

const work = mkdtempSync(join(os.tmpdir(), 'meridian-recovery-drill-'));
cpSync(join(root, 'examples', 'shop'), join(work, 'shop'), { recursive: true });
const drills: Drill[] = [];
try {
  const up = meridian(work, ['up', 'shop', '--detach', '--port', '0', '--no-server']);
  if (up.code !== 0) throw new Error(`meridian up failed: ${up.err}`);
  for (const fault of FAULTS) {
    for (let i = 0; i < RUNS; i++) {
      await new Promise((r) => setTimeout(r, 5000)); // the supervisor has restarted what the last drill killed
      const d = meridian(work, [
        'drill',
        PLACE,
        '--fault',
        fault,
        '--duration',
        '8s',
        '-o',
        'json',
        '--report',
        join(work, `drill-${fault}-${i}`),
      ]);
      const json = JSON.parse(d.out) as { regions: Region[] };
      const rtos = json.regions.map((r) => r.rtoMs);
      const drill: Drill = {
        fault,
        exit: d.code,
        allMs: rtos.includes(null) ? null : Math.max(...(rtos as number[])),
        placeMs: json.regions.find((r) => r.region === PLACE)?.rtoMs ?? null,
        failed: json.regions.reduce((a, r) => a + r.failed, 0),
        requests: json.regions.reduce((a, r) => a + r.requests, 0),
      };
      drills.push(drill);
      process.stderr.write(`${fault} ${i + 1}: ${JSON.stringify(drill)}\n`);
    }
  }
} finally {
  meridian(work, ['down']);
  rmSync(work, { recursive: true, force: true });
}

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
  process.stdout.write(`${JSON.stringify({ drills, dns: { bestS: dnsBest, worstS: dnsWorst } }, null, 2)}\n`);
} else {
  const lines = [
    `### Recovery time of a region's failure (\`bench/recovery-drill.ts\`), ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}, load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ')}. \`meridian drill ${PLACE} --fault F --duration 8s\` on a copy of examples/shop (Node router), ${RUNS} runs per fault.`,
    '',
    '| fault | every client region within SLO again: median (runs) | eu-west clients: median | failed requests / sent |',
    '| --- | --- | --- | --- |',
    ...FAULTS.map((fault) => {
      const ds = drills.filter((d) => d.fault === fault);
      const all = ds.map((d) => d.allMs);
      const recovered = all.filter((x): x is number => x !== null);
      const place = ds.map((d) => d.placeMs).filter((x): x is number => x !== null);
      const med =
        recovered.length === all.length && all.length > 0 ? s(median(recovered)) : `${recovered.length} of ${all.length} recovered`;
      return `| ${fault} | **${med}** (${all.map(s).join(', ')}) | ${place.length ? s(median(place)) : '-'} | ${ds.reduce((a, d) => a + d.failed, 0)} / ${ds.reduce((a, d) => a + d.requests, 0)} |`;
    }),
    `| DNS failover, computed: ${INTERVAL_S} s checks × ${THRESHOLD} failures, TTL ${TTL_S} s | ${dnsBest}–${dnsWorst} s (middle ${dnsMid} s) | | |`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}
