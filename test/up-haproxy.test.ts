/**
 * `meridian up --data-plane haproxy` as a user runs it: a copy of examples/shop as real processes with
 * HAProxy (Debian's 2.6) in front instead of the Node router. Real requests per country get the clusters
 * `route simulate` gives; a drain and a canary told through the fleet's control API (what `meridian
 * rollout` and the control plane use) reach HAProxy through its runtime API — a canary's new replicas
 * by a reload once ready, its weight steps without one, under traffic with no failed request; the judge's counters
 * come from HAProxy's Prometheus exporter; `meridian down` leaves no process, HAProxy included.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAndRender } from '../src/cli/commands/render.js';
import { haproxyCommand } from '../src/export/haproxy-runtime.js';
import { simulatedState, trafficTable } from '../src/routing/index.js';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';
import { maxDiff } from './support/export-kit.js';
import { closeAgents, get, load } from './support/router-kit.js';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'meridian-up-haproxy-'));
const fleet = join(work, 'shop');
cpSync(join(root, 'examples', 'shop'), fleet, { recursive: true });
const rev = loadAndRender(fleet).rendered.revision;

interface Info {
  pid: number;
  router: string;
  admin: string;
  control: string;
  token: string;
  dataPlane?: { kind: string; pid: number; dir: string };
}

const meridian = (args: string[]): CliRun => runMeridian(args, { cwd: work, timeout: 150_000 });
const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function control(info: Info, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(new URL(path, info.control), {
    method,
    headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const answer = (await res.json()) as unknown;
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** `n` requests to web as clients of `country`; shares by `cluster` or `cluster@version`, failures counted apart. */
async function tally(
  port: number,
  country: string,
  n: number,
  byVersion = false,
): Promise<{ shares: Record<string, number>; failed: number }> {
  const counts: Record<string, number> = {};
  let failed = 0;
  await load(
    n,
    8,
    () => get(port, '/', { headers: { host: 'shop.example', 'x-client-country': country } }),
    (r) => {
      if (r instanceof Error || r.status !== 200) {
        failed++;
        return;
      }
      const b = r.json<{ cluster: string; version: string }>();
      const k = byVersion ? `${b.cluster}@${b.version}` : b.cluster;
      counts[k] = (counts[k] ?? 0) + 1;
    },
  );
  return { shares: Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n])), failed };
}

/** `route simulate`'s shares of web for a client region, by cluster. */
function simulated(client: string, state: Parameters<typeof trafficTable>[1] = {}): Record<string, number> {
  const row = trafficTable(rev, state).services['web']?.[client];
  return Object.fromEntries(Object.entries(row?.clusters ?? {}).map(([c, v]) => [c, v.stable + v.canary]));
}

