/**
 * Attack suite, F-2 of the security review (slowloris): the router and the control plane close a
 * connection that sends nothing, one that trickles its headers, and one that announces a body it never
 * sends; and they close connections over their cap at once. The limits are set short here (the defaults
 * are 20 s / 60 s / 300 s); each case waits for the close with a deadline far above the limit.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_LIMITS, serverOptions, type HttpLimits } from '../src/http-limits.js';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { EU_US, closeAgents, revision } from './support/router-kit.js';
import { serverWorld, type ServerWorld } from './support/server-kit.js';

const SHORT: Partial<HttpLimits> = { headersTimeoutMs: 400, requestTimeoutMs: 1_500, idleTimeoutMs: 800 };
/** Far above every limit in SHORT, and far below the defaults: a close within it is the limit's doing. */
const DEADLINE_MS = 8_000;

const sockets: Socket[] = [];
const routers: Router[] = [];
let world: ServerWorld | null = null;
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await world?.close();
  world = null;
});
afterAll(() => closeAgents());

/** A raw connection; `closed` resolves with what the server sent before closing, or null at the deadline. */
function open(port: number): { socket: Socket; closed: Promise<string | null> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let got = '';
  socket.on('data', (b) => (got += b.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<string | null>((resolve) => {
    const t = setTimeout(() => resolve(null), DEADLINE_MS);
    socket.on('close', () => {
      clearTimeout(t);
      resolve(got);
    });
  });
  return { socket, closed };
}

/** The three slowloris connections of the review (A: nothing, B: trickled headers, C: a body never sent). */
async function slowloris(port: number, post: string): Promise<(string | null)[]> {
  const a = open(port);
  const b = open(port);
  b.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  const trickle = setInterval(() => b.socket.writable && b.socket.write('X'), 100); // a byte every 100 ms: never idle
  const c = open(port);
  c.socket.write(post);
  try {
    return await Promise.all([a.closed, b.closed, c.closed]);
  } finally {
    clearInterval(trickle);
  }
}

async function router(limits: Partial<HttpLimits>): Promise<number> {
  const rev = revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: { web: {} } });
  const r = new Router({ revision: rev, endpoints: new StaticEndpoints([]), healthChecks: false, geoip: null, limits });
  routers.push(r);
  return (await r.listen(0)).port;
}

describe('F-2: header, body and idle timeouts', () => {
  it('the router closes a silent connection, trickled headers and a body that never comes', async () => {
    const port = await router(SHORT);
    const [a, b, c] = await slowloris(port, 'POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 100\r\n\r\n{');
    expect(a, 'a connection that sends nothing').not.toBeNull();
    expect(b, 'headers trickled a byte at a time').not.toBeNull();
    expect(b).toMatch(/^HTTP\/1\.1 408/);
    expect(c, 'a body announced and never sent').not.toBeNull();
  });

  it('the control plane closes them too, after authentication as well', async () => {
    world = await serverWorld({ limits: SHORT });
    const port = world.server.port;
    const post =
      'POST /api/v1/clusters/eu-west-1/drain HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n' +
      `authorization: Bearer ${world.tokens.deployer}\r\nContent-Length: 100\r\n\r\n{`;
    const [a, b, c] = await slowloris(port, post);
    expect(a).not.toBeNull();
    expect(b).toMatch(/^HTTP\/1\.1 408/);
    expect(c).not.toBeNull();
  });

  it('closes connections over the cap as soon as they are accepted, and serves again below it', async () => {
    const port = await router({ maxConnections: 3 });
    const held = [open(port), open(port), open(port)];
    await Promise.all(held.map((h) => new Promise((r) => h.socket.once('connect', r))));
    await new Promise((r) => setTimeout(r, 100)); // the server has accepted all three
    const over = open(port);
    expect(await over.closed, 'the fourth connection').toBe('');
    held[0]?.socket.destroy();
    await held[0]?.closed;
    const again = open(port);
    again.socket.write('GET /nothing HTTP/1.1\r\nHost: nowhere.example\r\nConnection: close\r\n\r\n');
    expect(await again.closed).toMatch(/^HTTP\/1\.1 \d{3}/);
  });

  it('has defaults close to nginx, HAProxy and Envoy, swept often enough to hold them', () => {
    expect(DEFAULT_HTTP_LIMITS).toEqual({
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 300_000,
      idleTimeoutMs: 60_000,
      keepAliveTimeoutMs: 65_000,
      maxConnections: 4096,
    });
    const o = serverOptions(DEFAULT_HTTP_LIMITS);
    expect(o.headersTimeout).toBe(20_000);
    expect(o.requestTimeout).toBe(300_000);
    expect(o.connectionsCheckingInterval).toBeLessThanOrEqual(5_000);
  });
});
