/**
 * The restore ramp through HAProxy: `meridian up --data-plane haproxy` runs the example fleet with its
 * control plane, real GET traffic from Ireland and Germany flows through HAProxy, `meridian evacuate`
 * moves Irish clients off eu-west and `meridian restore` brings it back with a ramp of 20 % then 100 %:
 * during the first step eu-west serves about a fifth of the Irish requests (not all of them at once),
 * then all of them, and no request fails. Real processes; needs a fresh build.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';
import { closeAgents, get, until } from './support/router-kit.js';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'meridian-ramp-haproxy-'));
const fleet = join(work, 'fleet');
cpSync(join(root, 'examples', 'shop'), fleet, { recursive: true });
// a ramp of 20 % then 100 %, with a step long enough for a few hundred Irish requests in the first one
const RAMP_STEP_MS = 10_000;
const policyFile = join(fleet, 'recovery.yaml');
writeFileSync(
  policyFile,
  readFileSync(policyFile, 'utf8')
    .replace(/ramp: \[10, 50, 100\]/, 'ramp: [20, 100]')
    .replace(/step: 10s/, `step: ${RAMP_STEP_MS / 1000}s`),
);
const env = { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ops' };
let port = 0;
/** The fleet's control API. */
let control = { url: '', token: '' };

const meridian = (args: string[]): CliRun => runMeridian(args, { cwd: work, env, timeout: 150_000 });

interface Answer {
  readonly at: number;
  readonly country: string;
  readonly status: number;
  /** The cluster that answered (the example's `x-served-by: web@<cluster>`), or '' for none. */
  readonly cluster: string;
  /** What a failed answer said (its x-meridian-reason and body). */
  readonly body?: string;
}

/** One GET to web through HAProxy as a client of `country`. */
async function once(country: string): Promise<Answer> {
  try {
    const r = await get(port, '/', { headers: { host: 'shop.example', 'x-client-country': country } });
    const served = String(r.headers['x-served-by'] ?? '');
    return {
      at: Date.now(),
      country,
      status: r.status,
      cluster: served.slice(served.indexOf('@') + 1),
      ...(r.status !== 200 ? { body: `${String(r.headers['x-meridian-reason'] ?? '')} ${r.body.slice(0, 200)}` } : {}),
    };
  } catch {
    return { at: Date.now(), country, status: 0, cluster: '' };
  }
}

