/**
 * The OFREP API over a real SQLite store on a real loopback server: single and bulk evaluation, ETag and
 * 304, the spec's error shapes; the router's OFREP poller (changes, 304s, the endpoint going down); and a
 * real router whose flag gate follows the endpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlagPoller, followFlags, gatesFromBulk, ofrepHandler, storeFlagSource, type FlagGates } from '../src/flags/index.js';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { Flag } from '../src/spec/schema.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { Store } from '../src/store/store.js';
import { closeAgents, EU_US, get, revision, startUpstream, until, type Upstream, TRUST_LOOPBACK } from './support/router-kit.js';

const dir = mkdtempSync(join(tmpdir(), 'meridian-ofrep-'));
const alice = { id: 'alice', via: 'flag' };
const rev = {
  ...revision({
    ...EU_US,
    services: { web: { version: '1.0.0' } },
    routing: { web: { flag: 'beta', clientCountryHeader: 'x-client-country', stickiness: { header: 'x-user' } } },
  }),
  fleet: 'shop',
  flags: {
    beta: Flag.parse({ default: true, description: 'the beta storefront' }),
    'new-checkout': Flag.parse({ default: false, regions: { 'eu-west': { enabled: true, percent: 20 } } }),
  },
};

let store: Store;
let server: Server;
let base = '';
let notModified = 0;

async function post(
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; etag: string | null; json: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, etag: res.headers.get('etag'), json: text === '' ? null : (JSON.parse(text) as unknown) };
}

async function listen(s: Server, port = 0): Promise<void> {
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
}

function ofrepServer(): Server {
  const handle = ofrepHandler(storeFlagSource(store, rev));
  return createServer((req, res) => {
    res.on('finish', () => {
      if (res.statusCode === 304) notModified++;
    });
    if (!handle(req, res)) res.writeHead(418).end('not ofrep');
  });
}

beforeAll(async () => {
  store = await openSqliteStore(join(dir, 'state.db'));
  server = ofrepServer();
  await listen(server);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  closeAgents();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('OFREP single evaluation', () => {
  it('evaluates a flag for a region and user', async () => {
    const r = await post('/ofrep/v1/evaluate/flags/new-checkout', { context: { region: 'eu-west', targetingKey: 'user-1' } });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ key: 'new-checkout', reason: 'SPLIT', variant: expect.stringMatching(/^(on|off)$/) });
    expect(typeof (r.json as { value: unknown }).value).toBe('boolean');
    const d = await post('/ofrep/v1/evaluate/flags/beta', { context: { region: 'us-east' } });
    expect(d.json).toMatchObject({
      key: 'beta',
      value: true,
      variant: 'on',
      reason: 'DEFAULT',
      metadata: { description: 'the beta storefront' },
    });
  });

  it('answers the spec’s error shapes', async () => {
    const nf = await post('/ofrep/v1/evaluate/flags/new-chekout', { context: {} });
    expect(nf.status).toBe(404);
    expect(nf.json).toMatchObject({
      key: 'new-chekout',
      errorCode: 'FLAG_NOT_FOUND',
      errorDetails: expect.stringContaining('did you mean "new-checkout"'),
    });
    const region = await post('/ofrep/v1/evaluate/flags/beta', { context: { region: 'eu-wst' } });
    expect(region.status).toBe(400);
    expect(region.json).toMatchObject({
      key: 'beta',
      errorCode: 'INVALID_CONTEXT',
      errorDetails: expect.stringContaining('did you mean "eu-west"'),
    });
    expect((await post('/ofrep/v1/evaluate/flags/beta', { context: 'eu' })).json).toMatchObject({ errorCode: 'INVALID_CONTEXT' });
    const parse = await post('/ofrep/v1/evaluate/flags/beta', '{"context": ');
    expect(parse.status).toBe(400);
    expect(parse.json).toMatchObject({ key: 'beta', errorCode: 'PARSE_ERROR' });
    const key = await post('/ofrep/v1/evaluate/flags/new-checkout', { context: { region: 'eu-west' } });
    expect(key.status).toBe(400);
    expect(key.json).toMatchObject({ errorCode: 'TARGETING_KEY_MISSING' });
    const method = await fetch(`${base}/ofrep/v1/evaluate/flags/beta`);
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('POST');
    expect((await fetch(`${base}/elsewhere`, { method: 'POST' })).status).toBe(418); // not ours: the server goes on
  });

  it('takes an empty body as an empty context, and offers the configuration extension', async () => {
    expect((await post('/ofrep/v1/evaluate/flags/beta')).json).toMatchObject({ value: true, reason: 'DEFAULT' });
    const conf = (await (await fetch(`${base}/ofrep/v1/configuration`)).json()) as Record<string, unknown>;
    expect(conf).toMatchObject({
      name: 'meridian',
      capabilities: { cacheInvalidation: { polling: { enabled: true, minPollingIntervalMs: 250 } } },
    });
  });
});

describe('OFREP bulk evaluation', () => {
  it('evaluates every flag with an ETag, answers 304 to If-None-Match, and a new tag after a change', async () => {
    const first = await post('/ofrep/v1/evaluate/flags', { context: { region: 'eu-west' } });
    expect(first.status).toBe(200);
    expect(first.etag).toMatch(/^"[0-9a-f]{32}"$/);
    const flags = (first.json as { flags: Record<string, unknown>[] }).flags;
    expect(flags.map((f) => f['key'])).toEqual(['beta', 'new-checkout']);
    expect(flags[1]).toMatchObject({ key: 'new-checkout', errorCode: 'TARGETING_KEY_MISSING' }); // a split needs the user
    const again = await post('/ofrep/v1/evaluate/flags', { context: { region: 'eu-west' } }, { 'if-none-match': first.etag ?? '' });
    expect(again.status).toBe(304);
    expect(again.json).toBeNull();
    expect(
      (await post('/ofrep/v1/evaluate/flags', { context: { region: 'eu-west' } }, { 'if-none-match': `W/"x", ${first.etag ?? ''}` }))
        .status,
    ).toBe(304);
    await store.setFlag({ fleet: 'shop', flag: 'beta', region: 'eu-west', enabled: false, percent: 100 }, alice);
    const changed = await post('/ofrep/v1/evaluate/flags', { context: { region: 'eu-west' } }, { 'if-none-match': first.etag ?? '' });
    expect(changed.status).toBe(200);
    expect(changed.etag).not.toBe(first.etag);
    expect((changed.json as { flags: Record<string, unknown>[] }).flags[0]).toMatchObject({
      key: 'beta',
      value: false,
      reason: 'DISABLED',
    });
    await store.resetFlag('shop', 'beta', 'eu-west', alice);
  });

  it('refuses a bad context for the whole request', async () => {
    const r = await post('/ofrep/v1/evaluate/flags', { context: { region: 'mars' } });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ errorCode: 'INVALID_CONTEXT' });
    expect((await post('/ofrep/v1/evaluate/flags', '[')).json).toMatchObject({ errorCode: 'PARSE_ERROR' });
  });
});

describe('the OFREP poller', () => {
  it('reports changes, sends If-None-Match (304s change nothing), and keeps the last gates while the endpoint is down', async () => {
    const seen: FlagGates[] = [];
    const logs: string[] = [];
    const poller = new FlagPoller({ url: `${base}/`, onChange: (g) => seen.push(g), log: (_l, m) => logs.push(m) });
    expect(poller.url).toBe(`${base}/ofrep/v1/evaluate/flags`);
    expect(await poller.poll()).toBe('changed');
    expect(seen[0]?.['beta']?.['eu-west']).toEqual({ enabled: true, percent: 100 });
    expect(seen[0]?.['new-checkout']?.['eu-west']).toEqual({ enabled: true, percent: 20 });
    expect(seen[0]?.['new-checkout']?.['us-east']).toEqual({ enabled: false, percent: 100 });
    const before304 = notModified;
    expect(await poller.poll()).toBe('unchanged');
    expect(notModified).toBe(before304 + 1);

    await store.setFlag({ fleet: 'shop', flag: 'beta', region: 'eu-west', enabled: false, percent: 100 }, alice);
    expect(await poller.poll()).toBe('changed');
    expect(seen[1]?.['beta']?.['eu-west']).toEqual({ enabled: false, percent: 100 });

    const other = createServer((_req, res) => res.writeHead(503).end('down for maintenance'));
    await listen(other);
    const down = new FlagPoller({
      url: `http://127.0.0.1:${(other.address() as AddressInfo).port}/`,
      onChange: () => undefined,
      log: (_l, m) => logs.push(m),
    });
    expect(await down.poll()).toBe('error');
    expect(down.gates).toBeNull();
    expect(logs.at(-1)).toMatch(/HTTP 503.*keeping the fleet file's flag state/);
    await new Promise((r) => other.close(r));

    // the real endpoint goes away: the poller keeps what it had, and says so once
    const port = (server.address() as AddressInfo).port;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    expect(await poller.poll()).toBe('error');
    expect(await poller.poll()).toBe('error');
    expect(poller.failing).toBe(true);
    expect(poller.gates?.['beta']?.['eu-west']).toEqual({ enabled: false, percent: 100 });
    expect(logs.filter((m) => m.includes('keeping the last flag state'))).toHaveLength(1);
    server = ofrepServer();
    await listen(server, port);
    expect(await poller.poll()).not.toBe('error');
    expect(logs.at(-1)).toMatch(/answers again/);
    await store.resetFlag('shop', 'beta', 'eu-west', alice);
  });

  it('reads gates only from bulk responses', () => {
    expect(() => gatesFromBulk({ key: 'x' })).toThrow(/not an OFREP bulk evaluation/);
    expect(
      gatesFromBulk({
        flags: [
          { key: 'a', errorCode: 'GENERAL' },
          { key: 'b', value: true, metadata: { 'regions.r1.enabled': true } },
        ],
      }),
    ).toEqual({
      b: { r1: { enabled: true, percent: 100 } },
    });
  });
});

describe('a router that follows the flags endpoint', () => {
  let ups: Upstream[] = [];
  let router: Router | undefined;
  afterAll(async () => {
    await router?.close();
    await Promise.all(ups.map((u) => u.kill()));
  });

  it('stops serving a region from clusters whose flag gate closes, and serves it again when it opens', async () => {
    ups = await Promise.all(['eu-west-1', 'eu-central-1', 'us-east-1'].map((c) => startUpstream(c, '1.0.0')));
    router = new Router({
      revision: rev,
      endpoints: new StaticEndpoints(ups.map((u) => u.endpoint())),
      healthChecks: false,
      geoip: null,
      ...TRUST_LOOPBACK,
    });
    const { port } = await router.listen(0);
    const poller = followFlags(router, { url: base, intervalMs: 20 });
    const where = async (): Promise<string> =>
      (await get(port, '/', { headers: { 'x-client-country': 'IE', 'x-user': `u${Math.random()}` } })).json<{ cluster: string }>().cluster;
    try {
      await until(() => poller.polls > 0, 5000, 'the first poll');
      expect(await where()).toBe('eu-west-1');
      await store.setFlag({ fleet: 'shop', flag: 'beta', region: 'eu-west', enabled: false, percent: 100 }, alice);
      await until(async () => (await where()) !== 'eu-west-1', 5000, 'eu-west to stop serving');
      for (let i = 0; i < 50; i++) expect(await where()).not.toBe('eu-west-1');
      expect(await where()).toBe('eu-central-1'); // the next region by distance
      await store.setFlag({ fleet: 'shop', flag: 'beta', region: 'eu-west', enabled: true, percent: 100 }, alice);
      await until(async () => (await where()) === 'eu-west-1', 5000, 'eu-west to serve again');
    } finally {
      poller.stop();
    }
  });
});

describe('the OFREP poller while a fleet starts', () => {
  it('does not log slow first answers within its start grace, but logs a timeout after it and after an answer', async () => {
    // a server that takes connections and answers only when told to: a busy `meridian up` at start
    let answer = false;
    const held: ServerResponse[] = [];
    const slow = createServer((req, res) => {
      req.resume();
      if (answer) res.writeHead(200, { 'content-type': 'application/json', etag: '"1"' }).end('{"flags":[]}');
      else held.push(res);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`;
    try {
      const quiet: string[] = [];
      const starting = new FlagPoller({
        url,
        timeoutMs: 100,
        startGraceMs: 60_000,
        onChange: () => undefined,
        log: (_l, m) => quiet.push(m),
      });
      expect(await starting.poll()).toBe('error');
      expect(starting.failing).toBe(true);
      expect(quiet).toEqual([]); // within the grace: nothing said
      answer = true;
      expect(await starting.poll()).toBe('changed');
      expect(quiet).toEqual([]); // no failure was logged, so no recovery either
      answer = false;
      expect(await starting.poll()).toBe('error'); // after an answer a timeout is an outage
      expect(quiet).toHaveLength(1);
      expect(quiet[0]).toMatch(/cannot poll .*keeping the last flag state/);

      const loud: string[] = [];
      const late = new FlagPoller({ url, timeoutMs: 100, startGraceMs: 0, onChange: () => undefined, log: (_l, m) => loud.push(m) });
      expect(await late.poll()).toBe('error');
      expect(loud).toHaveLength(1);
      expect(loud[0]).toMatch(/keeping the fleet file's flag state/);
    } finally {
      for (const r of held) r.destroy();
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });
});
