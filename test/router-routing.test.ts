/** The router's decisions over real loopback upstreams: service selection, residency, client country, stickiness, headers, admin. */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MmdbGeoIp, Router, StaticEndpoints, type RouterOptions } from '../src/router/index.js';
import { EU_US, closeAgents, get, revision, startUpstream, type FleetSpec, type Upstream, TRUST_LOOPBACK } from './support/router-kit.js';

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

async function start(
  opts: Partial<RouterOptions> & Pick<RouterOptions, 'revision' | 'endpoints'>,
): Promise<{ router: Router; port: number }> {
  const router = new Router({ healthChecks: false, geoip: null, ...TRUST_LOOPBACK, ...opts });
  routers.push(router);
  const { port } = await router.listen(0);
  return { router, port };
}

const LOCKED: FleetSpec['routing'] = {
  web: {
    clientCountryHeader: 'x-client-country',
    residency: { EU: { allow: ['EU'], mode: 'lock' }, default: { allow: ['US'], mode: 'prefer' } },
    retries: { attempts: 2, budget: '100%' },
    outlierDetection: { consecutive5xx: 1000 },
  },
};

describe('service selection', () => {
  it('matches exact hosts before wildcards, then the longest path prefix; anything else is a 404 with a reason', async () => {
    const rev = revision({
      regions: { 'eu-west': EU_US.regions['eu-west'] as FleetSpec['regions'][string] },
      clusters: { 'eu-west-1': { region: 'eu-west' } },
      services: { web: { version: '1.0.0' }, api: { version: '2.0.0' }, assets: { version: '3.0.0' } },
      routing: {
        web: { match: { hosts: ['shop.example', '*.shop.example'], pathPrefix: '/' } },
        api: { match: { hosts: ['api.shop.example'] } },
        assets: { match: { hosts: ['shop.example'], pathPrefix: '/static/' } },
      },
    });
    const [w, a, s] = await Promise.all([up('eu-west-1', '1.0.0'), up('eu-west-1', '2.0.0'), up('eu-west-1', '3.0.0')]);
    const src = new StaticEndpoints([w!.endpoint('stable', 'web'), a!.endpoint('stable', 'api'), s!.endpoint('stable', 'assets')]);
    const { port } = await start({ revision: rev, endpoints: src });
    const version = async (host: string, path = '/'): Promise<string | undefined> =>
      (await get(port, path, { headers: { host } })).headers['x-meridian-version'] as string | undefined;
    expect(await version('shop.example')).toBe('1.0.0');
    expect(await version('SHOP.example:8080', '/cart')).toBe('1.0.0');
    expect(await version('www.shop.example')).toBe('1.0.0');
    expect(await version('a.b.shop.example')).toBe('1.0.0');
    expect(await version('api.shop.example', '/v1/items')).toBe('2.0.0');
    expect(await version('shop.example', '/static/logo.png')).toBe('3.0.0');
    const none = await get(port, '/', { headers: { host: 'elsewhere.example' } });
    expect(none.status).toBe(404);
    expect(none.headers['x-meridian-reason']).toBe('no-route');
    expect(none.json()).toMatchObject({ error: 'no-route' });
  });

  it('sends everything to the only routed service when it has no match, and can hide the x-meridian headers', async () => {
    const rev = revision({
      ...EU_US,
      services: { web: { version: '1.0.0' } },
      routing: { web: { exposeHeaders: false } },
    });
    const u = await up('eu-west-1');
    const { port } = await start({ revision: rev, endpoints: new StaticEndpoints([u.endpoint()]) });
    const r = await get(port, '/anything', { headers: { host: 'whatever.test' } });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ cluster: 'eu-west-1' });
    expect(r.headers['x-meridian-cluster']).toBeUndefined();
    expect(r.headers['x-meridian-version']).toBeUndefined();
  });
});

