/** One health state per service and cluster: outlier ejection and return, active checks, refused connections, replica events. */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints, type EndpointEvent, type RouterEndpoint, type RouterOptions } from '../src/router/index.js';
import type { ProbeResult } from '../src/router/upstream.js';
import {
  FakeClock,
  closeAgents,
  get,
  revision,
  startUpstream,
  type FleetSpec,
  type Upstream,
  TRUST_LOOPBACK,
} from './support/router-kit.js';

const routers: Router[] = [];
const upstreams: Upstream[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await Promise.all(upstreams.splice(0).map((u) => u.kill()));
});
afterAll(() => closeAgents());

async function up(cluster: string, version = '1.0.0'): Promise<Upstream> {
  const u = await startUpstream(cluster, version);
  upstreams.push(u);
  return u;
}

/** One region with two clusters of equal weight: traffic splits between them. */
function twoClusters(routing: Record<string, unknown>): FleetSpec {
  return {
    regions: { 'eu-west': { jurisdiction: 'EU', countries: ['IE'], lat: 53.35, lon: -6.26 } },
    clusters: { 'eu-west-1': { region: 'eu-west' }, 'eu-west-2': { region: 'eu-west' } },
    services: { web: { version: '1.0.0' } },
    routing: { web: routing },
  };
}

async function start(
  opts: Partial<RouterOptions> & Pick<RouterOptions, 'revision' | 'endpoints'>,
): Promise<{ router: Router; port: number }> {
  const router = new Router({ healthChecks: false, geoip: null, ...TRUST_LOOPBACK, ...opts });
  routers.push(router);
  const { port } = await router.listen(0);
  return { router, port };
}

type Stats = ReturnType<Router['stats']>;
function states(stats: Stats, cluster: string): string[] {
  return ((stats.services['web']?.clusters[cluster]?.detail ?? []) as { state: string }[]).map((d) => d.state);
}

describe('outlier detection', () => {
  it('ejects a cluster that answers 5xx, for base × times ejected, and takes it back when the time is up', async () => {
    const clock = new FakeClock();
    const rev = revision(
      twoClusters({
        outlierDetection: { consecutive5xx: 3, baseEjectionTime: '10s', interval: '60s', maxEjectionPercent: 50 },
        retries: { attempts: 1, budget: '100%' },
      }),
    );
    const [a, b] = await Promise.all([up('eu-west-1'), up('eu-west-2')]);
    const { router, port } = await start({ revision: rev, endpoints: new StaticEndpoints([a!.endpoint(), b!.endpoint()]), clock });
    a!.status = 500;
    // every request still succeeds: a 5xx of an idempotent request is retried on the other cluster
    for (let i = 0; i < 30 && states(router.stats(), 'eu-west-1')[0] !== 'ejected'; i++) expect((await get(port)).status).toBe(200);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['ejected']);
    clock.advance(0); // the debounced rebuild
    const hitsAtEjection = a!.hits;
    for (let i = 0; i < 20; i++) expect((await get(port)).headers['x-meridian-cluster']).toBe('eu-west-2');
    expect(a!.hits).toBe(hitsAtEjection);
    const explained = (await get(port, '/_meridian/debug/route?service=web&country=IE')).json<{
      candidates: { cluster: string; state: string }[];
    }>();
    expect(explained.candidates.find((c) => c.cluster === 'eu-west-1')?.state).toBe('ejected');

    // healed, and back after 10 s
    a!.status = 200;
    clock.advance(9_999);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['ejected']);
    clock.advance(1);
    clock.advance(50);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['healthy']);
    const seen = new Set<unknown>();
    for (let i = 0; i < 30; i++) seen.add((await get(port)).headers['x-meridian-cluster']);
    expect(seen).toEqual(new Set(['eu-west-1', 'eu-west-2']));

    // a second ejection lasts twice as long
    a!.status = 503;
    for (let i = 0; i < 30 && states(router.stats(), 'eu-west-1')[0] !== 'ejected'; i++) await get(port);
    const d = router.stats().services['web']?.clusters['eu-west-1']?.detail[0] as { ejections: number; ejectedForMs: number };
    expect(d).toMatchObject({ ejections: 2, ejectedForMs: 20_000 });
    const m = (await get(port, '/_meridian/metrics')).body;
    expect(m).toContain('meridian_router_ejections_total{service="web",cluster="eu-west-1",cause="consecutive-5xx"} 2');
  });

  it('never ejects more than maxEjectionPercent of a service’s endpoints at once', async () => {
    const clock = new FakeClock();
    const rev = revision(twoClusters({ outlierDetection: { consecutive5xx: 2, baseEjectionTime: '30s', maxEjectionPercent: 50 } }));
    const [a, b] = await Promise.all([up('eu-west-1'), up('eu-west-2')]);
    const { router, port } = await start({ revision: rev, endpoints: new StaticEndpoints([a!.endpoint(), b!.endpoint()]), clock });
    a!.status = 500;
    b!.status = 500;
    for (let i = 0; i < 20; i++) expect((await get(port)).status).toBe(500); // no retries configured: the 5xx passes through
    const all = [...states(router.stats(), 'eu-west-1'), ...states(router.stats(), 'eu-west-2')];
    expect(all.filter((s) => s === 'ejected')).toHaveLength(1);
  });

  it('takes an endpoint out at the first refused connection, without losing the request, and counts the cluster as degraded', async () => {
    const clock = new FakeClock();
    const rev = revision(twoClusters({ retries: { attempts: 1, budget: '100%' } }));
    const [a1, a2, a3, a4, b] = await Promise.all([up('eu-west-1'), up('eu-west-1'), up('eu-west-1'), up('eu-west-1'), up('eu-west-2')]);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([a1!.endpoint(), a2!.endpoint(), a3!.endpoint(), a4!.endpoint(), b!.endpoint()]),
      clock,
    });
    await a1!.kill();
    for (let i = 0; i < 20; i++) expect((await get(port)).status).toBe(200);
    expect(states(router.stats(), 'eu-west-1').sort()).toEqual(['healthy', 'healthy', 'healthy', 'unreachable']);
    clock.advance(0);
    const e = (await get(port, '/_meridian/debug/route?service=web&country=IE')).json<{
      candidates: { cluster: string; healthFraction: number }[];
    }>();
    expect(e.candidates.find((c) => c.cluster === 'eu-west-1')?.healthFraction).toBe(0.75);
  });
});

