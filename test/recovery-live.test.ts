/**
 * Evacuation on the live local fleet: `meridian up` runs the example fleet with its control plane, real
 * GET traffic flows from Ireland and Germany through the router, and `meridian evacuate` (another process,
 * writing to the same store) moves Irish clients off eu-west with no failed request; evacuating the other
 * EU region is refused naming the residency rule, and `meridian restore` brings eu-west back with its
 * restore ramp: its share of Irish traffic, measured from the answers, rises step by step to all of it.
 * `meridian drill` kills and hangs eu-west under traffic from every client region and reports each one's
 * measured recovery time; a policy RTO below what was measured fails the drill (exit 1).
 * Real processes; needs a fresh build.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './support/server-kit.js';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'meridian-evacuate-'));
const fleet = join(work, 'fleet'); // not named as the fleet (shop): the drill finds it by what up recorded
cpSync(join(root, 'examples', 'shop'), fleet, { recursive: true });
// the example's restore ramp (10, 50, 100 %) with short steps, to keep the test short
const RAMP_STEP_MS = 3000;
const policyFile = join(fleet, 'recovery.yaml');
writeFileSync(policyFile, readFileSync(policyFile, 'utf8').replace(/step: 10s/, `step: ${RAMP_STEP_MS / 1000}s`));
const env = { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ops' };
let router = '';

function meridian(args: string[]): CliRun {
  return runMeridian(args, { cwd: work, env, timeout: 150_000 });
}

interface Answer {
  readonly at: number;
  readonly country: string;
  readonly status: number;
  readonly cluster: string;
}

/** Sends GETs from the given countries, one after another per country, until `stop()`; records every answer. */
function traffic(countries: readonly string[]): { answers: Answer[]; stop: () => Promise<void> } {
  const answers: Answer[] = [];
  let running = true;
  const loops = countries.map(async (country) => {
    for (let i = 0; running && i < 20_000; i++) {
      try {
        const res = await fetch(router, { headers: { 'x-client-country': country } });
        await res.text();
        answers.push({ at: Date.now(), country, status: res.status, cluster: res.headers.get('x-meridian-cluster') ?? '' });
      } catch {
        answers.push({ at: Date.now(), country, status: 0, cluster: '' });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  return {
    answers,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

beforeAll(async () => {
  const up = meridian(['up', 'fleet', '--detach', '--port', '0']);
  expect(up.code, up.err).toBe(0);
  router = (JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { router: string }).router;
  await until(
    async () => {
      const res = await fetch(router, { headers: { 'x-client-country': 'IE' } });
      await res.text();
      return res.status === 200 && (res.headers.get('x-meridian-cluster') ?? '').startsWith('eu-west');
    },
    'eu-west to serve Irish clients',
    90_000,
  );
}, 180_000);

afterAll(() => {
  const down = meridian(['down']);
  for (const pid of replicaPids(fleet)) process.kill(pid, 'SIGKILL'); // any replica `down` left
  rmSync(work, { recursive: true, force: true });
  expect(down.code, down.err).toBe(0);
}, 60_000);

describe('evacuating a region of the live fleet', { timeout: 240_000 }, () => {
  it('moves its clients away with no failed request, refuses to strand locked EU clients, and restores with a ramp', async () => {
    const t = traffic(['IE', 'IE', 'IE', 'DE']);
    await until(() => t.answers.length > 40, 'traffic to flow', 30_000);

    const asked = Date.now();
    const ev = meridian(['evacuate', 'eu-west', '-f', 'fleet', '--reason', 'drill: eu-west serves errors']);
    expect(ev.code, ev.out + ev.err).toBe(0);
    const done = Date.now();
    await until(
      () => {
        const irish = t.answers.filter((a) => a.country === 'IE' && a.at > done);
        return irish.length >= 20 && irish.slice(-20).every((a) => a.cluster === 'eu-central-1');
      },
      'Irish clients to be served by eu-central-1',
      30_000,
    );
    const lastOnEuWest = Math.max(0, ...t.answers.filter((a) => a.cluster.startsWith('eu-west')).map((a) => a.at));
    console.log(`evacuate: command took ${done - asked} ms; last request served by eu-west ${lastOnEuWest - done} ms after it returned`);

    const refused = meridian(['evacuate', 'eu-central', '-f', 'fleet', '--reason', 'and frankfurt']);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('residency: EU clients of web would have no cluster left');

    const back = meridian(['restore', 'eu-west', '-f', 'fleet', '--reason', 'drill over']);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toContain('it takes back its traffic in steps of 10 %, 50 %, 100 % every 3s');
    const restored = Date.now();
    // at 100 % every Irish request goes to eu-west: 40 in a row after the ramp's last step is due (at 50 %
    // that is a 1e-12 chance). Waits without a CLI call: runMeridian blocks the traffic loops.
    await until(
      () => {
        const irish = t.answers.filter((a) => a.country === 'IE' && a.at > restored + 2 * RAMP_STEP_MS);
        return irish.length >= 60 && irish.slice(-40).every((a) => a.cluster.startsWith('eu-west'));
      },
      'Irish clients all back on eu-west after the ramp',
      60_000,
    );
    // and 40 more Irish answers, so that the last step's window has its samples on a slow machine too
    const back100 = Date.now();
    await until(() => t.answers.filter((a) => a.country === 'IE' && a.at > back100).length >= 40, '40 more Irish answers', 30_000);
    await t.stop();
    // the ramp's start (the restore) and its steps are in the audit log: when each step reached the router
    const log = JSON.parse(meridian(['audit', 'log', '--limit', '12', '-o', 'json']).out) as AuditJson[];
    const start = log.filter((e) => e.action === 'routing.drain' && e.subject === 'eu-west' && e.data?.['restore'] === true).pop();
    const ramp = log.filter((e) => e.action === 'recovery.ramp' && e.subject === 'eu-west' && e.data?.['restore'] === start?.seq);
    expect(ramp.map((e) => e.data?.['percent'])).toEqual([50, 100]);
    const steps = [start as AuditJson, ...ramp];

    // Irish clients' share on eu-west per step, from the answers (a margin at each edge: a step reaches the
    // fleet's router within the store poll, 250 ms, and requests in flight span a table swap)
    const edges = [...steps.map((e) => Date.parse(e.at)), Infinity];
    const shares = [0, 1, 2].map((k) => {
      const from = (edges[k] ?? 0) + 300;
      const to = (edges[k + 1] ?? 0) - 100;
      const irish = t.answers.filter((a) => a.country === 'IE' && a.status === 200 && a.at >= from && a.at < to);
      return { n: irish.length, share: irish.filter((a) => a.cluster.startsWith('eu-west')).length / Math.max(1, irish.length) };
    });
    console.log(
      `restore ramp: Irish share on eu-west per step (10, 50, 100 %): ${shares.map((x) => `${(x.share * 100).toFixed(1)} % of ${x.n}`).join(', ')}`,
    );
    for (const x of shares) expect(x.n, JSON.stringify(shares)).toBeGreaterThanOrEqual(20);
    const [s10, s50, s100] = shares.map((x) => x.share) as [number, number, number];
    expect(s10, JSON.stringify(shares)).toBeLessThan(s50);
    expect(s50, JSON.stringify(shares)).toBeLessThan(s100);
    expect(s10, 'the first step takes a small part').toBeLessThan(0.35);
    expect(s100, 'all of it at the end').toBe(1);

    const failed = t.answers.filter((a) => a.status !== 200);
    expect(failed, `failed requests: ${JSON.stringify(failed.slice(0, 5))}`).toEqual([]);
    // locked EU clients never left the EU, evacuated or not
    expect(t.answers.filter((a) => !a.cluster.startsWith('eu-'))).toEqual([]);
    // Irish clients were on eu-west before the evacuation, on eu-central-1 during it, back after the restore
    expect(t.answers.some((a) => a.country === 'IE' && a.at < asked && a.cluster.startsWith('eu-west'))).toBe(true);
  });
});

interface AuditJson {
  readonly seq: number;
  readonly at: string;
  readonly action: string;
  readonly subject: string;
  readonly data: Record<string, unknown> | null;
}

interface DrillJson {
  readonly pass: boolean;
  readonly regions: readonly {
    region: string;
    rtoMs: number | null;
    policyRtoMs: number | null;
    pass: boolean;
    requests: number;
    failed: number;
  }[];
}

describe('meridian drill on the live fleet', { timeout: 120_000 }, () => {
  const CLIENT_REGIONS = ['ap-northeast', 'ap-south', 'eu-central', 'eu-west', 'us-east', 'us-west'];

  it('kills a region under traffic and reports a measured recovery time per client region, with an exit code that follows the RTOs', () => {
    const report = join(work, 'drill-kill');
    const d = meridian(['drill', 'eu-west', '--fault', 'kill', '--warmup', '1s', '--duration', '4s', '-o', 'json', '--report', report]);
    const r = JSON.parse(d.out) as DrillJson;
    expect(r.regions.map((x) => x.region)).toEqual(CLIENT_REGIONS);
    for (const x of r.regions) {
      expect(x.requests, x.region).toBeGreaterThan(0);
      expect(x.policyRtoMs, x.region).toBe(30_000); // web's RTO in examples/shop/recovery.yaml
      expect(x.pass).toBe(x.rtoMs !== null && x.rtoMs <= 30_000);
    }
    expect(d.code, d.err).toBe(r.pass ? 0 : 1);
    expect(readFileSync(join(report, 'drill.md'), 'utf8')).toContain('| eu-west |');
    expect(existsSync(join(report, 'drill.json'))).toBe(true);
    expect(meridian(['audit', 'log', '--limit', '5']).out).toMatch(/drill\.result/);
  });

  it('fails (exit 1) when the policy RTO is below the recovery time it measured', () => {
    // a hung region holds each attempt until the route's perTryTimeout (500 ms) before it is retried
    // elsewhere: with a 200 ms latency SLO, eu-west's clients are out of SLO for at least that long
    const file = join(fleet, 'recovery.yaml');
    const policy = readFileSync(file, 'utf8');
    writeFileSync(file, policy.replace('default: 2m', 'default: 100ms').replace('web: 30s', 'web: 100ms'));
    try {
      const d = meridian([
        'drill',
        'eu-west',
        '--fault',
        'hang',
        '--warmup',
        '1s',
        '--duration',
        '3s',
        '--slo-latency',
        '200ms',
        '-o',
        'json',
      ]);
      const r = JSON.parse(d.out) as DrillJson;
      const euWest = r.regions.find((x) => x.region === 'eu-west');
      expect(euWest?.policyRtoMs).toBe(100);
      expect(euWest?.rtoMs === null || (euWest?.rtoMs ?? 0) >= 500, JSON.stringify(euWest)).toBe(true);
      expect(euWest?.pass).toBe(false);
      expect(r.pass).toBe(false);
      expect(d.code).toBe(1);
    } finally {
      writeFileSync(file, policy);
    }
  });
});