describe('residency', () => {
  it('never serves EU clients outside the EU, whatever fails, and answers 503 with the reason when no EU cluster is left', async () => {
    const rev = revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: LOCKED });
    const [west, central, us] = await Promise.all([up('eu-west-1'), up('eu-central-1'), up('us-east-1')]);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west!.endpoint(), central!.endpoint(), us!.endpoint()]),
    });
    const de = async (): Promise<{ status: number; cluster: unknown; reason: unknown; body: string }> => {
      const r = await get(port, '/', { headers: { 'x-client-country': 'DE' } });
      return { status: r.status, cluster: r.headers['x-meridian-cluster'], reason: r.headers['x-meridian-reason'], body: r.body };
    };
    const seen: unknown[] = [];
    for (let i = 0; i < 5; i++) seen.push((await de()).cluster);
    expect(new Set(seen)).toEqual(new Set(['eu-central-1']));

    await central!.kill(); // home region dead: failover inside the EU
    for (let i = 0; i < 10; i++) {
      const r = await de();
      expect(r.status).toBe(200);
      expect(r.cluster).toBe('eu-west-1');
    }
    await west!.kill(); // every EU cluster dead: fail closed, never us-east-1
    for (let i = 0; i < 10; i++) {
      const r = await de();
      expect(r.status).toBe(503);
      expect(r.reason).toBe('no-healthy');
      expect(r.cluster).toBeUndefined();
    }
    expect(us!.hits).toBe(0);
    // drained EU: nothing allowed is even eligible, so the lock itself rejects
    router.setDrained(['eu-west', 'eu-central']);
    router.flush();
    const r = await de();
    expect(r.status).toBe(503);
    expect(r.reason).toBe('residency-reject');
    expect(JSON.parse(r.body)).toMatchObject({
      error: 'residency-reject',
      allowed: ['EU'],
      mode: 'lock',
      jurisdiction: 'EU',
      client: { country: 'DE' },
    });
    expect(JSON.parse(r.body).message).toMatch(/residency mode lock forbids/);
    // US clients are still served at home
    const usr = await get(port, '/', { headers: { 'x-client-country': 'US' } });
    expect(usr.headers['x-meridian-cluster']).toBe('us-east-1');
    expect(us!.hits).toBe(1);
    const m = (await get(port, '/_meridian/metrics')).body;
    expect(m).toMatch(
      /meridian_router_requests_total\{service="web",client_region="eu-central",cluster="none",version="none",code="5xx",reason="residency-reject"\} 1/,
    );
    expect(m).toMatch(/meridian_router_upstream_connect_errors_total\{service="web",cluster="eu-west-1",error="ECONNREFUSED"\} [1-9]/);
  });
});

describe('client country', () => {
  it('trusts the country header only from trusted sources, and uses the GeoIP database otherwise', async () => {
    const rev = revision({
      ...EU_US,
      services: { web: { version: '1.0.0' } },
      routing: { web: { ...(LOCKED['web'] as object), trustedSources: ['127.0.0.2'] } },
    });
    const [west, central, us] = await Promise.all([up('eu-west-1'), up('eu-central-1'), up('us-east-1')]);
    const { port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west!.endpoint(), central!.endpoint(), us!.endpoint()]),
      geoip: new MmdbGeoIp(), // the bundled database
    });
    const from = async (localAddress: string, headers: Record<string, string>): Promise<unknown> =>
      (await get(port, '/', { localAddress, headers })).headers['x-meridian-cluster'];
    // a trusted proxy's header is believed
    expect(await from('127.0.0.2', { 'x-client-country': 'DE' })).toBe('eu-central-1');
    // anyone else's is ignored (127.0.0.1 is in no GeoIP database: no home, the default rule sends it to the US) …
    expect(await from('127.0.0.1', { 'x-client-country': 'DE' })).toBe('us-east-1');
    // … and not passed on to the service
    expect(us!.lastHeaders?.['x-client-country']).toBeUndefined();
    await get(port, '/', { localAddress: '127.0.0.1', headers: { 'x-forwarded-proto': 'https' } });
    expect(us!.lastHeaders?.['x-forwarded-proto']).toBeUndefined();
    // without a header, the client address from a trusted proxy's X-Forwarded-For goes through GeoIP
    expect(await from('127.0.0.2', { 'x-forwarded-for': '5.9.0.1' })).toBe('eu-central-1'); // DE in the shipped database
    expect(await from('127.0.0.2', { 'x-forwarded-for': '81.2.69.160' })).toBe('eu-west-1'); // GB
    expect(await from('127.0.0.2', { 'x-forwarded-for': '8.8.8.8' })).toBe('us-east-1'); // US
    // an untrusted client cannot choose its address either
    expect(await from('127.0.0.1', { 'x-forwarded-for': '5.9.0.1' })).toBe('us-east-1');
    const dbg = (await get(port, '/_meridian/debug/route?service=web&ip=5.9.0.1')).json<{ client: Record<string, unknown> }>();
    expect(dbg.client).toMatchObject({ country: 'DE', countrySource: 'geoip', home: 'eu-central', jurisdiction: 'EU' });
  });
});

