/**
 * OFREP behind `meridian serve --ofrep-auth`, with real processes: a token-less call is refused in OFREP's
 * error shape, a viewer token reads the flags, a revoked one is refused; `meridian router --flags URL`
 * with MERIDIAN_FLAGS_TOKEN gates a route on a flag through it, and without a usable token says how to fix
 * it once and keeps its last state. Without the option OFREP stays open. Needs a fresh build.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ofrepLines } from '../src/cli/commands/serve.js';
import { BIN, runMeridian, spawnNode, type NodeProcess } from './support/cli-kit.js';
import { copyFlagGatedFleet } from './fixtures/flag-gated-fleet.js';
import { closeAgents, get, startUpstream, type Upstream, TRUST_LOOPBACK_FLAGS } from './support/router-kit.js';
import { api, serverWorld, until } from './support/server-kit.js';

const work = mkdtempSync(join(tmpdir(), 'meridian-ofrep-auth-'));
const fleet = join(work, 'fleet');
const state = join(work, 'state.db');
const FLAGS = 'ofrep/v1/evaluate/flags';
const running: NodeProcess[] = [];
let ups: Upstream[] = [];
const tokens = { viewer: '', deployer: '', router: '' };
let serveUrl = '';

function createToken(role: string, name: string): string {
  const r = runMeridian(['token', 'create', '--role', role, '--name', name, '--state', state, '-o', 'json'], { cwd: work });
  if (r.code !== 0) throw new Error(`meridian token create failed: ${r.err}`);
  return (JSON.parse(r.out) as { token: string }).token;
}

async function stopProcess(p: NodeProcess): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null && p.proc.pid !== undefined) {
    process.kill(p.proc.pid, 'SIGTERM');
    await p.exited;
  }
}

/** Starts `meridian serve` over the fleet and the store; resolves with its URL. */
async function startServe(extra: string[]): Promise<{ p: NodeProcess; url: string }> {
  const p = spawnNode([BIN, 'serve', fleet, '--port', '0', '--state', state, '--no-local-admin', ...extra], { cwd: work });
  running.push(p);
  await until(() => /control plane on (http:\/\/\S+)/.test(p.out()), 'meridian serve to start', 30_000);
  return { p, url: /control plane on (http:\/\/\S+)/.exec(p.out())?.[1] ?? '' };
}

/** Starts `meridian router --flags URL` over the three upstreams; resolves with its traffic port. */
async function startRouter(env: NodeJS.ProcessEnv, extra: string[] = []): Promise<{ p: NodeProcess; port: number }> {
  const args = [
    'router',
    '--fleet',
    fleet,
    '--endpoints',
    join(work, 'endpoints.json'),
    '--port',
    '0',
    '--no-health-checks',
    ...TRUST_LOOPBACK_FLAGS,
    ...extra,
  ];
  const p = spawnNode([BIN, ...args, '--flags', serveUrl, '--flags-interval', '50ms'], { cwd: work, env });
  running.push(p);
  await until(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(p.out()), 'the router to listen', 20_000);
  return { p, port: Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(p.out())?.[1]) };
}

/** The cluster that answers a client from Germany (region eu) for tiny.example. */
async function clusterFor(port: number): Promise<string> {
  const r = await get(port, '/', { headers: { host: 'tiny.example', 'x-client-country': 'DE', connection: 'close' } });
  return String(r.headers['x-meridian-cluster']);
}

async function setBeta(enabled: boolean): Promise<void> {
  const r = await api(serveUrl, 'PUT', '/api/v1/flags/beta/regions/eu', {
    token: tokens.deployer,
    body: { enabled, percent: 100 },
  });
  if (r.status !== 200) throw new Error(`setting the flag failed: ${r.status} ${JSON.stringify(r.body)}`);
}

/** How many calls serve refused as unauthenticated (its Prometheus counter). */
async function unauthenticated(): Promise<number> {
  const m = await api(serveUrl, 'GET', '/metrics', { token: tokens.deployer });
  const line = /meridian_server_auth_failures_total\{reason="unauthenticated"\} (\d+)/.exec(String(m.body));
  return Number(line?.[1] ?? 0);
}

