/**
 * HAProxy as the local fleet's data plane (src/router/haproxy-plane.ts), against real HAProxy and loopback
 * upstreams standing for replicas: a replica the driver has not seen ready (started after a crash, say) is
 * not one of HAProxy's servers — a new HAProxy worker takes every server it is given as up — and it becomes
 * one when it is ready; one that exits is out of HAProxy at once, before the next export. A restore ramp
 * gives a restored region its ramp's share of its clients, then all of them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HaproxyPlane } from '../src/router/haproxy-plane.js';
import type { Endpoint, TargetEvent, TargetEventListener } from '../src/targets/target.js';
import { freePort } from './support/export-kit.js';
import { closeAgents, EU_US, get, revision, startUpstream, until, type Upstream } from './support/router-kit.js';

const rev = revision({
  ...EU_US,
  services: { web: { version: '1.0.0' } },
  routing: { web: { match: { hosts: ['shop.example'] }, clientCountryHeader: 'x-client-country' } },
});

/** The local driver's side the plane reads: endpoints with their readiness, and its events. */
class FakeDriver {
  readonly ready = new Set<number>();
  readonly upstreams: Upstream[] = [];
  /** Each upstream's process run: a restart is a new replica on the same address. */
  readonly runs = new Map<number, number>();
  readonly #listeners = new Set<TargetEventListener>();

  endpoints(cluster: string): Endpoint[] {
    return this.upstreams
      .filter((u) => u.cluster === cluster)
      .map((u) => ({ ...u.endpoint(), revisionId: rev.id, healthy: this.ready.has(u.port), replica: this.replica(u) }));
  }

  replica(u: Upstream): string {
    return `${u.port}.${this.runs.get(u.port) ?? 1}`;
  }