describe('sticky canary', () => {
  it('keeps each user on one version across requests and across a weight increase, and sets the cookie when it is missing', async () => {
    const rev = revision({
      regions: { 'eu-west': EU_US.regions['eu-west'] as FleetSpec['regions'][string] },
      clusters: { 'eu-west-1': { region: 'eu-west' } },
      services: { web: { version: '1.0.0' } },
      routing: { web: { stickiness: { cookie: 'mrd_uid' } } },
    });
    const [stable, canary] = await Promise.all([up('eu-west-1', '1.0.0'), up('eu-west-1', '2.0.0')]);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([stable!.endpoint(), canary!.endpoint('canary')]),
    });
    router.setCanary('web', 'eu-west-1', { weight: 30, version: '2.0.0' });
    router.flush();
    const versionOf = async (user: string): Promise<string> => {
      const r = await get(port, '/', { headers: { cookie: `theme=dark; mrd_uid=${user}; x=1` } });
      expect(r.headers['set-cookie']).toEqual(['app=1']); // no new cookie for a known user
      return r.headers['x-meridian-version'] as string;
    };
    const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    const at30 = new Map<string, string>();
    for (const u of users) {
      const v = await versionOf(u);
      at30.set(u, v);
      expect(await versionOf(u)).toBe(v);
      expect(await versionOf(u)).toBe(v);
    }
    const canary30 = users.filter((u) => at30.get(u) === '2.0.0');
    expect(canary30.length).toBeGreaterThan(5);
    expect(canary30.length).toBeLessThan(40);

    router.setCanary('web', 'eu-west-1', { weight: 60, version: '2.0.0' });
    router.flush();
    const canary60 = [];
    for (const u of users) {
      const v = await versionOf(u);
      expect(await versionOf(u)).toBe(v);
      if (v === '2.0.0') canary60.push(u);
    }
    for (const u of canary30) expect(canary60).toContain(u); // nobody falls back from the canary when it grows
    expect(canary60.length).toBeGreaterThan(canary30.length);

    // a new user gets a cookie, and the cookie keeps them where they landed
    for (let i = 0; i < 10; i++) {
      const first = await get(port, '/');
      const cookie = (first.headers['set-cookie'] ?? []).find((c) => c.startsWith('mrd_uid='));
      expect(cookie).toMatch(/^mrd_uid=[0-9a-f-]{36}; Path=\/; Max-Age=31536000; SameSite=Lax; HttpOnly$/);
      const id = (cookie as string).split(';')[0] as string;
      for (let k = 0; k < 3; k++) {
        expect((await get(port, '/', { headers: { cookie: id } })).headers['x-meridian-version']).toBe(first.headers['x-meridian-version']);
      }
    }
  });

  it('uses a header as the sticky key when the service says so', async () => {
    const rev = revision({
      regions: { 'eu-west': EU_US.regions['eu-west'] as FleetSpec['regions'][string] },
      clusters: { 'eu-west-1': { region: 'eu-west' } },
      services: { api: { version: '1.0.0' } },
      routing: { api: { stickiness: { header: 'X-User-Id' } } },
    });
    const [stable, canary] = await Promise.all([up('eu-west-1', '1.0.0'), up('eu-west-1', '2.0.0')]);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([stable!.endpoint('stable', 'api'), canary!.endpoint('canary', 'api')]),
      state: { canary: { api: { 'eu-west-1': { weight: 50, version: '2.0.0' } } } },
    });
    expect(router.stats().snapshot).toBe(1);
    const versions = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const v = (await get(port, '/', { headers: { 'x-user-id': `u${i}` } })).headers['x-meridian-version'] as string;
      versions.add(v);
      expect((await get(port, '/', { headers: { 'x-user-id': `u${i}` } })).headers['x-meridian-version']).toBe(v);
    }
    expect(versions).toEqual(new Set(['1.0.0', '2.0.0']));
    expect((await get(port, '/')).headers['set-cookie']).toEqual(['app=1']);
  });
});