function ofrep(url: string, path: string, token?: string, region = 'eu'): Promise<Response> {
  return fetch(new URL(path, url), {
    method: path.endsWith('configuration') ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
    ...(path.endsWith('configuration') ? {} : { body: JSON.stringify({ context: { region } }) }),
  });
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

beforeAll(async () => {
  if (!existsSync(join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  copyFlagGatedFleet(fleet); // web gated by `beta`, placed by x-client-country
  tokens.viewer = createToken('viewer', 'reader');
  tokens.deployer = createToken('deployer', 'oncall');
  tokens.router = createToken('viewer', 'router');
  ups = await Promise.all(['local-a', 'local-b', 'local-c'].map((c) => startUpstream(c, '1.0.0')));
  writeFileSync(
    join(work, 'endpoints.json'),
    JSON.stringify({ endpoints: ups.map((u) => ({ cluster: u.cluster, service: 'web', port: u.port })) }),
  );
}, 120_000);

afterAll(async () => {
  closeAgents();
  for (const p of running) await stopProcess(p);
  await Promise.all(ups.map((u) => u.kill()));
  rmSync(work, { recursive: true, force: true });
});

describe('meridian serve --ofrep-auth', () => {
  it('refuses OFREP without a token in its error shape, answers a viewer token, says so at start', async () => {
    const s = await startServe(['--ofrep-auth']);
    serveUrl = s.url;
    expect(s.p.out()).toContain(`flags      ${serveUrl}${FLAGS} (OFREP; needs a token of any role)`);

    for (const path of [FLAGS, `${FLAGS}/beta`, 'ofrep/v1/configuration']) {
      const none = await ofrep(serveUrl, path);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate')).toContain('Bearer');
      const body = (await none.json()) as { errorDetails?: unknown; error?: { code?: string } };
      expect(body.errorDetails).toContain('this call needs a bearer token');
      expect(body.error?.code).toBe('MERIDIAN_E_API_UNAUTHENTICATED');
    }
    const garbage = await ofrep(serveUrl, FLAGS, 'mrd_nosuchtoken_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx');
    expect(garbage.status).toBe(401);

    const bulk = await ofrep(serveUrl, FLAGS, tokens.viewer);
    expect(bulk.status).toBe(200);
    const flags = ((await bulk.json()) as { flags: { key: string; value: unknown }[] }).flags;
    expect(flags).toContainEqual(expect.objectContaining({ key: 'beta', value: true }));
    const one = await ofrep(serveUrl, `${FLAGS}/beta`, tokens.viewer);
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({ key: 'beta', value: true });
  }, 60_000);

  it('two router workers each send MERIDIAN_FLAGS_TOKEN and follow the flag', async () => {
    const r = await startRouter({ MERIDIAN_FLAGS_TOKEN: tokens.viewer }, ['--workers', '2']);
    // node:cluster hands connections to the workers in turn: a run of answers asks both
    const allServedBy = async (want: (c: string) => boolean): Promise<boolean> => {
      for (let i = 0; i < 6; i++) if (!want(await clusterFor(r.port))) return false;
      return true;
    };
    await setBeta(false);
    await until(() => allServedBy((c) => c === 'local-c'), 'eu to stop serving in both workers');
    await setBeta(true);
    await until(() => allServedBy((c) => c !== 'local-c'), 'eu to serve again in both workers');
    expect(r.p.err()).not.toContain('cannot poll');
    await stopProcess(r.p);
  }, 60_000);

  it('a router with MERIDIAN_FLAGS_TOKEN gates the route on the flag it reads through authenticated OFREP', async () => {
    const r = await startRouter({ MERIDIAN_FLAGS_TOKEN: tokens.router });
    expect(['local-a', 'local-b']).toContain(await clusterFor(r.port));
    await setBeta(false);
    await until(async () => (await clusterFor(r.port)) === 'local-c', 'eu to stop serving');
    for (let i = 0; i < 10; i++) expect(await clusterFor(r.port)).toBe('local-c');
    expect(r.p.err()).not.toContain('cannot poll');

    // revoke the router's token: OFREP refuses it, the router says so once and keeps the gate it had
    const id = /^(\S+)\s+router\s+viewer/m.exec(runMeridian(['token', 'list', '--state', state], { cwd: work }).out)?.[1] ?? '';
    expect(runMeridian(['token', 'revoke', id, '--state', state], { cwd: work }).code).toBe(0);
    const revoked = await ofrep(serveUrl, FLAGS, tokens.router);
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { errorDetails?: string }).errorDetails).toBeTypeOf('string');
    await until(() => r.p.err().includes('HTTP 401'), 'the router to log the refusal');
    await setBeta(true);
    const seen = await unauthenticated();
    await until(async () => (await unauthenticated()) >= seen + 5, 'the router to be refused five more times');
    for (let i = 0; i < 10; i++) expect(await clusterFor(r.port)).toBe('local-c');
    expect(count(r.p.err(), 'HTTP 401')).toBe(1);
    expect(r.p.err()).toContain('the token was refused (revoked, expired or unknown)');
    expect(r.p.err()).toContain('meridian token create --role viewer');
    expect(r.p.err()).toContain('keeping the last flag state');
    await stopProcess(r.p);
  }, 60_000);

  it('a router without a token logs the refusal once with the fix and keeps the flag state it has', async () => {
    await setBeta(false); // the router cannot read this: it keeps the fleet file's default (on)
    const r = await startRouter({ MERIDIAN_FLAGS_TOKEN: '' });
    await until(() => r.p.err().includes('HTTP 401'), 'the router to log the refusal');
    const seen = await unauthenticated();
    await until(async () => (await unauthenticated()) >= seen + 5, 'the router to be refused five more times');
    for (let i = 0; i < 10; i++) expect(['local-a', 'local-b']).toContain(await clusterFor(r.port));
    expect(count(r.p.err(), 'HTTP 401')).toBe(1);
    expect(r.p.err()).toContain('needs a token (`meridian serve --ofrep-auth`)');
    expect(r.p.err()).toContain('MERIDIAN_FLAGS_TOKEN');
    expect(r.p.err()).toContain("keeping the fleet file's flag state");
    await stopProcess(r.p);
  }, 60_000);

  it('refuses --flags-token without --flags', () => {
    const r = runMeridian(['router', '--fleet', fleet, '--endpoints', join(work, 'endpoints.json'), '--flags-token', 'x'], {
      cwd: work,
    });
    expect(r.code).toBe(2);
    expect(r.err).toContain('--flags-token is the token for --flags');
  });
});

describe('meridian serve without --ofrep-auth', () => {
  it('answers OFREP without a token and says it is open', async () => {
    const s = await startServe([]);
    expect(s.p.out()).toContain(`${s.url}${FLAGS} (OFREP; open: read-only, no token (--ofrep-auth to require one))`);
    expect(s.p.out()).not.toContain('OFREP is open beyond loopback');
    const bulk = await ofrep(s.url, FLAGS);
    expect(bulk.status).toBe(200);
    expect(((await bulk.json()) as { flags: { key: string }[] }).flags.map((f) => f.key)).toContain('beta');
    await stopProcess(s.p);
  }, 60_000);

  it('notes an open OFREP on an address beyond loopback, and only there', () => {
    expect(ofrepLines('http://127.0.0.1:7070/', '0.0.0.0', false).note).toContain('--ofrep-auth');
    expect(ofrepLines('http://127.0.0.1:7070/', '0.0.0.0', true).note).toBeNull();
    expect(ofrepLines('http://127.0.0.1:7070/', '127.0.0.1', false).note).toBeNull();
  });
});

describe('OFREP with ofrepAuth and OIDC ID tokens', () => {
  it('accepts an ID token an --oidc rule gives the viewer role, and refuses one for another audience', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    let issuer = '';
    const idp = createServer((req, res) => {
      const body =
        req.url === '/.well-known/openid-configuration'
          ? { issuer, jwks_uri: `${issuer}/jwks` }
          : req.url === '/jwks'
            ? { keys: [jwk] }
            : {};
      res.writeHead(req.url === '/' ? 404 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    const sw = await serverWorld({
      ofrepAuth: true,
      oidc: { rules: [{ issuer, audience: 'meridian', role: 'viewer', claims: { repository: 'acme/fleet' }, identityClaim: 'sub' }] },
    });
    try {
      const sign = (aud: string): Promise<string> =>
        new SignJWT({ repository: 'acme/fleet' })
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(issuer)
          .setAudience(aud)
          .setSubject('repo:acme/fleet:ref:refs/heads/main')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(privateKey);
      const ok = await ofrep(sw.url, FLAGS, await sign('meridian'), 'eu-west');
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { flags: { key: string }[] }).flags.map((f) => f.key)).toContain('new-checkout');
      const other = await ofrep(sw.url, FLAGS, await sign('someone-else'), 'eu-west');
      expect(other.status).toBe(401);
      const body = (await other.json()) as { errorDetails?: unknown; error?: { code?: string } };
      expect(body.errorDetails).toBeTypeOf('string');
      expect(body.error?.code).toBe('MERIDIAN_E_API_UNAUTHENTICATED');
      expect((await ofrep(sw.url, FLAGS, sw.tokens.viewer, 'eu-west')).status).toBe(200);
      expect((await ofrep(sw.url, FLAGS, undefined, 'eu-west')).status).toBe(401);
    } finally {
      await sw.close();
      idp.close();
    }
  }, 60_000);
});
