/**
 * The example shop's services read their flags over OFREP (examples/shop/services/lib/flags.mjs): first one
 * service process against a real OFREP server that the test controls (defaults before the first answer,
 * If-None-Match polling, a user's split, the last known values while the server is down), then a live
 * `meridian up` fleet, where `meridian flag set` for one region changes what that region's service answers
 * and not the other's. Every wait polls until the answer is seen, with a generous deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flagBucket, flagState, type FlagState, ofrepHandler } from '../src/flags/index.js';
import { Flag } from '../src/spec/schema.js';
import { runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const shop = join(root, 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-flag-services-'));
const USERS = Array.from({ length: 24 }, (_, i) => `user-${i}`);

interface Answer {
  readonly status: number;
  readonly region?: string;
  readonly features?: Record<string, boolean>;
}

/** A GET with node:http (fetch does not send a Host header of ours, which the router routes by). */
function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, ...(JSON.parse(body) as object) });
        } catch (err) {
          reject(new Error(`${url} answered ${res.statusCode ?? 0} ${body.slice(0, 200)}`, { cause: err }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Calls `probe` until it returns a value (not undefined); fails after `ms` with what it saw last. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`not seen within ${ms / 1000} s: ${what} (last error: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const REGIONS = { 'eu-west': {}, 'us-east': {} };
const flagsWith = (newCheckout: Record<string, unknown>): FlagState =>
  flagState({
    fleet: 'shop',
    regions: REGIONS,
    flags: {
      'new-checkout': Flag.parse({ default: false, regions: newCheckout }),
      recommendations: Flag.parse({ default: true }),
    },
  });

describe('a shop service reading its flags over OFREP', () => {
  let state = flagsWith({ 'eu-west': { enabled: true } });
  let conditional = 0; // polls that carried If-None-Match and were answered 304
  let ofrep: Server;
  let ofrepPort = 0;
  const services: ChildProcess[] = [];

  function startOfrep(): Promise<void> {
    const handle = ofrepHandler({ load: () => Promise.resolve(state) });
    ofrep = createServer((req, res) => {
      res.on('finish', () => {
        if (res.statusCode === 304 && req.headers['if-none-match']) conditional++;
      });
      if (!handle(req, res)) res.writeHead(404).end();
    });
    return new Promise((r) => ofrep.listen(ofrepPort, '127.0.0.1', () => r()));
  }

  async function stopOfrep(): Promise<void> {
    await new Promise((r) => {
      ofrep.close(r);
      ofrep.closeAllConnections();
    });
  }

  /** Starts examples/shop/services/web.mjs as eu-west's replica; resolves with its URL and a view of its output. */
  async function startWeb(ofrepUrl: string): Promise<{ url: string; output: () => string }> {
    const port = await freePort();
    const child = spawn(process.execPath, ['services/web.mjs'], {
      cwd: shop,
      env: {
        PATH: process.env['PATH'] ?? '',
        PORT: String(port),
        MERIDIAN_REGION: 'eu-west',
        MERIDIAN_CLUSTER: 'eu-west-1',
        MERIDIAN_OFREP_URL: ofrepUrl,
        FLAGS_POLL_INTERVAL: '250ms',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    services.push(child);
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    await until('the service listening', () => Promise.resolve(out.includes('"listening"') ? true : undefined));
    return { url: `http://127.0.0.1:${port}/`, output: () => out };
  }

  beforeAll(async () => {
    await startOfrep();
    ofrepPort = (ofrep.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const c of services) c.kill('SIGTERM');
    await stopOfrep();
  });

  it('answers with the declared defaults while OFREP has never answered', async () => {
    const web = await startWeb(`http://127.0.0.1:${await freePort()}/`); // nothing listens there
    await until('the service failing to reach OFREP', () => Promise.resolve(web.output().includes('no usable answer') ? true : undefined));
    const a = await get(web.url);
    expect(a.status).toBe(200);
    expect(a.features).toEqual({ 'new-checkout': false, recommendations: true });
    expect(web.output()).toContain('keeping the defaults');
  });

  it('follows the flags with conditional polls, splits users, and keeps the last values while OFREP is down', async () => {
    const web = await startWeb(`http://127.0.0.1:${ofrepPort}/`);
    // eu-west's gate is on for everyone: different from the default, so it came over OFREP
    await until('new-checkout on in eu-west', async () => ((await get(web.url)).features?.['new-checkout'] === true ? true : undefined));
    const before = conditional;
    await until('conditional polls answered 304', () => Promise.resolve(conditional >= before + 3 ? true : undefined));

    // on for half of the users: each user's answer is the user's bucket, as OFREP and the router compute it
    state = flagsWith({ 'eu-west': { enabled: true, percent: 50 } });
    const expected = USERS.map((u) => flagBucket('new-checkout', u) < 5000);
    expect(new Set(expected).size).toBe(2); // the users fall on both sides
    await until('every user split by their bucket', async () => {
      const got = await Promise.all(USERS.map(async (u) => (await get(web.url, { 'x-user-id': u })).features?.['new-checkout']));
      return JSON.stringify(got) === JSON.stringify(expected) ? true : undefined;
    });
    // the cookie the router's stickiness sets for web names the user too
    const cookieUser = USERS[expected.indexOf(true)] ?? '';
    expect((await get(web.url, { cookie: `a=b; mrd_uid=${cookieUser}` })).features?.['new-checkout']).toBe(true);
    // without a user, a split cannot be evaluated: the default answers
    await until('the default for a request without a user', async () =>
      (await get(web.url)).features?.['new-checkout'] === false ? true : undefined,
    );

    state = flagsWith({ 'eu-west': { enabled: true } });
    await until('new-checkout on for everyone again', async () =>
      (await get(web.url)).features?.['new-checkout'] === true ? true : undefined,
    );
    const offUser = USERS[expected.indexOf(false)] ?? '';
    await until('the user evaluation revalidated', async () =>
      (await get(web.url, { 'x-user-id': offUser })).features?.['new-checkout'] === true ? true : undefined,
    );

    await stopOfrep();
    await until('the service noticing OFREP is down', () => Promise.resolve(web.output().includes('no usable answer') ? true : undefined));
    for (let i = 0; i < 10; i++) {
      const a = await get(web.url);
      expect(a.status).toBe(200);
      expect(a.features).toEqual({ 'new-checkout': true, recommendations: true }); // the last known, not the default (false)
      expect((await get(web.url, { 'x-user-id': offUser })).features?.['new-checkout']).toBe(true);
    }
    expect(web.output()).toContain('keeping the last known values');

    state = flagsWith({ 'eu-west': { enabled: false } });
    await startOfrep(); // the same port
    await until('the service back on OFREP, with the flag off', async () =>
      (await get(web.url)).features?.['new-checkout'] === false ? true : undefined,
    );
    expect(web.output()).toContain('answers again');
  });
});