afterAll(() => {
  closeAgents();
  meridian(['down']);
  for (const pid of replicaPids(fleet)) process.kill(pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('meridian up --data-plane haproxy', () => {
  it('serves each country through HAProxy as route simulate says, drains and steps a canary live, and down leaves no process', async () => {
    const up = meridian(['up', 'shop', '--detach', '--port', '0', '--data-plane', 'haproxy', '--no-server', '-q']);
    expect(up.code, up.err + up.out).toBe(0);
    const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as Info;
    expect(info.dataPlane?.kind).toBe('haproxy');
    const haproxyPid = info.dataPlane?.pid ?? -1;
    expect(readFileSync(`/proc/${haproxyPid}/comm`, 'utf8').trim()).toBe('haproxy'); // a real HAProxy, not the Node router
    const port = Number(new URL(info.router).port);
    const socket = join(info.dataPlane?.dir ?? '', 'admin.sock');
    const pids = replicaPids(fleet);
    expect(pids.length).toBeGreaterThanOrEqual(16);

    // per country, the clusters route simulate gives (±3 points)
    for (const [country, client] of [
      ['DE', 'eu-central'],
      ['GB', 'eu-west'],
      ['US', 'us-east'],
      ['IN', 'ap-south'],
    ] as const) {
      const t = await tally(port, country, 400);
      expect(t.failed).toBe(0);
      expect(maxDiff(t.shares, simulated(client)), `${country}: ${JSON.stringify(t.shares)}`).toBeLessThanOrEqual(3);
    }

    // a drain through the control API: HAProxy's servers of the cluster go to maintenance (runtime API); the level
    // counts them as down, so GB follows `route simulate --down eu-west-2` (MERIDIAN_LOSS_DRAIN), not `--drain`
    await control(info, 'POST', 'v1/router/drain', { kind: 'cluster', name: 'eu-west-2', drained: true });
    const drained = await tally(port, 'GB', 2000); // rand(100) per request: 2000 keep one standard deviation near 1 point
    expect(drained.failed).toBe(0);
    expect(
      maxDiff(drained.shares, simulated('eu-west', simulatedState({ down: ['eu-west-2'] }))),
      JSON.stringify(drained.shares),
    ).toBeLessThanOrEqual(3);
    expect(drained.shares['eu-west-2'] ?? 0).toBe(0);
    await control(info, 'POST', 'v1/router/drain', { kind: 'cluster', name: 'eu-west-2', drained: false });
    expect((await tally(port, 'GB', 100)).shares['eu-west-2'] ?? 0).toBeGreaterThan(0);

    // a canary as a rollout starts one: its replicas through the control API (HAProxy reloads to add them)…
    const state = rev.clusters['us-east-1'];
    const web = state?.services['web'];
    if (!state || !web) throw new Error('examples/shop runs web on us-east-1');
    await control(info, 'POST', 'v1/apply', {
      cluster: 'us-east-1',
      revisionId: 'canary-2.5.0',
      track: 'canary',
      services: ['web'],
      state: { ...state, services: { web: { ...web, version: '2.5.0' } } },
    });
    await control(info, 'POST', 'v1/traffic/canary', { service: 'web', cluster: 'us-east-1', weight: 0, version: '2.5.0' });
    // the canary's replicas become servers once the driver has seen each ready (a reload each, or one for
    // both): wait for both, and for the plane to have seen the worker that has them
    const withCanary = async (): Promise<boolean> => {
      const names = new Set(
        (await haproxyCommand(socket, 'show servers state')).split('\n').flatMap((l) => /(us-east-1\.canary\S*)/.exec(l)?.[1] ?? []),
      );
      const stats = (await control(info, 'GET', 'v1/router/stats')) as { worker: string };
      const pid = /^Pid: (\d+)/m.exec(await haproxyCommand(socket, 'show info'))?.[1];
      return names.size === 2 && stats.worker === pid;
    };
    for (const deadline = Date.now() + 60_000; !(await withCanary());) {
      if (Date.now() > deadline) throw new Error('HAProxy never got the canary’s servers');
      await new Promise((r) => setTimeout(r, 200));
    }
    const reloads = (): Promise<number> => control(info, 'GET', 'v1/router/stats').then((s) => (s as { reloads: number }).reloads);
    const afterApply = await reloads();
    expect(afterApply).toBeGreaterThanOrEqual(1);
    const worker = /^Pid: (\d+)/m.exec(await haproxyCommand(socket, 'show info'))?.[1];

    // …then its weight in steps through the runtime API, under traffic: no failed request, no reload
    for (const weight of [20, 50]) {
      const during = tally(port, 'US', 300, true);
      await control(info, 'POST', 'v1/traffic/canary', { service: 'web', cluster: 'us-east-1', weight, version: '2.5.0' });
      expect((await during).failed).toBe(0);
      const after = await tally(port, 'US', 600, true);
      expect(after.failed).toBe(0);
      const model = trafficTable(rev, { canary: { web: { 'us-east-1': { weight, version: '2.5.0' } } } }).services['web']?.['us-east'];
      const expected = model?.clusters['us-east-1']?.canary ?? 0;
      expect(Math.abs((after.shares['us-east-1@2.5.0'] ?? 0) - expected) * 100, JSON.stringify(after)).toBeLessThanOrEqual(3);
    }
    expect(await reloads()).toBe(afterApply);
    expect(/^Pid: (\d+)/m.exec(await haproxyCommand(socket, 'show info'))?.[1]).toBe(worker);

    // the judge's counters: HAProxy's per-server responses, by version, through the control API
    const metrics = String(
      await fetch(new URL('v1/router/metrics', info.control), { headers: { authorization: `Bearer ${info.token}` } }).then((r) => r.text()),
    );
    const canaryServed = /meridian_router_requests_total\{service="web",cluster="us-east-1",version="2\.5\.0",code="other"\} (\d+)/.exec(
      metrics,
    );
    expect(Number(canaryServed?.[1] ?? 0)).toBeGreaterThan(100);

    const down = meridian(['down']);
    expect(down.code).toBe(0);
    expect(existsSync(join(work, '.meridian', 'up.json'))).toBe(false);
    expect(isAlive(haproxyPid)).toBe(false);
    expect([...pids, ...replicaPids(fleet)].filter(isAlive)).toEqual([]);
  }, 240_000);
});