/** Sends GETs from the given countries, one after another per country, until `stop()`; records every answer. */
function traffic(countries: readonly string[]): { answers: Answer[]; stop: () => Promise<void> } {
  const answers: Answer[] = [];
  let running = true;
  const loops = countries.map(async (country) => {
    for (let i = 0; running && i < 50_000; i++) {
      answers.push(await once(country));
      await new Promise((r) => setTimeout(r, 5));
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
  const up = meridian(['up', 'fleet', '--detach', '--port', '0', '--data-plane', 'haproxy']);
  expect(up.code, up.err + up.out).toBe(0);
  const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as {
    router: string;
    control: string;
    token: string;
    dataPlane?: { kind: string };
  };
  expect(info.dataPlane?.kind).toBe('haproxy');
  port = Number(new URL(info.router).port);
  control = { url: info.control, token: info.token };
  await until(async () => (await once('IE')).cluster.startsWith('eu-west'), 90_000, 'eu-west to serve Irish clients');
}, 180_000);

afterAll(() => {
  closeAgents();
  const down = meridian(['down']);
  for (const pid of replicaPids(fleet)) process.kill(pid, 'SIGKILL'); // any replica `down` left
  rmSync(work, { recursive: true, force: true });
  expect(down.code, down.err).toBe(0);
}, 60_000);

interface AuditJson {
  readonly seq: number;
  readonly at: string;
  readonly action: string;
  readonly subject: string;
  readonly data: Record<string, unknown> | null;
}

describe('the restore ramp through HAProxy', { timeout: 240_000 }, () => {
  it('gives a restored region 20 % of its clients during the first step, then all of them, with no failed request', async () => {
    const t = traffic(['IE', 'IE', 'IE', 'IE', 'DE']);
    await until(() => t.answers.length > 40, 30_000, 'traffic to flow');

    const ev = meridian(['evacuate', 'eu-west', '-f', 'fleet', '--reason', 'ramp test: eu-west serves errors']);
    expect(ev.code, ev.out + ev.err).toBe(0);
    const evacuated = Date.now();
    await until(
      () => {
        const irish = t.answers.filter((a) => a.country === 'IE' && a.at > evacuated);
        return irish.length >= 40 && irish.slice(-40).every((a) => a.cluster === 'eu-central-1');
      },
      30_000,
      'Irish clients to be served by eu-central-1',
    );

    const back = meridian(['restore', 'eu-west', '-f', 'fleet', '--reason', 'ramp test over']);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toContain(`it takes back its traffic in steps of 20 %, 100 % every ${RAMP_STEP_MS / 1000}s`);
    const restored = Date.now();
    // the first step is measured from when the plane has lifted the drain (after the ramp's reload), plus 500 ms
    // for its runtime commands (one per server). Not before: a reload starts a worker with every server in
    // service and the plane puts the drained ones back in maintenance a moment later, so eu-west may answer a
    // few requests then, and none until the undrain
    const drained = async (): Promise<string[]> => {
      const res = await fetch(new URL('v1/router/stats', control.url), { headers: { authorization: `Bearer ${control.token}` } });
      return ((await res.json()) as { drained: string[] }).drained;
    };
    await until(async () => !(await drained()).includes('eu-west'), 30_000, 'the plane to lift the drain of eu-west');
    const undrained = Date.now();
    // after the last step every Irish request goes to eu-west: 40 in a row (at 20 % that is a 1e-28 chance)
    await until(
      () => {
        const irish = t.answers.filter((a) => a.country === 'IE' && a.at > restored + RAMP_STEP_MS);
        return irish.length >= 60 && irish.slice(-40).every((a) => a.cluster.startsWith('eu-west'));
      },
      60_000,
      'Irish clients all back on eu-west after the ramp',
    );
    // and 2 s more: the last step is audited after HAProxy's reload, and its window needs answers after that
    const end = Date.now();
    await until(() => Date.now() > end + 2000 && t.answers.filter((a) => a.at > end + 2000).length >= 100, 30_000, 'more answers');
    await t.stop();

    // the ramp's start (the restore) and its last step, as audited
    // (the step is audited once HAProxy has reloaded for it: on a loaded machine, read the log again for a while)
    let log: AuditJson[] = [];
    let start: AuditJson | undefined;
    let step: AuditJson | undefined;
    for (let tries = 0; tries < 10 && !step; tries++) {
      if (tries > 0) await new Promise((r) => setTimeout(r, 1000));
      log = JSON.parse(meridian(['audit', 'log', '--limit', '12', '-o', 'json']).out) as AuditJson[];
      start = log.filter((e) => e.action === 'routing.drain' && e.subject === 'eu-west' && e.data?.['restore'] === true).pop();
      step = log.find((e) => e.action === 'recovery.ramp' && e.subject === 'eu-west' && e.data?.['restore'] === start?.seq);
    }
    const restoreAt = Date.parse(start?.at ?? '');
    // (when the step is missing, the assertion below says so after the shares are printed)
    const stepAt = step ? Date.parse(step.at) : restoreAt + RAMP_STEP_MS + 2000;

    // the first step: from the undrain to the second step's due time
    const irish = t.answers.filter((a) => a.country === 'IE');
    const stepStart = undrained + 500;
    const share = (from: number, to: number): { n: number; share: number } => {
      const xs = irish.filter((a) => a.status === 200 && a.at >= from && a.at < to);
      return { n: xs.length, share: xs.filter((a) => a.cluster.startsWith('eu-west')).length / Math.max(1, xs.length) };
    };
    const s20 = share(stepStart, restoreAt + RAMP_STEP_MS - 100);
    // the last step: once the control plane has audited it (after HAProxy's reload), plus a kept-alive request to the old worker
    const s100 = share(stepAt + 500, Infinity);
    console.log(
      `restore ramp through HAProxy: Irish share on eu-west ${(s20.share * 100).toFixed(1)} % of ${s20.n} at 20 % (from ${stepStart - restoreAt} ms after the restore), ${(s100.share * 100).toFixed(1)} % of ${s100.n} at 100 % (step audited ${stepAt - restoreAt} ms after the restore)`,
    );
    const entries = log.map((e) => `#${e.seq} ${e.at} ${e.action} ${e.subject} ${JSON.stringify(e.data)}`).join('\n');
    const upLog = readFileSync(join(work, '.meridian', 'up.log'), 'utf8').slice(-2000);
    expect(step?.data?.['percent'], `the last step audited; the log:\n${entries}\nup.log:\n${upLog}`).toBe(100);
    expect(s20.n, JSON.stringify(s20)).toBeGreaterThanOrEqual(400);
    expect(Math.abs(s20.share - 0.2) * 100, 'the first step: 20 % (±5 points), not all of it at once').toBeLessThanOrEqual(5);
    expect(s100.n).toBeGreaterThanOrEqual(100);
    expect(s100.share, 'all of it after the last step').toBe(1);

    const failed = t.answers.filter((a) => a.status !== 200);
    expect(failed, `failed requests: ${JSON.stringify(failed.slice(0, 5))}`).toEqual([]);
    // locked EU clients never left the EU, evacuated, ramping or not
    expect(t.answers.filter((a) => !a.cluster.startsWith('eu-'))).toEqual([]);
  });
});
