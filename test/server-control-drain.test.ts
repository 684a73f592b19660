/**
 * `meridian serve --control URL` in its own process drains the router of a running `meridian up`: a drain
 * through the REST API stops real requests reaching the cluster, an undrain brings them back, the drains
 * in force reach the router again when it lost them or when the server restarts, and a control API that
 * does not answer makes the REST call fail with its own code. Real processes; needs a fresh build.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, until } from './support/server-kit.js';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'meridian.js');
const work = mkdtempSync(join(tmpdir(), 'meridian-control-drain-'));
const fleet = join(work, 'shop');
cpSync(join(root, 'examples', 'shop'), fleet, { recursive: true });
// these drains are maintenance, repeated within minutes: the example's 5-minute hold-down would refuse them
const recoveryFile = join(fleet, 'recovery.yaml');
writeFileSync(recoveryFile, readFileSync(recoveryFile, 'utf8').replace('holdDown: 5m', 'holdDown: 0s'));
const env = { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ops' };
const servers: ChildProcess[] = [];

interface UpInfo {
  readonly router: string;
  readonly control: string;
  readonly token: string;
}
let info: UpInfo;

function meridian(args: string[]): CliRun {
  return runMeridian(args, { cwd: work, env, timeout: 150_000 });
}

/** `meridian serve shop --control` in its own process; resolves with its URL and local admin token. */
async function serve(): Promise<{ child: ChildProcess; url: string; admin: string; err: () => string }> {
  const child = spawn(
    process.execPath,
    [bin, 'serve', 'shop', '--port', '0', '--state', join(work, 'server.db'), '--control', info.control, '--print-admin-token'],
    { cwd: work, env: { ...env, MERIDIAN_CONTROL_TOKEN: info.token }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  servers.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  await until(() => /control plane on http:\/\/\S+/.test(out) && /admin\s+mrl_\S+/.test(out), 'the server to start', 30_000);
  return {
    child,
    url: /control plane on (http:\/\/\S+)/.exec(out)?.[1] ?? '',
    admin: /admin\s+(mrl_\S+)/.exec(out)?.[1] ?? '',
    err: () => err,
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const gone = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  await gone;
}

/** The clusters that answered (200) `n` real requests from Germany through the fleet's router. */
async function clustersServing(n = 40): Promise<Set<string>> {
  const answers = await Promise.all(
    Array.from({ length: n }, async () => {
      const res = await fetch(info.router, { headers: { 'x-client-country': 'DE' } });
      await res.text();
      return res.status === 200 ? (res.headers.get('x-meridian-cluster') ?? '(none)') : null;
    }),
  );
  return new Set(answers.filter((a) => a !== null));
}

beforeAll(async () => {
  const up = meridian(['up', 'shop', '--detach', '--port', '0', '--no-server']);
  expect(up.code, up.err).toBe(0);
  info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as UpInfo;
  await until(async () => (await clustersServing(5)).size > 0, 'the fleet to serve', 60_000);
}, 180_000);

afterAll(async () => {
  for (const s of servers) await stop(s);
  meridian(['down']);
  for (const pid of replicaPids(fleet)) process.kill(pid, 'SIGKILL'); // any replica \`down\` left
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('drains from a separate `meridian serve --control` reach the local fleet’s router', () => {
  let drainedCluster = '';

  it('a drain stops requests reaching the cluster at once; an undrain brings them back', async () => {
    const s = await serve();
    try {
      await until(
        async () => {
          const cl = (await api(s.url, 'GET', '/api/v1/clusters', { token: s.admin })).body as { reachable: boolean; healthy: boolean }[];
          return cl.length > 0 && cl.every((c) => c.reachable && c.healthy);
        },
        'every cluster healthy',
        60_000,
      );
      const before = await clustersServing();
      const first = [...before].sort()[0];
      expect(first).toBeDefined();
      drainedCluster = first ?? '';

      const d = await api(s.url, 'POST', `/api/v1/clusters/${drainedCluster}/drain`, {
        token: s.admin,
        body: { drained: true, reason: 'test' },
      });
      expect(d.status).toBe(200);
      expect(d.body).toMatchObject({ name: drainedCluster, kind: 'cluster', drained: true });
      // in force when the call returns: the control API answers after the router's table is rebuilt
      const during = await clustersServing();
      expect(during.has(drainedCluster)).toBe(false);
      expect(during.size).toBeGreaterThan(0);
      const told = await api(info.control, 'GET', '/v1/router/drained', { token: info.token });
      expect(told.body).toEqual({ drained: [{ kind: 'cluster', name: drainedCluster, reason: 'test' }] });

      const u = await api(s.url, 'POST', `/api/v1/clusters/${drainedCluster}/drain`, { token: s.admin, body: { drained: false } });
      expect(u.status).toBe(200);
      await until(async () => (await clustersServing()).has(drainedCluster), 'traffic to return to the undrained cluster', 30_000);
      expect((await api(info.control, 'GET', '/v1/router/drained', { token: info.token })).body).toEqual({ drained: [] });

      // a region too
      const r = await api(s.url, 'POST', '/api/v1/regions/eu-central/drain', { token: s.admin, body: { drained: true } });
      expect(r.status).toBe(200);
      const noCentral = await clustersServing();
      expect([...noCentral].some((c) => c.startsWith('eu-central-'))).toBe(false);
      expect((await api(s.url, 'POST', '/api/v1/regions/eu-central/drain', { token: s.admin, body: { drained: false } })).status).toBe(200);
    } finally {
      await stop(s.child);
    }
  }, 180_000);

  it('the router gets the drains in force again: when it lost one, and when the server restarts', async () => {
    const s = await serve();
    try {
      expect(
        (await api(s.url, 'POST', `/api/v1/clusters/${drainedCluster}/drain`, { token: s.admin, body: { drained: true } })).status,
      ).toBe(200);
      expect((await clustersServing()).has(drainedCluster)).toBe(false);
      // the router loses the drain (as a restarted `meridian up` would): the server's next look puts it back
      const lost = await api(info.control, 'POST', '/v1/router/drain', {
        token: info.token,
        body: { kind: 'cluster', name: drainedCluster, drained: false },
      });
      expect(lost.status).toBe(200);
      await until(
        async () =>
          ((await api(info.control, 'GET', '/v1/router/drained', { token: info.token })).body as { drained: unknown[] }).drained.length ===
          1,
        'the server to send the drain again',
        30_000,
      );
      expect((await clustersServing()).has(drainedCluster)).toBe(false);
    } finally {
      await stop(s.child);
    }
    // with no server running, the router loses it again; a server that starts sends the recorded drains
    await api(info.control, 'POST', '/v1/router/drain', {
      token: info.token,
      body: { kind: 'cluster', name: drainedCluster, drained: false },
    });
    expect((await api(info.control, 'GET', '/v1/router/drained', { token: info.token })).body).toEqual({ drained: [] });
    const again = await serve();
    try {
      await until(
        async () =>
          ((await api(info.control, 'GET', '/v1/router/drained', { token: info.token })).body as { drained: unknown[] }).drained.length ===
          1,
        'the restarted server to send the recorded drain',
        30_000,
      );
      expect((await clustersServing()).has(drainedCluster)).toBe(false);
      expect(
        (await api(again.url, 'POST', `/api/v1/clusters/${drainedCluster}/drain`, { token: again.admin, body: { drained: false } })).status,
      ).toBe(200);
      expect((await api(info.control, 'GET', '/v1/router/drained', { token: info.token })).body).toEqual({ drained: [] });
    } finally {
      await stop(again.child);
    }
  }, 180_000);

  it('the control API keeps its token: a drain without it is refused', async () => {
    const res = await api(info.control, 'POST', '/v1/router/drain', { body: { kind: 'cluster', name: drainedCluster, drained: true } });
    expect(res.status).toBe(401);
    expect((await api(info.control, 'GET', '/v1/router/drained', { token: info.token })).body).toEqual({ drained: [] });
    const bad = await api(info.control, 'POST', '/v1/router/drain', {
      token: info.token,
      body: { kind: 'zone', name: 'x', drained: true },
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'MERIDIAN_E_CONTROL_BAD_REQUEST', message: 'kind must be cluster or region' });
  });

  it('with the control API down, the REST call fails with MERIDIAN_E_API_FLEET_ROUTER', async () => {
    const s = await serve();
    try {
      expect(meridian(['down']).code).toBe(0);
      const res = await api(s.url, 'POST', `/api/v1/clusters/${drainedCluster}/drain`, { token: s.admin, body: { drained: true } });
      expect(res.status).toBe(502);
      const error = (res.body as { error: { code: string; message: string; hint: string } }).error;
      expect(error.code).toBe('MERIDIAN_E_API_FLEET_ROUTER');
      expect(error.message).toContain(`the drain of cluster ${drainedCluster} is recorded`);
      expect(error.message).toContain(`the control API at ${info.control}`);
      expect(error.hint).toContain('meridian up');
      // recorded all the same: routers that follow the server apply it
      const routing = (await api(s.url, 'GET', '/api/v1/routing', { token: s.admin })).body as { drained: string[] };
      expect(routing.drained).toEqual([drainedCluster]);
    } finally {
      await stop(s.child);
    }
  }, 120_000);
});
