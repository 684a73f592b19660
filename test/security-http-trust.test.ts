/**
 * Attack suite, F-3 of the security review: loopback is no longer trusted by default. A TLS terminator
 * on the same host connects from 127.0.0.1, so trusting loopback made every internet client trusted:
 * its country header, its cluster pin, its `X-Forwarded-Proto` and the admin pages. Now the router
 * trusts only sources it is told about, and the admin prefix answers only to configured admin sources.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints, type RouterOptions } from '../src/router/index.js';
import { EU_US, closeAgents, get, revision, startUpstream, type Upstream } from './support/router-kit.js';

const routers: Router[] = [];
const ups: Upstream[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await Promise.all(ups.splice(0).map((u) => u.kill()));
});
afterAll(() => closeAgents());

/** A router over eu-west-1 and us-east-1 (one upstream each) for `web`, placed by `x-client-country`. */
async function fleet(opts: Partial<RouterOptions> = {}): Promise<{ port: number; router: Router; eu: Upstream; us: Upstream }> {
  const eu = await startUpstream('eu-west-1', '1.0.0');
  const us = await startUpstream('us-east-1', '1.0.0');
  ups.push(eu, us);
  const rev = revision({
    ...EU_US,
    services: { web: { version: '1.0.0' } },
    routing: { web: { clientCountryHeader: 'x-client-country' } },
  });
  const router = new Router({
    revision: rev,
    endpoints: new StaticEndpoints([eu.endpoint(), us.endpoint()]),
    healthChecks: false,
    geoip: null,
    ...opts,
  });
  routers.push(router);
  return { port: (await router.listen(0)).port, router, eu, us };
}

/** Headers a client behind a same-host TLS terminator would send (the terminator passes them on). */
const FORGED = { 'x-client-country': 'IE', 'x-forwarded-proto': 'https' };

describe('F-3: nothing is trusted by default', () => {
  it('a loopback client cannot set its country, pin a cluster or claim https', async () => {
    const { port, eu, us } = await fleet();
    const de = await get(port, '/', { headers: FORGED });
    expect(de.status).toBe(200);
    const seen = de.headers['x-meridian-cluster'] === 'eu-west-1' ? eu.lastHeaders : us.lastHeaders;
    expect(seen?.['x-client-country'], 'the untrusted country header is removed').toBeUndefined();
    expect(seen?.['x-forwarded-proto'], 'the untrusted X-Forwarded-Proto is removed').not.toBe('https');
    // a trusted pin to a cluster that does not exist is answered 404; an untrusted one is ignored
    const pinned = await get(port, '/', { headers: { 'x-meridian-cluster': 'nope' } });
    expect(pinned.status, 'the pin of an untrusted client').toBe(200);
  });

  it('the admin prefix on the traffic port is an ordinary path unless admin sources are configured', async () => {
    const { port } = await fleet();
    for (const path of ['/_meridian/metrics', '/_meridian/stats', '/_meridian/debug/route?service=web&country=DE']) {
      const r = await get(port, path);
      expect(r.body, path).not.toMatch(/meridian_router_|"snapshot"|"candidates"/);
    }
  });

  it('believes configured trusted sources, and serves admin to configured admin sources', async () => {
    const { port, eu } = await fleet({ trustedSources: ['127.0.0.1/32'], adminSources: ['127.0.0.1'] });
    const r = await get(port, '/', { headers: FORGED });
    expect(r.headers['x-meridian-cluster']).toBe('eu-west-1');
    expect(eu.lastHeaders?.['x-client-country']).toBe('IE');
    expect(eu.lastHeaders?.['x-forwarded-proto']).toBe('https');
    const pinned = await get(port, '/', { headers: { ...FORGED, 'x-meridian-cluster': 'us-east-1' } });
    expect(pinned.headers['x-meridian-cluster']).toBe('us-east-1');
    expect((await get(port, '/', { headers: { 'x-meridian-cluster': 'nope' } })).status).toBe(404);
    expect((await get(port, '/_meridian/stats')).json()).toHaveProperty('snapshot');
    // a source outside the list gets routing, not admin
    const other = await get(port, '/_meridian/stats', { localAddress: '127.0.0.2' });
    expect(other.body).not.toMatch(/"snapshot"/);
  });

  it('a separate admin port answers loopback by default (a listener no terminator forwards to)', async () => {
    const { router } = await fleet();
    const { port } = await router.listenAdmin(0);
    expect((await get(port, '/stats')).json()).toHaveProperty('snapshot');
  });
});