describe('a live local fleet: `meridian flag set` changes what one region’s service answers', () => {
  const fleet = join(work, 'fleet');
  let router = '';

  const meridian = (args: string[]): CliRun => runMeridian(args, { cwd: work, actor: 'oncall' });

  /** web through the router, as a client of `country` (DE → eu, US → us). */
  const web = (country: string, user?: string): Promise<Answer> =>
    get(router, { host: 'shop.example', 'x-client-country': country, ...(user ? { 'x-user-id': user } : {}) });

  beforeAll(() => {
    if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    cpSync(join(shop, 'services'), join(fleet, 'services'), { recursive: true }); // the shop's services, as they are
    writeFileSync(
      join(fleet, 'fleet.yaml'),
      `apiVersion: meridian/v1
fleet: flagshop

regions:
  eu: { jurisdiction: EU, location: { lat: 50.11, lon: 8.68 }, countries: [DE, FR] }
  us: { jurisdiction: US, location: { lat: 38.9, lon: -77.04 }, countries: [US] }

clusters:
  eu-1: { region: eu, driver: local, capacity: { rps: 100 } }
  us-1: { region: us, driver: local, capacity: { rps: 100 } }

services:
  web:
    image: ghcr.io/acme/web:2.4.0@sha256:a9700ba79818cc922ca0004f6588e2b6dc92930bd71dc0ea9c108d6d6ceb21b9
    version: 2.4.0
    port: 8080
    health: { path: /healthz }
    replicas: 1
    resources: { cpu: 100m, memory: 64Mi }
    config: { FLAGS_POLL_INTERVAL: 250ms }
    local: { command: [node, services/web.mjs] }

routing:
  web:
    match: { hosts: [shop.example] }
    clientCountryHeader: x-client-country
    stickiness: { header: x-user-id }

flags:
  new-checkout: { default: false, description: the one-page checkout }
  recommendations:
    default: true
    regions:
      us: { enabled: false }

policies:
  rules: [digest-pinned, no-literal-secrets]
`,
    );
    const up = meridian(['up', fleet, '--detach', '--port', '0', '--quiet', '--no-server']);
    if (up.code !== 0) throw new Error(`meridian up failed (${up.code}): ${up.out}${up.err}`);
    router = (JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { router: string }).router;
  }, 150_000);

  afterAll(() => {
    meridian(['down']);
    rmSync(work, { recursive: true, force: true });
  });

  it('serves each region the flags OFREP gives it, and one region’s change leaves the other alone', async () => {
    // us's recommendations are off in the fleet file: only OFREP can tell the service (its default is on)
    await until('eu and us answering their flags', async () => {
      const [eu, us] = await Promise.all([web('DE'), web('US')]);
      return eu.region === 'eu' &&
        us.region === 'us' &&
        JSON.stringify(eu.features) === '{"new-checkout":false,"recommendations":true}' &&
        JSON.stringify(us.features) === '{"new-checkout":false,"recommendations":false}'
        ? true
        : undefined;
    });

    const on = meridian(['flag', 'set', 'new-checkout', '--region', 'eu', '--on', '-f', fleet, '--reason', 'services test']);
    expect(on.code, on.err).toBe(0);
    await until('eu answering new-checkout on', async () => ((await web('DE')).features?.['new-checkout'] === true ? true : undefined));
    for (let i = 0; i < 10; i++) {
      const us = await web('US');
      expect(us.region).toBe('us');
      expect(us.features).toEqual({ 'new-checkout': false, recommendations: false });
    }

    // on for a share of users in us: each user sees what the flag bucket says
    const half = meridian(['flag', 'set', 'new-checkout', '--region', 'us', '--percent', '50', '-f', fleet]);
    expect(half.code, half.err).toBe(0);
    const expected = USERS.map((u) => flagBucket('new-checkout', u) < 5000);
    await until('us users split by their bucket', async () => {
      const got = await Promise.all(USERS.map(async (u) => (await web('US', u)).features?.['new-checkout']));
      return JSON.stringify(got) === JSON.stringify(expected) ? true : undefined;
    });
    expect((await web('DE', USERS[expected.indexOf(false)])).features?.['new-checkout']).toBe(true); // eu: on for everyone

    for (const region of ['eu', 'us']) expect(meridian(['flag', 'reset', 'new-checkout', '--region', region, '-f', fleet]).code).toBe(0);
    await until('eu back to the fleet file', async () => ((await web('DE')).features?.['new-checkout'] === false ? true : undefined));
  }, 180_000);
});
