/**
 * Failure under load, with real processes: a cluster whose processes are killed stops getting traffic and
 * no idempotent request fails; table swaps under load drop nothing; retry rules for bodies and methods.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer, connect } from 'node:net';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints, type RouterEndpoint, type RouterOptions } from '../src/router/index.js';
import {
  closeAgents,
  get,
  load,
  revision,
  startUpstream,
  type FleetSpec,
  type Reply,
  type Upstream,
  TRUST_LOOPBACK,
} from './support/router-kit.js';

const ECHO = join(import.meta.dirname, 'fixtures', 'local-services', 'echo.mjs');
const routers: Router[] = [];
const upstreams: Upstream[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await Promise.all(upstreams.splice(0).map((u) => u.kill()));
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => closeAgents());

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** A real replica process: test/fixtures/local-services/echo.mjs on a free port. */
async function replica(cluster: string): Promise<{ endpoint: RouterEndpoint; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [ECHO], {
    env: {
      PATH: process.env['PATH'] ?? '',
      PORT: String(port),
      MERIDIAN_CLUSTER: cluster,
      MERIDIAN_SERVICE: 'web',
      MERIDIAN_VERSION: '1.0.0',
    },
    stdio: 'ignore',
  });
  children.push(proc);
  const deadline = Date.now() + 10_000;
  while (!(await accepting(port))) {
    if (Date.now() > deadline) throw new Error(`echo.mjs did not start on ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    endpoint: { cluster, service: 'web', track: 'stable', version: '1.0.0', host: '127.0.0.1', port, replica: String(proc.pid) },
    proc,
  };
}

function fleet(routing: Record<string, unknown>): FleetSpec {
  return {
    regions: {
      'eu-west': { jurisdiction: 'EU', countries: ['IE'], lat: 53.35, lon: -6.26 },
      'eu-central': { jurisdiction: 'EU', countries: ['DE'], lat: 50.11, lon: 8.68 },
    },
    clusters: { 'eu-west-1': { region: 'eu-west' }, 'eu-west-2': { region: 'eu-west' }, 'eu-central-1': { region: 'eu-central' } },
    services: { web: { version: '1.0.0' } },
    routing: { web: { clientCountryHeader: 'x-client-country', ...routing } },
  };
}

async function start(
  opts: Partial<RouterOptions> & Pick<RouterOptions, 'revision' | 'endpoints'>,
): Promise<{ router: Router; port: number }> {
  const router = new Router({ geoip: null, ...TRUST_LOOPBACK, ...opts });
  routers.push(router);
  const { port } = await router.listen(0);
  return { router, port };
}

describe('a cluster dies under load', () => {
  it('moves its traffic to the other clusters and fails no idempotent request (retries cover those in flight)', async () => {
    const rev = revision(
      fleet({
        retries: { attempts: 2, budget: '100%' },
        healthCheck: { path: '/healthz', interval: '200ms', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 2 },
      }),
    );
    const replicas = await Promise.all([
      replica('eu-west-1'),
      replica('eu-west-1'),
      replica('eu-west-2'),
      replica('eu-west-2'),
      replica('eu-central-1'),
    ]);
    const { router, port } = await start({ revision: rev, endpoints: new StaticEndpoints(replicas.map((r) => r.endpoint)) });
    const TOTAL = 1500;
    const KILL_AT = 300;
    const failures: string[] = [];
    const servedBy: string[] = new Array<string>(TOTAL);
    let killedAt = -1;
    let killTime = 0;
    let lastToDead = 0;
    await load(
      TOTAL,
      8,
      (i) => get(port, `/?i=${i}`, { headers: { 'x-client-country': 'IE' } }),
      (r, i, done) => {
        if (r instanceof Error || r.status !== 200) {
          failures.push(r instanceof Error ? r.message : `${r.status} ${r.body}`);
          return;
        }
        const cluster = (r.json() as { cluster: string }).cluster;
        servedBy[i] = cluster;
        if (cluster === 'eu-west-1' && killedAt >= 0) lastToDead = Math.max(lastToDead, Date.now() - killTime);
        if (done === KILL_AT) {
          killedAt = i;
          killTime = Date.now();
          for (const x of replicas.slice(0, 2)) x.proc.kill('SIGKILL');
        }
      },
    );
    expect(failures).toEqual([]);
    expect(router.stats().services['web']).toMatchObject({ active: 0, retries: 0 });
    const before = servedBy.slice(0, KILL_AT - 20);
    const after = servedBy.slice(KILL_AT + 300);
    expect(before.filter((c) => c === 'eu-west-1').length).toBeGreaterThan(50);
    expect(after.filter((c) => c === 'eu-west-1')).toEqual([]);
    // Envoy's priority load: eu-west is at 50% × 1.4 = 70% health, so it keeps 70% and eu-central takes the rest
    const west2 = after.filter((c) => c === 'eu-west-2').length;
    const central = after.filter((c) => c === 'eu-central-1').length;
    expect(west2 + central).toBe(after.length);
    expect(west2).toBeGreaterThan(central);
    expect(central).toBeGreaterThan(0);
    const stats = router.stats();
    expect(stats.services['web']?.clusters['eu-west-1']?.usable).toBe(0);
    const m = (await get(port, '/_meridian/metrics')).body;
    expect(m).toMatch(
      /meridian_router_requests_total\{service="web",client_region="eu-west",cluster="eu-west-2",version="1.0.0",code="2xx",reason="(retry|spillover|primary)"\}/,
    );
    console.info(
      `[router-failover] last response from the killed cluster ${lastToDead} ms after the kill (routed before it; retries moved the rest)`,
    );
  });
});

describe('table swaps under load', () => {
  it('drops no request while tables are swapped hundreds of times, and a request in flight finishes on the table it started with', async () => {
    const rev = revision(fleet({ retries: { attempts: 1, budget: '100%' }, stickiness: { cookie: 'mrd_uid' } }));
    const [a, b, c, canary] = await Promise.all([
      startUpstream('eu-west-1', '1.0.0'),
      startUpstream('eu-west-2', '1.0.0'),
      startUpstream('eu-central-1', '1.0.0'),
      startUpstream('eu-west-1', '2.0.0'),
    ]);
    upstreams.push(a, b, c, canary);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([a.endpoint(), b.endpoint(), c.endpoint(), canary.endpoint('canary')]),
      healthChecks: false,
      rebuildIntervalMs: 0,
    });
    let stop = false;
    let flips = 0;
    const churn = (async () => {
      while (!stop) {
        flips++;
        router.setCanary('web', 'eu-west-1', { weight: flips % 100, version: '2.0.0' });
        router.setDrained('eu-west-2', flips % 3 === 0);
        router.setHealth('eu-central-1', flips % 5 === 0 ? { healthy: true, degraded: 0.5 } : null);
        router.flush();
        await new Promise((r) => setImmediate(r));
      }
    })();
    const bad: string[] = [];
    await load(
      1500,
      16,
      (i) => get(port, '/', { headers: { 'x-client-country': 'IE', cookie: `mrd_uid=u${i % 50}` } }),
      (r: Reply | Error) => {
        if (r instanceof Error || r.status !== 200) bad.push(r instanceof Error ? r.message : `${r.status}`);
      },
    );
    stop = true;
    await churn;
    expect(bad).toEqual([]);
    expect(router.stats().swaps).toBeGreaterThan(100);
    expect(router.stats().services['web']).toMatchObject({ active: 0, retries: 0 }); // nothing leaked

    // a slow request started before its cluster is drained is still answered by that cluster
    const slow = createServer((req, res) => {
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"cluster":"slow"}'), 300);
      req.resume();
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const slowPort = (slow.address() as AddressInfo).port;
    const rev2 = revision(fleet({}), 'rev-2');
    const src = new StaticEndpoints([{ ...a.endpoint(), port: slowPort }, b.endpoint(), c.endpoint()]);
    const r2 = await start({ revision: rev2, endpoints: src, healthChecks: false, state: { drained: ['eu-west-2'] } });
    const inFlight = get(r2.port, '/', { headers: { 'x-client-country': 'IE' } });
    await new Promise((r) => setTimeout(r, 50));
    r2.router.setDrained('eu-west-1');
    r2.router.flush();
    const after = await get(r2.port, '/', { headers: { 'x-client-country': 'IE' } });
    expect(after.headers['x-meridian-cluster']).toBe('eu-central-1');
    const done = await inFlight;
    expect(done.status).toBe(200);
    expect(done.headers['x-meridian-cluster']).toBe('eu-west-1');
    slow.close();
  });
});

describe('a slow upstream', () => {
  const IE = { headers: { 'x-client-country': 'IE' } };
  const metric = async (port: number, name: string): Promise<string[]> =>
    (await get(port, '/_meridian/metrics')).body.split('\n').filter((l) => l.startsWith(name));

  it('an attempt past retries.perTryTimeout is retried on another cluster, and timeouts in a row eject the slow one', async () => {
    const rev = revision(fleet({ retries: { attempts: 1, budget: '100%', perTryTimeout: '200ms' } }));
    const [a, b] = await Promise.all([startUpstream('eu-west-1', '1.0.0'), startUpstream('eu-west-2', '1.0.0')]);
    upstreams.push(a, b);
    a.delayMs = 3000;
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([a.endpoint(), b.endpoint()]),
      healthChecks: false,
    });
    const replies = [];
    for (let i = 0; i < 30; i++) replies.push(await get(port, '/', IE));
    // every request answered by the fast cluster: those sent to the slow one first were retried there
    expect(replies.map((r) => `${r.status} ${String(r.headers['x-meridian-cluster'])}`)).toEqual(new Array(30).fill('200 eu-west-2'));
    expect(a.hits).toBeGreaterThanOrEqual(5);
    expect(await metric(port, 'meridian_router_upstream_failures_total')).toContainEqual(
      `meridian_router_upstream_failures_total{service="web",cluster="eu-west-1",kind="timeout"} ${a.hits}`,
    );
    // five timeouts in a row (consecutive5xx counts local failures too) ejected it: the rest went to eu-west-2 at once
    expect(a.hits).toBeLessThan(30);
    const slow = router.stats().services['web']?.clusters['eu-west-1']?.detail as { state: string }[];
    expect(slow.map((u) => u.state)).toEqual(['ejected']);
  });

  it('without retries, answers 504 upstream-timeout once the route timeout passes, instead of waiting', async () => {
    const rev = revision(fleet({ timeout: '300ms' }));
    const a = await startUpstream('eu-west-1', '1.0.0');
    upstreams.push(a);
    a.delayMs = 3000;
    const { port } = await start({ revision: rev, endpoints: new StaticEndpoints([a.endpoint()]), healthChecks: false });
    const r = await get(port, '/', IE);
    expect(r.status).toBe(504);
    expect(r.headers['x-meridian-reason']).toBe('upstream-timeout');
    expect(r.json()).toMatchObject({ error: 'upstream-timeout', tried: ['eu-west-1'] });
  });

  it('the route timeout bounds every attempt together: no retry is sent once it has passed', async () => {
    const rev = revision(fleet({ timeout: '300ms', retries: { attempts: 3, budget: '100%', perTryTimeout: '200ms' } }));
    const ups = await Promise.all([
      startUpstream('eu-west-1', '1.0.0'),
      startUpstream('eu-west-2', '1.0.0'),
      startUpstream('eu-central-1', '1.0.0'),
    ]);
    upstreams.push(...ups);
    for (const u of ups) u.delayMs = 3000;
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints(ups.map((u) => u.endpoint())),
      healthChecks: false,
    });
    const r = await get(port, '/', IE);
    expect(r.status).toBe(504);
    // 200 ms on the first cluster, what was left (≤ 100 ms) on the second, and no third attempt
    expect(r.json<{ message: string }>().message).toBe('no answer within the timeout of 300 ms (2 attempts)');
    expect(ups.reduce((n, u) => n + u.hits, 0)).toBe(2);
    expect(router.stats().services['web']).toMatchObject({ active: 0, retries: 0 }); // nothing leaked
  });
});

describe('retry rules', () => {
  it('retries a POST only when nothing was sent (connection refused), and never a streamed body', async () => {
    const rev = revision(fleet({ retries: { attempts: 1, budget: '100%' } }));
    const [a, b] = await Promise.all([startUpstream('eu-west-1', '1.0.0'), startUpstream('eu-west-2', '1.0.0')]);
    upstreams.push(a, b);
    const { port } = await start({ revision: rev, endpoints: new StaticEndpoints([a.endpoint(), b.endpoint()]), healthChecks: false });
    const post = (body: string): Promise<Reply> =>
      get(port, '/', { method: 'POST', body, headers: { 'x-client-country': 'IE', 'content-type': 'text/plain' } });
    // a 5xx to a POST is passed on as it is: the request may have had an effect
    a.status = 500;
    b.status = 500;
    const r500 = await post('x');
    expect(r500.status).toBe(500);
    expect(a.hits + b.hits).toBe(1);
    // a GET 5xx is retried once, on the other cluster; so is a PUT whose body was buffered
    const g = await get(port, '/', { headers: { 'x-client-country': 'IE' } });
    expect(g.status).toBe(500);
    expect(a.hits + b.hits).toBe(3);
    const put = await get(port, '/', { method: 'PUT', body: 'x', headers: { 'x-client-country': 'IE' } });
    expect(put.status).toBe(500);
    expect(a.hits + b.hits).toBe(5);
    // a streamed (chunked) body cannot be replayed: not retried
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'PUT',
          path: '/',
          headers: { host: 'shop.example', 'x-client-country': 'IE', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write('part-1;');
      req.end('part-2');
    });
    expect(chunked).toBe(500);
    expect(a.hits + b.hits).toBe(6);
    // a refused connection is retried even for a POST (with a buffered body): nothing was sent
    a.status = 200;
    b.status = 200;
    await a.kill();
    for (let i = 0; i < 6; i++) expect((await post('hello')).status).toBe(200);
  });

  it('moves a request whose connection was refused on to the next cluster: not a retry, so without retries and past the budget too', async () => {
    // no `retries` at all: a 5xx would be passed on, but a refused connection sent nothing anywhere
    const rev = revision(fleet({}));
    const [west1, west2, central] = await Promise.all([
      startUpstream('eu-west-1', '1.0.0'),
      startUpstream('eu-west-2', '1.0.0'),
      startUpstream('eu-central-1', '1.0.0'),
    ]);
    upstreams.push(west1, west2, central);
    // nothing listens in eu-west any more; without health checks the router learns it from the refusals
    await Promise.all([west1.kill(), west2.kill()]);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west1.endpoint(), west2.endpoint(), central.endpoint()]),
      healthChecks: false,
    });
    // IE's home is eu-west, whose two clusters take all its traffic while they look healthy: the first
    // request goes to one of them, is refused, and moves on (through the other) to eu-central-1
    const first = await get(port, '/', { method: 'POST', body: 'order', headers: { 'x-client-country': 'IE' } });
    expect(first.status).toBe(200);
    expect(first.headers['x-meridian-cluster']).toBe('eu-central-1');
    expect(central.hits).toBe(1);
    const m = (await get(port, '/_meridian/metrics')).body;
    expect(m).toMatch(/^meridian_router_retries_total\{service="web",outcome="rerouted"\} [12]$/m);
    expect(m).not.toContain('outcome="sent"');
    // each refusal took its endpoint out of rotation at once: no request fails on the way to eu-central-1
    for (let i = 0; i < 5; i++) expect((await get(port, '/', IE_HEADERS)).headers['x-meridian-cluster']).toBe('eu-central-1');
    expect(router.stats().services['web']).toMatchObject({ active: 0, retries: 0 });
  });

  it('never retries a pinned request elsewhere', async () => {
    const rev = revision(fleet({ retries: { attempts: 2, budget: '100%' } }));
    const [a, b] = await Promise.all([startUpstream('eu-west-1', '1.0.0'), startUpstream('eu-west-2', '1.0.0')]);
    upstreams.push(a, b);
    a.status = 500;
    const { port } = await start({ revision: rev, endpoints: new StaticEndpoints([a.endpoint(), b.endpoint()]), healthChecks: false });
    const r = await get(port, '/', { headers: { 'x-client-country': 'IE', 'x-meridian-cluster': 'eu-west-1' } });
    expect(r.status).toBe(500);
    expect([a.hits, b.hits]).toEqual([1, 0]);
  });
});

const IE_HEADERS = { headers: { 'x-client-country': 'IE' } };
