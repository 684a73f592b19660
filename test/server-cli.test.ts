/**
 * The CLI around the control plane, as real processes: `meridian token create|list|revoke` on a SQLite
 * store, `meridian serve` with that token (API, dashboard page with its security headers), and
 * `meridian router --server` following it. Needs a fresh build (`npx tsc -p tsconfig.json`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, until } from './support/server-kit.js';
import { TRUST_LOOPBACK_FLAGS } from './support/router-kit.js';

const BIN = resolve('bin/meridian.js');
const work = mkdtempSync(join(tmpdir(), 'meridian-server-cli-'));
const state = join(work, 'state.db');
const env = { ...process.env, MERIDIAN_ACTOR: 'tester', NO_COLOR: '1' };
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.pid) {
      const gone = new Promise((r) => c.once('exit', r));
      process.kill(c.pid, 'SIGTERM');
      await gone;
    }
  }
  rmSync(work, { recursive: true, force: true });
});

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, env, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts a long-running command and collects its output. */
function start(args: string[]): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  return { child, out: () => out, err: () => err };
}

describe('meridian token, serve and router --server', () => {
  let admin = '';
  let viewer = '';
  let url = '';

  it('token create prints a token once; list shows it without the secret; a bad role is refused', () => {
    const a = run(['token', 'create', '--role', 'admin', '--name', 'root', '--state', state]);
    expect(a.code).toBe(0);
    admin = a.out.trim();
    expect(admin).toMatch(/^mrd_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
    expect(a.err).toContain('shown only this once');
    const v = run(['token', 'create', '--role', 'viewer', '--name', 'router', '--state', state, '-o', 'json']);
    viewer = (JSON.parse(v.out) as { token: string }).token;
    const list = run(['token', 'list', '--state', state]);
    expect(list.out).toMatch(/root\s+admin/);
    expect(list.out).not.toContain(admin.slice(16));
    const bad = run(['token', 'create', '--role', 'god', '--name', 'x', '--state', state]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--role must be one of viewer, deployer, approver, admin');
  }, 60_000);

  it('serve answers the API with the token, refuses without, and serves the dashboard page with its headers', async () => {
    const s = start(['serve', resolve('examples/shop'), '--port', '0', '--state', state, '--print-admin-token']);
    await until(() => /control plane on (http:\/\/\S+)/.test(s.out()), 'the server to start', 30_000);
    url = /control plane on (http:\/\/\S+)/.exec(s.out())?.[1] ?? '';
    expect(s.out()).toMatch(/admin\s+mrl_/);
    expect((await api(url, 'GET', '/api/v1/whoami', { token: admin })).body).toMatchObject({ identity: 'root', roles: ['admin'] });
    expect((await api(url, 'GET', '/api/v1/fleet')).status).toBe(401);
    const fleet = await api(url, 'GET', '/api/v1/fleet', { token: viewer });
    expect(fleet.body).toMatchObject({ name: 'shop' });
    const localAdmin = /admin\s+(mrl_\S+)/.exec(s.out())?.[1] ?? '';
    expect((await api(url, 'GET', '/api/v1/whoami', { token: localAdmin })).body).toMatchObject({ identity: 'tester', via: 'local' });
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('<html');
  }, 60_000);

  it('a router started with --server follows the server and applies a drain', async () => {
    const r = start([
      'router',
      '--server',
      url,
      '--token',
      viewer,
      '--port',
      '0',
      '--no-health-checks',
      '--no-geoip',
      ...TRUST_LOOPBACK_FLAGS,
    ]);
    await until(() => /listening on http:\/\/\S+, following/.test(r.out()), 'the router to start', 30_000);
    await until(() => r.err().includes('following the control plane'), 'the stream');
    const d = await api(url, 'POST', '/api/v1/regions/eu-west/drain', { token: admin, body: { drained: true } });
    expect(d.status).toBe(200);
    const version = (d.body as { tableVersion: number }).tableVersion;
    await until(() => r.err().includes(`routing table ${version} applied`), 'the drain to reach the router');
    expect(r.err()).toMatch(/1 drained/);
  }, 60_000);

  it('token revoke stops a token', async () => {
    const id = /^(\S+)\s+router\s+viewer/m.exec(run(['token', 'list', '--state', state]).out)?.[1] ?? '';
    expect(run(['token', 'revoke', id, '--state', state]).code).toBe(0);
    expect((await api(url, 'GET', '/api/v1/whoami', { token: viewer })).status).toBe(401);
  }, 60_000);
});