describe('headers, overrides and the admin endpoints', () => {
  it('passes a valid traceparent through, replaces an invalid one, and generates one when absent', async () => {
    const rev = revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: LOCKED });
    const [west, central, us] = await Promise.all([up('eu-west-1'), up('eu-central-1'), up('us-east-1')]);
    const { port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west!.endpoint(), central!.endpoint(), us!.endpoint()]),
    });
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await get(port, '/', { headers: { 'x-client-country': 'US', traceparent: tp, tracestate: 'a=1', 'x-forwarded-proto': 'https' } });
    expect(us!.lastHeaders).toMatchObject({
      traceparent: tp,
      tracestate: 'a=1',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'https', // from a trusted peer (loopback)
    });
    await get(port, '/', { headers: { 'x-client-country': 'US', traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' } });
    const generated = us!.lastHeaders?.traceparent as string;
    expect(generated).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    await get(port, '/', { headers: { 'x-client-country': 'US' } });
    expect(us!.lastHeaders?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(us!.lastHeaders?.traceparent).not.toBe(generated);
  });

  it('passes request headers on as sent, without hop-by-hop ones (also those its Connection header names), with X-Forwarded-For appended', async () => {
    const rev = revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: LOCKED });
    const [west, central, us] = await Promise.all([up('eu-west-1'), up('eu-central-1'), up('us-east-1')]);
    const { port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west!.endpoint(), central!.endpoint(), us!.endpoint()]),
    });
    const r = await get(port, '/', {
      headers: {
        'X-Client-Country': 'US',
        'X-Kept': 'yes',
        'X-Secret': 'hop',
        Connection: 'X-Secret, keep-alive',
        'Proxy-Authorization': 'Basic Zm9v',
        TE: 'trailers',
        'X-Forwarded-For': '10.1.2.3',
        traceparent: 'not-a-trace',
        TraceState: 'a=1',
      },
    });
    expect(r.status).toBe(200);
    const h = us!.lastHeaders ?? {};
    expect(h).toMatchObject({ host: 'shop.example', 'x-kept': 'yes', 'x-client-country': 'US', 'x-forwarded-for': '10.1.2.3, 127.0.0.1' });
    expect(h['x-secret']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h.tracestate).toBeUndefined(); // it belonged to the invalid traceparent, which was replaced
    expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  });

  it('pins a request to a cluster for a trusted caller, but never past residency', async () => {
    const rev = revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: LOCKED });
    const [west, central, us] = await Promise.all([up('eu-west-1'), up('eu-central-1'), up('us-east-1')]);
    const { port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west!.endpoint(), central!.endpoint(), us!.endpoint()]),
    });
    const pinned = await get(port, '/', { headers: { 'x-client-country': 'DE', 'x-meridian-cluster': 'eu-west-1' } });
    expect(pinned.headers['x-meridian-cluster']).toBe('eu-west-1');
    expect(west!.lastHeaders?.['x-meridian-cluster']).toBeUndefined();
    const refused = await get(port, '/', { headers: { 'x-client-country': 'DE', 'x-meridian-cluster': 'us-east-1' } });
    expect(refused.status).toBe(503);
    expect(us!.hits).toBe(0);
    const m = (await get(port, '/_meridian/metrics')).body;
    expect(m).toMatch(
      /meridian_router_requests_total\{service="web",client_region="eu-central",cluster="eu-west-1",version="1.0.0",code="2xx",reason="override"\} 1/,
    );
  });

  it('explains a decision at /_meridian/debug/route, and serves stats and Prometheus metrics to loopback only', async () => {
    const rev = revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: LOCKED });
    const [west, central, us] = await Promise.all([up('eu-west-1'), up('eu-central-1'), up('us-east-1')]);
    const { router, port } = await start({
      revision: rev,
      endpoints: new StaticEndpoints([west!.endpoint(), central!.endpoint(), us!.endpoint()]),
      adminSources: ['127.0.0.1'],
    });
    router.setDrained('eu-west-1');
    router.flush();
    const e = (await get(port, '/_meridian/debug/route?service=web&country=DE&user=alice')).json<{
      snapshot: { version: number };
      table: { id: string; version: number };
      candidates: { cluster: string; excluded: string[]; state: string }[];
      excluded: { cluster: string; reason: string }[];
      levels: { clusters: string[]; envoyLoad: number; panic: boolean }[];
      decision: { kind: string; cluster: string; bucket: number };
      residency: { rule: { mode: string } };
      endpoints: Record<string, { state: string }[]>;
    }>();
    expect(e.snapshot.version).toBe(2);
    expect(e.table.id).toMatch(/^v2-[0-9a-f]{12}$/);
    expect(e.residency.rule.mode).toBe('lock');
    expect(e.excluded).toEqual(
      expect.arrayContaining([
        { cluster: 'eu-west-1', reason: 'drained', reasons: ['drained'] },
        { cluster: 'us-east-1', reason: 'residency', reasons: ['residency'] },
      ]),
    );
    expect(e.levels[0]).toMatchObject({ clusters: ['eu-central-1'], envoyLoad: 100, panic: false });
    expect(e.decision).toMatchObject({ kind: 'primary', cluster: 'eu-central-1' });
    expect(e.decision.bucket).toBeGreaterThanOrEqual(0);
    expect(e.endpoints['eu-central-1']?.[0]?.state).toBe('healthy');

    const stats = (await get(port, '/_meridian/stats')).json<{ snapshot: number; services: Record<string, unknown> }>();
    expect(stats.snapshot).toBe(2);
    const served = await get(port, '/', { headers: { 'x-client-country': 'DE' } }); // one request, so its series exist
    expect(served.headers['x-meridian-cluster']).toBe('eu-central-1');
    const metrics = await get(port, '/_meridian/metrics');
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    for (const name of [
      'meridian_router_requests_total',
      'meridian_router_request_duration_seconds',
      'meridian_router_request_duration_seconds_bucket{service="web",client_region="eu-central",cluster="eu-central-1",version=',
      'meridian_router_upstream_connect_errors_total',
      'meridian_router_ejections_total',
      'meridian_router_table_version 2',
      'meridian_router_table_swaps_total 1',
      'meridian_router_endpoints{service="web",cluster="eu-west-1",state="healthy"} 1',
    ]) {
      expect(metrics.body).toContain(name);
    }
    // from a source that is not an admin source, the prefix is an ordinary path (routed to the service)
    const other = await get(port, '/_meridian/stats', { localAddress: '127.0.0.2', headers: { 'x-client-country': 'US' } });
    expect(other.headers['x-meridian-cluster']).toBe('us-east-1');
    // and a separate admin port serves the same without the prefix
    const { port: adminPort } = await router.listenAdmin(0);
    expect((await get(adminPort, '/healthz')).body).toBe('ok\n');
    expect((await get(adminPort, '/debug/route?country=US')).json()).toMatchObject({ decision: { cluster: 'us-east-1' } });
  });
});
