/**
 * Attack suite, the router's inputs (security review F-19, F-20): response headers that the upstream's
 * `Connection` header nominates are not passed on (RFC 9110 §7.6.1), and an endpoints file that names a
 * cluster or service the fleet does not have is refused instead of silently removing capacity.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { startStandalone } from '../src/router/standalone.js';
import { EU_US, closeAgents, get, revision, TRUST_LOOPBACK } from './support/router-kit.js';

const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-sec-proxy-'));
const routers: Router[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  for (const s of servers.splice(0)) s.close();
});
afterAll(() => {
  closeAgents();
  rmSync(work, { recursive: true, force: true });
});

describe('F-19: headers the upstream nominates in Connection', () => {
  it('are dropped from the response, whatever their case; the others pass', async () => {
    const up = createServer((_req, res) => {
      res.writeHead(200, [
        'Connection',
        'X-Secret-Hop, keep-alive',
        'connection',
        'x-other-hop',
        'X-Secret-Hop',
        'should-be-stripped',
        'x-other-hop',
        'also',
        'X-Kept',
        'kept',
      ]);
      res.end('ok');
    });
    servers.push(up);
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const port = (up.address() as AddressInfo).port;
    const rev = revision({
      ...EU_US,
      services: { web: { version: '1.0.0' } },
      routing: { web: { clientCountryHeader: 'x-client-country' } },
    });
    const router = new Router({
      revision: rev,
      endpoints: new StaticEndpoints([
        { cluster: 'eu-west-1', service: 'web', track: 'stable', version: '1.0.0', host: '127.0.0.1', port },
      ]),
      healthChecks: false,
      geoip: null,
      ...TRUST_LOOPBACK,
    });
    routers.push(router);
    const rp = (await router.listen(0)).port;
    const r = await get(rp, '/', { headers: { 'x-client-country': 'IE' } });
    expect(r.status).toBe(200);
    expect(r.headers['x-secret-hop']).toBeUndefined();
    expect(r.headers['x-other-hop']).toBeUndefined();
    expect(r.headers['x-kept']).toBe('kept');
  });
});

describe('F-20: an endpoints file naming what the fleet does not have', () => {
  it.each([
    ['a cluster', { endpoints: [{ cluster: 'nope', service: 'web', port: 9 }] }, /cluster nope/],
    ['a service', { endpoints: [{ cluster: 'eu-west-1', service: 'nope', port: 9 }] }, /service nope/],
    ['a drained name', { endpoints: [{ cluster: 'eu-west-1', service: 'web', port: 9 }], drained: ['eu-wset-1'] }, /eu-wset-1/],
  ])('is refused: %s', async (_what, doc, message) => {
    const file = join(work, `endpoints-${Math.random()}.json`);
    writeFileSync(file, JSON.stringify(doc));
    const err = await startStandalone({ fleet: SHOP, endpoints: file, port: 0, host: '127.0.0.1', healthChecks: false, geoip: null }).then(
      async (r) => {
        await r.close();
        return null;
      },
      (e: unknown) => e as { code?: string; message?: string },
    );
    expect(err?.code).toBe('MERIDIAN_E_ROUTER_ENDPOINTS');
    expect(err?.message).toMatch(message);
  });
});
