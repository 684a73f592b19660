/**
 * Replacing replicas under traffic loses no request: the local driver announces a replica as draining and
 * waits before its SIGTERM, the router takes it out of rotation on that event, and the example service
 * finishes what it has in flight when it stops. Real router, real processes, no retries.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { render, type Revision } from '../src/render/render.js';
import { Router } from '../src/router/router.js';
import { loadFleet } from '../src/spec/load.js';
import { startClusters } from '../src/targets/local/local-fleet.js';
import { LocalTarget } from '../src/targets/local/local-target.js';
import { PortAllocator } from '../src/targets/local/port-allocator.js';
import { isHealthyAt, type TargetEvent, trackStatus, waitForStatus } from '../src/targets/target.js';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';
import { echoService, FIXTURE_DIR, renderedCluster } from './fixtures/local-services/cluster.js';
import { TRUST_LOOPBACK } from './support/router-kit.js';

const work = mkdtempSync(join(tmpdir(), 'meridian-drain-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const FAST = { intervalMs: 100, startupIntervalMs: 25, timeoutMs: 500 } as const;
/** Only to show that the test catches the bug: `DRAIN_TEST_MS=0` runs it without a drain delay. */
const drainOverride = process.env['DRAIN_TEST_MS'];
const drainMs = drainOverride === undefined ? {} : { drainMs: Number(drainOverride) };

/** The rollout test fleet's `web` at a version (a new version is a new spec: its replicas are replaced). */
function revisionAt(dir: string, version: string): Revision {
  const loaded = loadFleet(dir);
  const f = structuredClone(loaded.fleet);
  const web = f.services['web'];
  if (!web) throw new Error('the rollout fleet has no web service');
  web.version = version;
  web.image = web.image.replace(/:[0-9.]+@/, `:${version}@`);
  web.config = { ...web.config, FAULT_LATENCY: '3ms' }; // requests are in flight when a replica is told to stop
  return render({ ...loaded, fleet: f }).revision;
}

/** One GET to the router over a keep-alive connection, for the fleet's host. */
function get(agent: Agent, port: number, path = '/drain'): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { host: 'tiny.example' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Keeps `concurrency` requests going to the router until stopped; counts answers other than 200 and errors. */
function traffic(port: number, concurrency: number): { stop(): Promise<{ total: number; failed: string[] }> } {
  let running = true;
  let total = 0;
  const failed: string[] = [];
  const loop = async (): Promise<void> => {
    while (running) {
      try {
        const { status, body } = await get(agent, port);
        if (status !== 200) failed.push(`HTTP ${status} ${body.slice(0, 200)}`);
      } catch (err) {
        failed.push(`error ${(err as Error).message}`);
      }
      total += 1;
    }
  };
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const loops = Array.from({ length: concurrency }, loop);
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { total, failed };
    },
  };
}

