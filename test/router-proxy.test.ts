/**
 * The router's response path over real loopback sockets: how an upstream's response reaches the client
 * (headers as sent minus hop-by-hop ones, bodies of every framing, backpressure), and what happens when
 * the client goes away in the middle of a response.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { EU_US, closeAgents, get, revision, until, TRUST_LOOPBACK } from './support/router-kit.js';

const routers: Router[] = [];
const servers: { server: Server; sockets: Set<Socket> }[] = [];

afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await Promise.all(
    servers.splice(0).map(
      ({ server, sockets }) =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    ),
  );
});
afterAll(() => closeAgents());

/** A loopback upstream answering with `handler`. */
async function upstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer(handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  servers.push({ server, sockets });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A router with one cluster (eu-west-1) whose one endpoint is `port`. */
async function routerTo(port: number): Promise<{ router: Router; port: number }> {
  const rev = revision({
    ...EU_US,
    services: { web: { version: '1.0.0' } },
    routing: { web: { clientCountryHeader: 'x-client-country', stickiness: { cookie: 'mrd_uid' } } },
  });
  const endpoints = new StaticEndpoints([
    { cluster: 'eu-west-1', service: 'web', track: 'stable', version: '1.0.0', host: '127.0.0.1', port },
  ]);
  const router = new Router({ revision: rev, endpoints, healthChecks: false, geoip: null, ...TRUST_LOOPBACK });
  routers.push(router);
  return { router, port: (await router.listen(0)).port };
}

const IE = { 'x-client-country': 'IE', cookie: 'mrd_uid=u1' };

describe('responses', () => {
  it('passes the status and every end-to-end header on (repeated ones too), without the hop-by-hop ones', async () => {
    const port = await upstream((_req, res) => {
      res.writeHead(201, [
        'Content-Type',
        'text/plain',
        'Set-Cookie',
        'a=1',
        'Set-Cookie',
        'b=2',
        'X-Custom',
        'kept',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Connection',
        'keep-alive',
      ]);
      res.end('made');
    });
    const { port: rp } = await routerTo(port);
    const r = await get(rp, '/', { headers: IE });
    expect(r.status).toBe(201);
    expect(r.body).toBe('made');
    expect(r.headers['content-type']).toBe('text/plain');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-custom']).toBe('kept');
    expect(r.headers['keep-alive']).toBe('timeout=65'); // the router's own connection's, not the upstream's
    expect(r.headers['proxy-connection']).toBeUndefined();
    expect(r.headers['x-meridian-cluster']).toBe('eu-west-1');
    expect(r.headers['x-meridian-region']).toBe('eu-west');
    expect(r.headers['x-meridian-version']).toBe('1.0.0');
    // a client without the sticky cookie gets one beside the upstream's cookies
    const fresh = await get(rp, '/', { headers: { 'x-client-country': 'IE' } });
    expect(fresh.headers['set-cookie']).toEqual(['a=1', 'b=2', expect.stringMatching(/^mrd_uid=[0-9a-f-]{36}; Path=\//)]);
  });

  it('streams bodies of every framing: Content-Length, chunked, empty, HEAD, and a large one to a slow reader', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 'abcdefgh');
    const port = await upstream((req, res) => {
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('one,');
        setTimeout(() => res.end('two'), 20);
      } else if (req.url === '/empty') {
        res.writeHead(204).end();
      } else if (req.url === '/big') {
        res.writeHead(200, { 'content-length': big.length }).end(big);
      } else {
        res.writeHead(200, { 'content-length': 5 }).end('hello');
      }
    });
    const { port: rp } = await routerTo(port);
    const chunked = await get(rp, '/chunked', { headers: IE });
    expect(chunked.body).toBe('one,two');
    expect(chunked.headers['transfer-encoding']).toBe('chunked'); // re-framed by the router's own connection
    expect((await get(rp, '/empty', { headers: IE })).status).toBe(204);
    const head = await get(rp, '/', { headers: IE, method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '5', '']);
    expect((await get(rp, '/', { headers: IE })).body).toBe('hello');

    // a reader that pauses: the router must wait for it (backpressure), not lose or reorder bytes
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: rp, path: '/big', headers: { host: 'shop.example', ...IE } }, (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        const timer = setTimeout(() => res.resume(), 200); // the router's socket buffers fill up meanwhile
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(received.length).toBe(big.length);
    expect(received.equals(big)).toBe(true);
  });

  it('aborts the upstream request when the client goes away mid-response, and counts it as aborted', async () => {
    let upstreamClosed = false;
    const port = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part');
      res.on('close', () => (upstreamClosed = true)); // never ends by itself
    });
    const { router, port: rp } = await routerTo(port);
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: rp, path: '/', headers: { host: 'shop.example', ...IE } }, (res) => {
        res.once('data', () => {
          req.destroy(); // the client hangs up after the first bytes
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end();
    });
    await until(() => upstreamClosed, 5_000, 'the upstream request to be aborted');
    await until(() => router.inFlight === 0, 5_000, 'the request to finish');
    const text = await router.metricsText();
    expect(text).toMatch(/meridian_router_requests_total\{[^}]*cluster="eu-west-1"[^}]*code="aborted"[^}]*\} 1/);
    expect(router.stats().services.web?.clusters['eu-west-1']?.detail).toEqual([
      expect.objectContaining({ inFlight: 0, consecutiveFailures: 0 }), // a client leaving is not the upstream's fault
    ]);
  });
});