  subscribe(listener: TargetEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(type: TargetEvent['type'], u: Upstream): void {
    const e: TargetEvent = {
      type,
      cluster: u.cluster,
      service: 'web',
      track: 'stable',
      revisionId: rev.id,
      version: u.version,
      at: Date.now(),
      replica: this.replica(u),
    };
    for (const l of this.#listeners) l(e);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'meridian-haproxy-plane-'));
const opened: { close(): Promise<void> }[] = [];

afterAll(async () => {
  for (const o of opened.splice(0)) await o.close();
  closeAgents();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * HAProxy as the data plane in `dir/<name>`, in front of one ready upstream per cluster listed (a cluster
 * listed twice has two), in that order; all closed after the file.
 */
async function planeOver<T extends readonly string[]>(
  name: string,
  clusters: T,
  revision = rev,
): Promise<{ driver: FakeDriver; ups: { -readonly [K in keyof T]: Upstream }; port: number; plane: HaproxyPlane; dir: string }> {
  const driver = new FakeDriver();
  const ups: Upstream[] = [];
  for (const c of clusters) ups.push(await startUpstream(c, '1.0.0'));
  driver.upstreams.push(...ups);
  for (const u of ups) driver.ready.add(u.port);
  opened.push(...ups.map((u) => ({ close: () => u.kill() })));
  const port = await freePort();
  const planeDir = join(dir, name);
  const plane = await HaproxyPlane.start({ revision, target: driver, dir: planeDir, port, metricsPort: await freePort() });
  opened.unshift(plane);
  return { driver, ups: ups as { -readonly [K in keyof T]: Upstream }, port, plane, dir: planeDir };
}

/** Irish clients' answers through HAProxy, by the port of the upstream that gave them and by its cluster. */
async function irish(port: number, n: number): Promise<{ ports: Record<number, number>; clusters: Record<string, number> }> {
  const ports: Record<number, number> = {};
  const clusters: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    // a connection per request: a reload closes the old worker's idle keep-alive connections
    const r = await get(port, '/', { headers: { host: 'shop.example', 'x-client-country': 'IE', connection: 'close' } });
    expect(r.status).toBe(200);
    const { port: p, cluster } = r.json<{ port: number; cluster: string }>();
    ports[p] = (ports[p] ?? 0) + 1;
    clusters[cluster] = (clusters[cluster] ?? 0) + 1;
  }
  return { ports, clusters };
}

describe('HAProxy as the data plane', () => {
  it('sends no request to a replica restarted after a crash before the driver has seen it ready, and sends it some once it is', async () => {
    const {
      driver,
      ups: [a, b],
      port,
      plane,
    } = await planeOver('crash', ['eu-west-1', 'eu-west-1'] as const);
    expect(Object.keys((await irish(port, 10)).ports).sort()).toEqual([String(a.port), String(b.port)].sort());

    // b crashes and is restarted on its port: listed again (running), not ready yet — it listens, and
    // HAProxy's own checks would pass, but the driver has not seen it ready
    driver.ready.delete(b.port);
    driver.emit('replica-exited', b);
    driver.runs.set(b.port, 2);
    driver.emit('replica-restarting', b);
    await new Promise((r) => setTimeout(r, 500)); // the plane follows events in bursts (200 ms): let it follow these
    await plane.settled();
    expect((await irish(port, 20)).ports).toEqual({ [a.port]: 20 });

    driver.ready.add(b.port);
    driver.emit('replica-ready', b);
    await until(async () => ((await irish(port, 4)).ports[b.port] ?? 0) > 0, 20_000, 'b takes traffic once ready');
  }, 60_000);

  it('takes the servers of replicas that exit out at once: clients of a region whose replicas all died are served by the next region', async () => {
    const {
      driver,
      ups: [a, b],
      port,
      plane,
    } = await planeOver('exit', ['eu-west-1', 'eu-west-1', 'eu-central-1'] as const);
    expect((await irish(port, 10)).clusters).toEqual({ 'eu-west-1': 10 });

    // eu-west's replicas die (their ports refuse connections) and the driver says so
    await Promise.all([a.kill(), b.kill()]);
    for (const u of [a, b]) {
      driver.ready.delete(u.port);
      driver.upstreams.splice(driver.upstreams.indexOf(u), 1);
      driver.emit('replica-exited', u);
    }
    await plane.settled();
    // the next requests, before HAProxy's checks or the next export: none to the dead servers
    expect((await irish(port, 10)).clusters).toEqual({ 'eu-central-1': 10 });
  }, 60_000);

  it('undraining a cluster does not put back a server whose replica is out (failing its checks, held for its return)', async () => {
    const {
      driver,
      ups: [a, b],
      port,
      plane,
    } = await planeOver('undrain', ['eu-west-1', 'eu-west-1', 'eu-central-1'] as const);

    await plane.setDrained('eu-west-1', true);
    driver.ready.delete(a.port); // a fails its checks while the cluster is drained (it still answers)
    driver.emit('replica-unhealthy', a);
    await plane.settled();
    expect((await irish(port, 6)).clusters).toEqual({ 'eu-central-1': 6 });
    await plane.setDrained('eu-west-1', false);
    // eu-west-1 back with one of its two servers: b and, by priority load, eu-central-1 — never a
    const after = await irish(port, 20);
    expect(after.ports[a.port], JSON.stringify(after.ports)).toBeUndefined();
    expect(after.ports[b.port] ?? 0).toBeGreaterThan(0);
  }, 60_000);

  it('a replica that dies and comes back ready on its address takes no reload: out at once, then in again', async () => {
    const {
      driver,
      ups: [a, b],
      port,
      plane,
    } = await planeOver('back', ['eu-west-1', 'eu-west-1'] as const);

    driver.ready.delete(a.port); // it crashed: the driver no longer lists it, and says so
    driver.emit('replica-exited', a);
    await new Promise((r) => setTimeout(r, 500)); // the plane follows events in bursts (200 ms): let it follow this one
    await plane.settled();
    expect((await irish(port, 10)).ports).toEqual({ [b.port]: 10 });

    driver.runs.set(a.port, 2); // restarted on the same port, and ready again
    driver.ready.add(a.port);
    driver.emit('replica-ready', a);
    await until(async () => ((await irish(port, 4)).ports[a.port] ?? 0) > 0, 20_000, 'a takes traffic again');
    expect(plane.reloads).toBe(0);
  }, 60_000);

  it('reloads while a row’s first level is drained fail no request and serve none from it: a replaced worker hands what still reaches its priority frontend to the new one', async () => {
    const { port, plane } = await planeOver('stopping', ['eu-west-1', 'eu-central-1'] as const);
    await plane.setDrained('eu-west', true); // Irish requests go through the priority frontend, on kept-alive hops
    const failed: string[] = [];
    const byCluster: Record<string, number> = {};
    let served = 0;
    let running = true;
    const loops = [1, 2, 3].map(async () => {
      while (running) {
        const r = await get(port, '/', { headers: { host: 'shop.example', 'x-client-country': 'IE' } }).catch((err: Error) => err);
        if (r instanceof Error || r.status !== 200) failed.push(r instanceof Error ? r.message : `${r.status} ${r.body.slice(0, 80)}`);
        else {
          served++;
          const cluster = r.json<{ cluster: string }>().cluster;
          byCluster[cluster] = (byCluster[cluster] ?? 0) + 1;
        }
      }
    });
    // a worker that is stopping counts no usable server: before, its priority frontend answered 503 no-healthy
    // to the kept-alive hops that still reached it (5 of 6 reloads in one run)
    for (let i = 2; i <= 7; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await plane.setRevision({ ...rev, id: `rev-${i}` });
    }
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all(loops);
    expect(plane.reloads).toBe(6);
    expect(served).toBeGreaterThan(300);
    expect(failed, failed.slice(0, 5).join('\n')).toEqual([]);
    // the drained cluster's servers are written `disabled`: a new worker starts them in maintenance, and
    // does not serve from them until the drain is sent again through the runtime API
    expect(byCluster, JSON.stringify(byCluster)).toEqual({ 'eu-central-1': served });
  }, 60_000);

  it('follows a restore ramp: a restored region takes its ramp’s share of its clients (20 %), then all of them', async () => {
    const { port, plane, dir: rampDir } = await planeOver('ramp', ['eu-west-1', 'eu-central-1'] as const);
    // Irish clients' entry: their first level's backend (the fast path), or the priority frontend
    const irishEntry = (): string => /^IE (\S+)$/m.exec(readFileSync(join(rampDir, 'web.by-country.map'), 'utf8'))?.[1] ?? '';
    expect(irishEntry()).not.toBe('meridian_priority');

    await plane.setDrained('eu-west', true); // evacuated
    expect((await irish(port, 10)).clusters).toEqual({ 'eu-central-1': 10 });
    // restored with a ramp, as the control plane does it: the ramp first, then the undrain
    await plane.setRamp({ 'eu-west': 20 });
    expect((await irish(port, 10)).clusters, 'still drained: the ramp alone sends nothing to it').toEqual({ 'eu-central-1': 10 });
    await plane.setDrained('eu-west', false);
    expect(irishEntry()).toBe('meridian_priority');
    const n = 1000;
    const ramped = await irish(port, n);
    const share = (ramped.clusters['eu-west-1'] ?? 0) / n;
    console.log(`restore ramp at 20 %: eu-west-1 served ${(share * 100).toFixed(1)} % of ${n} Irish requests`);
    // a binomial share of 1000 at 20 %: σ = 1.3 points
    expect(Math.abs(share - 0.2) * 100, JSON.stringify(ramped.clusters)).toBeLessThanOrEqual(5);
    expect(plane.reloads).toBe(1);

    await plane.setRamp({ 'eu-west': 100 }); // the ramp's end: the configuration without one
    expect(plane.reloads).toBe(2);
    expect(irishEntry()).not.toBe('meridian_priority');
    expect((await irish(port, 40)).clusters).toEqual({ 'eu-west-1': 40 });
    await plane.setRamp({}); // nothing changes: no reload
    expect(plane.reloads).toBe(2);
  }, 60_000);

  it('follows a cluster’s ramp beside another in its region: its level’s backend weighs them by their shares (10 % / 90 % at 20 %)', async () => {
    // eu-west with two clusters of equal weight; eu-west-1 restored alone
    const two = revision({
      ...EU_US,
      clusters: { ...EU_US.clusters, 'eu-west-2': { region: 'eu-west' } },
      services: { web: { version: '1.0.0' } },
      routing: { web: { match: { hosts: ['shop.example'] }, clientCountryHeader: 'x-client-country' } },
    });
    const { port, plane } = await planeOver('cluster-ramp', ['eu-west-1', 'eu-west-2', 'eu-central-1'] as const, two);
    expect((await irish(port, 40)).clusters).toEqual({ 'eu-west-1': 20, 'eu-west-2': 20 });

    await plane.setDrained('eu-west-1', true);
    await plane.setRamp({ 'eu-west-1': 20 });
    await plane.setDrained('eu-west-1', false);
    // the model: eu-west-1 keeps 20 % of its half, eu-west-2 takes the rest of eu-west's traffic (a drained
    // cluster does not count in its level's health); HAProxy's weighted round robin splits by weight exactly
    const n = 200;
    const ramped = await irish(port, n);
    expect(Math.abs((ramped.clusters['eu-west-1'] ?? 0) / n - 0.1) * 100, JSON.stringify(ramped.clusters)).toBeLessThanOrEqual(3);
    expect(ramped.clusters['eu-central-1'] ?? 0).toBe(0);

    await plane.setRamp({});
    expect((await irish(port, 40)).clusters).toEqual({ 'eu-west-1': 20, 'eu-west-2': 20 });
  }, 60_000);
});