describe('replacing replicas under traffic (local driver, router, no retries)', () => {
  it('loses no request through rolling replacements and a canary start/stop cycle', async () => {
    const dir = join(work, 'fleet');
    copyRolloutFleet(dir);
    const v1 = revisionAt(dir, '1.0.0');
    const target = new LocalTarget({ fleetDir: dir, health: FAST, graceMs: 3000, ...drainMs });
    const events: TargetEvent[] = [];
    target.subscribe((e) => events.push(e));
    const clusters = Object.keys(v1.clusters);
    let router: Router | null = null;
    try {
      await startClusters(target, Object.fromEntries(clusters.map((c) => [c, { revisionId: v1.id, state: v1.clusters[c]! }])));
      router = new Router({ revision: v1, endpoints: target, geoip: null, healthChecks: false, ...TRUST_LOOPBACK });
      const { port } = await router.listen(0);
      const load = traffic(port, 6);
      const replaced = new Set<string>();
      await sleep(300);

      // rolling replacements of every cluster's stable replica
      for (const version of ['1.0.1', '1.0.2', '1.0.3']) {
        const rev = revisionAt(dir, version);
        for (const c of clusters) for (const e of target.endpoints(c)) replaced.add(e.replica);
        await Promise.all(clusters.map((c) => target.apply({ cluster: c, revisionId: rev.id, state: rev.clusters[c]!, track: 'stable' })));
        for (const c of clusters) {
          await waitForStatus(
            target,
            c,
            (s) => isHealthyAt(s, 'web', 'stable', rev.id) && trackStatus(s, 'web', 'stable')?.replicas.length === 1,
            { timeoutMs: 15_000, intervalMs: 25 },
          );
        }
        await sleep(200);
      }

      // a canary beside the stable replica, taking half the traffic, then removed while it still has its weight
      const canary = revisionAt(dir, '1.1.0');
      await Promise.all(
        clusters.map((c) => target.apply({ cluster: c, revisionId: canary.id, state: canary.clusters[c]!, track: 'canary' })),
      );
      for (const c of clusters) {
        await waitForStatus(target, c, (s) => isHealthyAt(s, 'web', 'canary', canary.id), { timeoutMs: 15_000, intervalMs: 25 });
        router.setCanary('web', c, { weight: 50, version: '1.1.0' });
      }
      await sleep(400);
      for (const c of clusters) for (const e of target.endpoints(c)) if (e.track === 'canary') replaced.add(e.replica);
      await Promise.all(clusters.map((c) => target.remove({ cluster: c, track: 'canary' })));
      await sleep(200);
      for (const c of clusters) router.setCanary('web', c, null);
      await sleep(200);

      const { total, failed } = await load.stop();
      expect(total).toBeGreaterThan(500);
      expect(replaced.size).toBe(clusters.length * 4); // 3 stable generations + 1 canary per cluster were stopped
      const stopped = events.filter((e) => e.type === 'replica-stopped').map((e) => e.replica);
      expect(new Set(stopped)).toEqual(replaced);
      expect(failed, `${failed.length} of ${total} requests failed`).toEqual([]);
      // every stopped replica was announced first (with the default drain delay)
      if (drainOverride === undefined) {
        for (const id of replaced) {
          const draining = events.findIndex((e) => e.type === 'replica-draining' && e.replica === id);
          const gone = events.findIndex((e) => e.type === 'replica-stopped' && e.replica === id);
          expect(draining, `replica ${id} announced before it stopped`).toBeGreaterThanOrEqual(0);
          expect(draining).toBeLessThan(gone);
        }
      }
    } finally {
      await router?.close();
      await target.close();
    }
  }, 55_000);

  it('removing a cluster drains its replicas first; closing the driver does not wait for a drain', async () => {
    // a drain delay far longer than the test's timeout: closing must end it rather than wait
    const target = new LocalTarget({ fleetDir: FIXTURE_DIR, health: FAST, graceMs: 1000, drainMs: 600_000 });
    const events: TargetEvent[] = [];
    target.subscribe((e) => events.push(e));
    const state = renderedCluster({ web: echoService({ version: '1.0.0', replicas: 2 }) });
    try {
      await target.apply({ cluster: 'eu-west-1', revisionId: 'rev-1', state, track: 'stable' });
      await waitForStatus(target, 'eu-west-1', (s) => isHealthyAt(s, 'web', 'stable', 'rev-1'), { timeoutMs: 10_000 });
      const pids = target.pids();
      expect(pids).toHaveLength(2);
      const removing = target.remove({ cluster: 'eu-west-1' });
      const draining = (): TargetEvent[] => events.filter((e) => e.type === 'replica-draining');
      while (draining().length < 2) await sleep(10); // the test's timeout fails it if they never come
      expect(draining().map((e) => e.service)).toEqual(['web', 'web']);
      expect(target.endpoints('eu-west-1')).toEqual([]); // no longer listed for routers
      expect(target.pids().sort()).toEqual([...pids].sort()); // but still running: not signalled yet
      await target.close();
      await removing;
      expect(target.pids()).toEqual([]);
      expect(events.filter((e) => e.type === 'replica-stopped')).toHaveLength(2);
    } finally {
      await target.close();
    }
  }, 20_000);

  it('an example service finishes the request in flight when it gets SIGTERM, then exits 0', async () => {
    const port = await new PortAllocator().allocate();
    const child = spawn(process.execPath, [join(SHOP, 'services', 'web.mjs')], {
      env: { PATH: process.env['PATH'] ?? '', PORT: String(port), MERIDIAN_SERVICE: 'web', FAULT_LATENCY: '400ms' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('listening') && resolve()));
      const agent = new Agent({ keepAlive: true });
      const inFlight = get(agent, port, '/slow');
      await sleep(100); // the request is being served (it takes 400 ms)
      child.kill('SIGTERM');
      const answer = await inFlight;
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ service: 'web', path: '/slow' });
      expect(answer.connection).toBe('close'); // so that its keep-alive connection does not hold the process open
      expect(await exited).toBe(0);
      agent.destroy();
    } finally {
      child.kill('SIGKILL');
    }
  }, 20_000);

  it('rejects a negative drain delay with a clear error', () => {
    expect(() => new LocalTarget({ fleetDir: FIXTURE_DIR, drainMs: -1 })).toThrow(/drainMs must be a number of milliseconds ≥ 0/);
  });
});