describe('active health checks', () => {
  it('marks an endpoint unhealthy after unhealthyThreshold failures and healthy after healthyThreshold passes', async () => {
    const clock = new FakeClock();
    const rev = revision(
      twoClusters({ healthCheck: { path: '/ready', interval: '1s', timeout: '200ms', unhealthyThreshold: 3, healthyThreshold: 2 } }),
    );
    const [a, b] = await Promise.all([up('eu-west-1'), up('eu-west-2')]);
    const verdict = new Map<number, ProbeResult>();
    const probes: string[] = [];
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([a!.endpoint(), b!.endpoint()]),
      clock,
      healthChecks: true,
      probe: (_host, p, path) => {
        probes.push(`${p}${path}`);
        return Promise.resolve(verdict.get(p) ?? { ok: true });
      },
    });
    const tick = async (ms: number): Promise<void> => {
      clock.advance(ms);
      await new Promise((r) => setImmediate(r)); // let the probe promises settle
    };
    await tick(1000);
    expect(probes).toContain(`${a!.port}/ready`);
    verdict.set(a!.port, { ok: false, reason: 'HTTP 503' });
    await tick(1000);
    await tick(1000);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['healthy']);
    await tick(1000);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['unhealthy']);
    await tick(50);
    for (let i = 0; i < 10; i++) expect((await get(port)).headers['x-meridian-cluster']).toBe('eu-west-2');
    verdict.delete(a!.port);
    await tick(1000);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['unhealthy']);
    await tick(1000);
    expect(states(router.stats(), 'eu-west-1')).toEqual(['healthy']);
  });
});

describe('replica events', () => {
  it('stops sending to a replica the moment its source reports it exited', async () => {
    const clock = new FakeClock();
    const rev = revision(twoClusters({}));
    const [a, b] = await Promise.all([up('eu-west-1'), up('eu-west-2')]);
    const listeners = new Set<(e: EndpointEvent) => void>();
    let list: RouterEndpoint[] = [
      { ...a!.endpoint(), replica: 'a-1' },
      { ...b!.endpoint(), replica: 'b-1' },
    ];
    const source = {
      endpoints: (cluster: string) => list.filter((e) => e.cluster === cluster),
      subscribe: (l: (e: EndpointEvent) => void) => {
        listeners.add(l);
        return () => void listeners.delete(l);
      },
    };
    const { router, port } = await start({ revision: rev, endpoints: source, clock });
    for (const l of listeners) l({ type: 'replica-exited', cluster: 'eu-west-1', service: 'web', replica: 'a-1' });
    expect(states(router.stats(), 'eu-west-1')).toEqual(['source-unhealthy']); // before any listing or rebuild
    for (let i = 0; i < 10; i++) expect((await get(port)).headers['x-meridian-cluster']).toBe('eu-west-2');
    list = list.filter((e) => e.replica !== 'a-1');
    clock.advance(0); // the event's coalesced refresh, then the rebuild
    clock.advance(50);
    expect(router.stats().services['web']?.clusters['eu-west-1']).toBeUndefined();
    const e = (await get(port, '/_meridian/debug/route?service=web&country=IE')).json<{
      candidates: { cluster: string; state: string }[];
    }>();
    expect(e.candidates.find((c) => c.cluster === 'eu-west-1')?.state).toBe('unhealthy');
    expect(a!.hits).toBe(0);
  });
});
