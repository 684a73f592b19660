import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretResolutionError, TargetError } from '../src/targets/errors.js';
import { checkOnce, HealthCounter } from '../src/targets/local/health-checker.js';
import type { LocalTargetOptions } from '../src/targets/local/local-options.js';
import { LocalTarget } from '../src/targets/local/local-target.js';
import type { LocalReplicaStatus } from '../src/targets/local/replicas.js';
import { PortAllocator } from '../src/targets/local/port-allocator.js';
import { type Clock, describeExit, ProcessSupervisor } from '../src/targets/local/process-supervisor.js';
import { backoffDelay, RestartBackoff } from '../src/backoff.js';
import { parseDotenv, SecretResolver, SecretValue } from '../src/targets/local/secret-resolver.js';
import { isHealthyAt, type TargetEvent, trackStatus, waitForStatus } from '../src/targets/target.js';
import {
  contractCluster,
  echoService,
  FIXTURE_DIR,
  getJson,
  isAlive,
  renderedCluster,
  waitGone,
} from './fixtures/local-services/cluster.js';
import { targetContract } from './targets.contract.js';

const FAST = { intervalMs: 100, startupIntervalMs: 50, timeoutMs: 500 } as const;
const open: LocalTarget[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha = (v: string): string => createHash('sha256').update(v).digest('hex');

function target(opts: Partial<LocalTargetOptions> = {}): LocalTarget {
  const t = new LocalTarget({ fleetDir: FIXTURE_DIR, graceMs: 1000, health: FAST, ...opts });
  open.push(t);
  return t;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

targetContract('local', async () => {
  const t = new LocalTarget({ fleetDir: FIXTURE_DIR, graceMs: 1000, health: FAST });
  return {
    target: t,
    cluster: contractCluster,
    fetch: (e) => getJson(e.port),
    timeoutMs: 10_000,
    settleMs: 500,
    close: () => t.close(),
  };
});

describe('local driver: what each replica gets', () => {
  it('starts replicas with PORT, MERIDIAN_*, the rendered env and config and the resolved secrets, in the fleet directory', async () => {
    const t = target({ env: { PATH: process.env['PATH'], API_TOKEN_FROM_SHELL: 'tok-from-env', UNRELATED_PARENT_VAR: 'x' } });
    const state = renderedCluster({
      web: echoService({
        version: '1.2.3',
        replicas: 2,
        env: { LOG_LEVEL: 'debug', PORT: '9999', MERIDIAN_CLUSTER: 'spoofed', ECHO_HASH: 'DB_PASSWORD,API_TOKEN,STRIPE_KEY,WHOLE,PORT' },
        config: { CHECKOUT_TIMEOUT: '5s' },
        secrets: {
          DB_PASSWORD: { ref: 'file:secrets/app.env#DB_PASSWORD' },
          API_TOKEN: { ref: 'env:API_TOKEN_FROM_SHELL' },
          STRIPE_KEY: { ref: 'file:secrets/app.yaml#stripe.key' },
          WHOLE: { ref: 'file:secrets/whole.txt' },
        },
      }),
    });
    await t.apply({ cluster: 'eu-west-1', revisionId: 'rev-env', state, track: 'canary' });
    await waitForStatus(t, 'eu-west-1', (s) => isHealthyAt(s, 'web', 'canary', 'rev-env'), { timeoutMs: 10_000 });
    const endpoints = t.endpoints('eu-west-1');
    expect(endpoints).toHaveLength(2);
    const replicas = new Set<string>();
    for (const e of endpoints) {
      const body = await getJson(e.port);
      expect(body).toMatchObject({
        service: 'web',
        version: '1.2.3',
        cluster: 'eu-west-1',
        region: 'eu-west',
        track: 'canary',
        port: e.port,
        cwd: FIXTURE_DIR,
      });
      replicas.add(String(body['replica']));
      const names = body['envNames'] as string[];
      for (const n of [
        'PORT',
        'MERIDIAN_SERVICE',
        'MERIDIAN_VERSION',
        'MERIDIAN_CLUSTER',
        'MERIDIAN_REGION',
        'MERIDIAN_TRACK',
        'LOG_LEVEL',
        'CHECKOUT_TIMEOUT',
        'DB_PASSWORD',
        'API_TOKEN',
        'STRIPE_KEY',
        'WHOLE',
        'PATH',
      ]) {
        expect(names).toContain(n);
      }
      expect(names).not.toContain('UNRELATED_PARENT_VAR');
      expect(body['hashes']).toEqual({
        DB_PASSWORD: sha('s3cret-from-dotenv'),
        API_TOKEN: sha('tok-from-env'),
        STRIPE_KEY: sha('sk-from-yaml'),
        WHOLE: sha('whole-file-secret'),
        PORT: sha(String(e.port)), // the driver's port wins over a rendered PORT
      });
    }
    expect([...replicas].sort()).toEqual(['0', '1']);
    // no secret value anywhere in what the driver reports
    const reported = JSON.stringify([await t.status('eu-west-1'), t.endpoints('eu-west-1')]);
    for (const v of ['s3cret-from-dotenv', 'tok-from-env', 'sk-from-yaml', 'whole-file-secret']) expect(reported).not.toContain(v);
  });

  it('caps replicas per service (default 2, configurable)', async () => {
    const t = target({ maxReplicasPerService: 1 });
    await t.apply({
      cluster: 'c',
      revisionId: 'r',
      state: renderedCluster({ web: echoService({ version: '1.0.0', replicas: 5 }) }),
      track: 'stable',
    });
    const s = await waitForStatus(t, 'c', (x) => isHealthyAt(x, 'web', 'stable', 'r'), { timeoutMs: 10_000 });
    expect(trackStatus(s, 'web', 'stable')).toMatchObject({ desiredReplicas: 1, readyReplicas: 1 });
    const t2 = target();
    await t2.apply({
      cluster: 'c',
      revisionId: 'r',
      state: renderedCluster({ web: echoService({ version: '1.0.0', replicas: 5 }) }),
      track: 'stable',
    });
    expect(trackStatus(await t2.status('c'), 'web', 'stable')?.desiredReplicas).toBe(2);
  });

  it('refuses vault: references, missing commands and unknown services before starting anything', async () => {
    const t = target();
    const vault = renderedCluster({
      ok: echoService({ version: '1.0.0' }),
      web: echoService({ version: '1.0.0', secrets: { DB: { ref: 'vault:kv/web/db#password' } } }),
    });
    const err = await t.apply({ cluster: 'c', revisionId: 'r', state: vault, track: 'stable' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretResolutionError);
    expect((err as SecretResolutionError).code).toBe('MERIDIAN_E_TARGET_SECRET_PROVIDER');
    expect((err as Error).message).toMatch(/local driver resolves only env: and file: references/);
    expect(t.pids()).toEqual([]);
    expect(await t.status('c')).toEqual({ cluster: 'c', services: {} });

    const noCommand = renderedCluster({ web: echoService({ version: '1.0.0', local: null }) });
    await expect(t.apply({ cluster: 'c', revisionId: 'r', state: noCommand, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_NO_LOCAL_COMMAND',
    });
    await expect(t.apply({ cluster: 'c', revisionId: 'r', state: noCommand, track: 'stable', services: ['nope'] })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_UNKNOWN_SERVICE',
    });
    const badCwd = renderedCluster({
      web: echoService({ version: '1.0.0', local: { command: ['node', 'echo.mjs'], cwd: 'does-not-exist' } }),
    });
    await expect(t.apply({ cluster: 'c', revisionId: 'r', state: badCwd, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_NO_CWD',
    });
    expect(t.pids()).toEqual([]);
  });

  it('redacts secret values from what a crashing replica wrote', async () => {
    const t = target({ backoff: { initialMs: 5000 } });
    const state = renderedCluster({
      leaky: echoService({
        version: '1.0.0',
        local: { command: ['node', '-e', 'console.error("password is " + process.env.DB_PASSWORD); process.exit(3)'] },
        secrets: { DB_PASSWORD: { ref: 'file:secrets/app.env#DB_PASSWORD' } },
      }),
    });
    const lines: string[] = [];
    const t2 = target({ backoff: { initialMs: 5000 }, onOutput: (l) => lines.push(l.line) });
    await t.apply({ cluster: 'c', revisionId: 'r', state, track: 'stable' });
    await t2.apply({ cluster: 'c', revisionId: 'r', state, track: 'stable' });
    const s = await waitForStatus(t, 'c', (x) => trackStatus(x, 'leaky', 'stable')?.lastError != null, { timeoutMs: 10_000 });
    const lastError = trackStatus(s, 'leaky', 'stable')?.lastError ?? '';
    expect(lastError).toContain('exited with code 3: password is [secret]');
    expect(lastError).not.toContain('s3cret');
    await waitForStatus(t2, 'c', () => lines.length > 0, { timeoutMs: 10_000 });
    expect(lines).toEqual(['password is [secret]']);
  });
});

describe('local driver: supervision', () => {
  it('restarts a crashing replica with growing backoff and counts restarts', async () => {
    const t = target({ backoff: { initialMs: 100, factor: 2, jitter: 0, maxMs: 10_000 } });
    const events: TargetEvent[] = [];
    t.subscribe((e) => events.push(e));
    const state = renderedCluster({ flaky: echoService({ version: '1.0.0', env: { FAULT_START: 'crash' } }) });
    await t.apply({ cluster: 'c', revisionId: 'r', state, track: 'stable' });
    const s = await waitForStatus(t, 'c', (x) => (trackStatus(x, 'flaky', 'stable')?.restarts ?? 0) >= 3, { timeoutMs: 15_000 });
    const restarting = events.filter((e) => e.type === 'replica-restarting');
    expect(restarting.slice(0, 3).map((e) => [e.attempt, e.delayMs])).toEqual([
      [1, 100],
      [2, 200],
      [3, 400],
    ]);
    // the restarts really waited that long
    const exits = events.filter((e) => e.type === 'replica-exited').map((e) => e.at);
    const starts = events.filter((e) => e.type === 'replica-started').map((e) => e.at);
    expect((starts[3] ?? 0) - (exits[2] ?? 0)).toBeGreaterThanOrEqual(390);
    const flaky = trackStatus(s, 'flaky', 'stable');
    expect(flaky).toMatchObject({ healthy: false, readyReplicas: 0, consecutiveHealthyChecks: 0 });
    expect(flaky?.lastError).toMatch(/exited with code 1: crashing on start as asked/);
  });

  it('reports a dead replica within a second, then restarts it and becomes healthy again', async () => {
    const t = target({ backoff: { initialMs: 50, jitter: 0 } });
    const state = renderedCluster({ web: echoService({ version: '1.0.0', replicas: 1 }) });
    await t.apply({ cluster: 'c', revisionId: 'r', state, track: 'stable' });
    await waitForStatus(t, 'c', (x) => isHealthyAt(x, 'web', 'stable', 'r', 2), { timeoutMs: 10_000 });
    const [endpoint] = t.endpoints('c');
    const pid = (await getJson(endpoint?.port ?? 0))['pid'] as number;
    const events: TargetEvent[] = [];
    t.subscribe((e) => events.push(e));
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await waitForStatus(t, 'c', () => events.some((e) => e.type === 'track-unhealthy'), { timeoutMs: 1000, intervalMs: 10 });
    const exited = events.find((e) => e.type === 'replica-exited');
    expect(exited?.reason).toBe('killed by SIGKILL');
    expect((exited?.at ?? Infinity) - killedAt).toBeLessThan(1000);
    const s = await waitForStatus(t, 'c', (x) => isHealthyAt(x, 'web', 'stable', 'r'), { timeoutMs: 10_000 });
    expect(trackStatus(s, 'web', 'stable')?.restarts).toBe(1);
    expect(events.map((e) => e.type)).toEqual([
      'replica-exited',
      'track-unhealthy',
      'replica-restarting',
      'replica-started',
      'replica-ready',
      'track-healthy',
    ]);
  });

  it('replicas killed together come back a few at a time: at most restartConcurrency start at once, and all are ready again', async () => {
    const t = target({ restartConcurrency: 2, backoff: { initialMs: 50, jitter: 0 } });
    const services = { a: echoService({ version: '1.0.0', replicas: 2 }), b: echoService({ version: '1.0.0', replicas: 2 }) };
    const state = renderedCluster({ ...services, c: echoService({ version: '1.0.0', replicas: 2 }) });
    await t.apply({ cluster: 'c', revisionId: 'r', state, track: 'stable' });
    const allReady = (x: Awaited<ReturnType<LocalTarget['status']>>): boolean =>
      ['a', 'b', 'c'].every((svc) => isHealthyAt(x, svc, 'stable', 'r'));
    await waitForStatus(t, 'c', allReady, { timeoutMs: 15_000 });
    const starting = new Set<string>();
    let most = 0;
    let restarted = 0;
    t.subscribe((e) => {
      const id = `${e.service}/${e.replica ?? ''}`;
      if (e.type === 'replica-started') {
        restarted++;
        starting.add(id);
        most = Math.max(most, starting.size);
      } else if (e.type === 'replica-ready' || e.type === 'replica-exited') starting.delete(id);
    });
    const pids = t.pids();
    expect(pids).toHaveLength(6);
    for (const pid of pids) process.kill(-pid, 'SIGKILL');
    await waitForStatus(t, 'c', (x) => restarted >= 6 && allReady(x), { timeoutMs: 20_000, intervalMs: 10 });
    expect(most).toBe(2); // without the limit, all six start together after the same backoff
    expect(t.pids().filter((p) => pids.includes(p))).toEqual([]);
  });

  it('a restarted process keeps its place until it is reported started, or its hold time ends (injected clock)', async () => {
    let now = 0;
    const timers: { fn: () => void; due: number; live: boolean }[] = [];
    const clock: Clock = {
      now: () => now,
      setTimeout: (fn, ms) => {
        const t = { fn, due: now + ms, live: true };
        timers.push(t);
        return t;
      },
      clearTimeout: (h) => void ((h as { live: boolean }).live = false),
      random: () => 0.5,
    };
    /** Moves the clock to `to` and fires the timers due by then. */
    const advance = (to: number): void => {
      now = to;
      for (const t of timers.filter((x) => x.live && x.due <= now)) {
        t.live = false;
        t.fn();
      }
    };
    const sup = new ProcessSupervisor({ clock, backoff: { initialMs: 100, jitter: 0 }, restartConcurrency: 1, restartHoldMs: 1000 });
    const cmd = { command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], cwd: FIXTURE_DIR, env: {} };
    const runs = new Map<string, number>();
    const exits: Promise<void>[] = [];
    const procs = ['p', 'q', 'r'].map((name) => {
      let exited: () => void = () => undefined;
      exits.push(new Promise<void>((r) => (exited = r)));
      const p = sup.supervise(cmd, {
        spawned: (_pid, run) => runs.set(name, run),
        restarting: () => exited(),
      });
      p.start();
      return p;
    });
    for (const p of procs) p.signalSync('SIGKILL');
    await Promise.all(exits);
    const restartedRuns = (): number => [...runs.values()].filter((run) => run === 2).length;
    advance(100); // every backoff is over: one restarts, two wait
    expect(restartedRuns()).toBe(1);
    expect([sup.starting, sup.waiting]).toEqual([1, 2]);
    const first = procs.find((p) => p.run === 2);
    first?.started(); // up: the next one goes
    expect(restartedRuns()).toBe(2);
    advance(1099); // the second is not reported started, and its hold time is not over
    expect(restartedRuns()).toBe(2);
    advance(1100);
    expect(restartedRuns()).toBe(3);
    expect(sup.waiting).toBe(0);
    const stopped = sup.stopAll();
    advance(1100 + 5000); // the grace period, for a process signalled before its command ran
    await stopped;
  });

  it('replaces replicas rolling when the rendered spec changes, never dropping below the desired ready count', async () => {
    const t = target();
    const v1 = renderedCluster({ web: echoService({ version: '1.0.0', replicas: 2, config: { MODE: 'a' } }) });
    await t.apply({ cluster: 'c', revisionId: 'r1', state: v1, track: 'stable' });
    await waitForStatus(t, 'c', (x) => isHealthyAt(x, 'web', 'stable', 'r1'), { timeoutMs: 10_000 });
    const oldPids = t.pids();
    const v2 = renderedCluster({ web: echoService({ version: '1.0.0', replicas: 2, config: { MODE: 'b' } }) });
    await t.apply({ cluster: 'c', revisionId: 'r2', state: v2, track: 'stable' });
    let minReady = Infinity;
    await waitForStatus(
      t,
      'c',
      (x) => {
        minReady = Math.min(minReady, t.endpoints('c').filter((e) => e.healthy).length);
        return isHealthyAt(x, 'web', 'stable', 'r2') && t.endpoints('c').every((e) => e.revisionId === 'r2');
      },
      { timeoutMs: 10_000, intervalMs: 5 },
    );
    expect(minReady).toBeGreaterThanOrEqual(2);
    await waitForStatus(t, 'c', () => t.pids().every((p) => !oldPids.includes(p)), { timeoutMs: 3000 });
    expect(await waitGone(oldPids, 1000)).toEqual([]);
    // scaling is not a replacement
    const scaled = renderedCluster({ web: echoService({ version: '1.0.0', replicas: 1, config: { MODE: 'b' } }) });
    const before = t.pids();
    await t.apply({ cluster: 'c', revisionId: 'r3', state: scaled, track: 'stable' });
    await waitForStatus(t, 'c', () => t.pids().length === 1, { timeoutMs: 5000 });
    expect(before).toContain(t.pids()[0]);
  });

  it('stops a replica that ignores SIGTERM with SIGKILL after the grace period, with its children', async () => {
    const t = target({ graceMs: 400 });
    const state = renderedCluster({ stubborn: echoService({ version: '1.0.0', env: { IGNORE_SIGTERM: '1', GRANDCHILD: '1' } }) });
    await t.apply({ cluster: 'c', revisionId: 'r', state, track: 'stable' });
    await waitForStatus(t, 'c', (x) => isHealthyAt(x, 'stubborn', 'stable', 'r'), { timeoutMs: 10_000 });
    const body = await getJson(t.endpoints('c')[0]?.port ?? 0);
    const pids = [...t.pids(), body['pid'] as number, body['grandchild'] as number];
    const started = Date.now();
    await t.remove({ cluster: 'c' });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(3000);
    expect(await waitGone(pids, 1000)).toEqual([]);
  });

  it('close() stops every replica of every cluster and refuses further work', async () => {
    const t = target();
    for (const c of ['a', 'b']) {
      await t.apply({
        cluster: c,
        revisionId: 'r',
        state: renderedCluster({ web: echoService({ version: '1.0.0', replicas: 2, env: { GRANDCHILD: '1' } }) }),
        track: 'stable',
      });
    }
    await waitForStatus(t, 'a', (x) => isHealthyAt(x, 'web', 'stable', 'r'), { timeoutMs: 10_000 });
    await waitForStatus(t, 'b', (x) => isHealthyAt(x, 'web', 'stable', 'r'), { timeoutMs: 10_000 });
    const pids = [...t.pids()];
    for (const c of ['a', 'b']) {
      for (const e of t.endpoints(c)) {
        const body = await getJson(e.port);
        pids.push(body['pid'] as number, body['grandchild'] as number);
      }
    }
    expect(pids).toHaveLength(12);
    await Promise.all([t.close(), t.close()]);
    expect(await waitGone(pids, 1000)).toEqual([]);
    expect(t.pids()).toEqual([]);
    expect(t.clusters()).toEqual([]);
    await expect(t.apply({ cluster: 'a', revisionId: 'r', state: renderedCluster({}), track: 'stable' })).rejects.toBeInstanceOf(
      TargetError,
    );
  });
});

describe('local driver: no orphans when the parent dies', () => {
  const hosts: ChildProcess[] = [];
  afterEach(() => {
    for (const h of hosts.splice(0)) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
  });

  async function startHost(opts: object): Promise<{ host: ChildProcess; pids: number[]; exited: Promise<[number | null, string | null]> }> {
    const host = spawn(process.execPath, ['--import', 'tsx', join(FIXTURE_DIR, 'driver-host.ts'), JSON.stringify(opts)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hosts.push(host);
    const exited = new Promise<[number | null, string | null]>((r) => host.once('exit', (code, signal) => r([code, signal])));
    let out = '';
    let err = '';
    host.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      host.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(out.slice(0, nl));
      });
      void exited.then(([code]) => reject(new Error(`driver host exited (${code}) before it was ready: ${err}`)));
    });
    const info = JSON.parse(line) as { leaders: number[]; services: number[]; grandchildren: number[] };
    const pids = [...info.leaders, ...info.services, ...info.grandchildren];
    return { host, pids, exited };
  }

  it('SIGKILL of the driver process: every replica, and its children, is gone within seconds', async () => {
    const { host, pids, exited } = await startHost({ services: 2, replicas: 2, graceMs: 1000, env: { GRANDCHILD: '1' } });
    expect(pids).toHaveLength(12);
    expect(pids.every(isAlive)).toBe(true);
    host.kill('SIGKILL');
    await exited;
    expect(await waitGone(pids, 5000)).toEqual([]);
  });

  it('SIGKILL of the driver process also ends replicas that ignore SIGTERM, after the grace period', async () => {
    const { host, pids, exited } = await startHost({ services: 1, replicas: 1, graceMs: 500, env: { IGNORE_SIGTERM: '1' } });
    host.kill('SIGKILL');
    await exited;
    await sleep(200);
    expect(pids.some(isAlive)).toBe(true); // still within the grace period
    expect(await waitGone(pids, 5000)).toEqual([]);
  });

  it('SIGTERM (and SIGINT) of the driver process: it stops every replica, then exits 128+signal', async () => {
    for (const [signal, code] of [
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const) {
      const { host, pids, exited } = await startHost({ services: 1, replicas: 2, env: { GRANDCHILD: '1' } });
      host.kill(signal);
      const [exitCode] = await exited;
      expect(exitCode).toBe(code);
      // the driver waited for its replicas before exiting
      expect(pids.filter(isAlive)).toEqual([]);
    }
  });
});

describe('local driver parts', () => {
  it('backoff grows exponentially, is capped, jittered within bounds, and resets after a stable run', () => {
    const p = { initialMs: 100, factor: 2, maxMs: 1000, jitter: 0.2, resetAfterMs: 5000 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, p, () => 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(1, p, () => 0)).toBe(80);
    expect(backoffDelay(1, p, () => 0.999999)).toBe(120);
    expect(backoffDelay(10, p, () => 0.999999)).toBe(1000);
    const b = new RestartBackoff(p, () => 0.5);
    expect([b.next(10), b.next(10), b.next(10)]).toEqual([100, 200, 400]);
    expect(b.next(6000)).toBe(100); // ran 6 s: stable, starts over
    expect(b.attempt).toBe(1);
  });

  it('allocates distinct free loopback ports and takes them back', async () => {
    const ports = new PortAllocator();
    const got = await Promise.all(Array.from({ length: 20 }, () => ports.allocate()));
    expect(new Set(got).size).toBe(20);
    for (const p of got) expect(p).toBeGreaterThan(0);
    ports.release(got[0] ?? 0);
    expect(ports.allocated.size).toBe(19);
  });

  it('health checks: 2xx/3xx pass, 5xx, timeouts and refused connections fail; TCP when there is no path', async () => {
    const server: Server = createServer((req, res) => {
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 500);
      res.statusCode = req.url === '/ok' ? 200 : req.url === '/redirect' ? 302 : 503;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const at = (path: string | null, timeoutMs = 1000) => checkOnce({ host: '127.0.0.1', port, path, timeoutMs });
      expect(await at('/ok')).toEqual({ ok: true });
      expect(await at('/redirect')).toEqual({ ok: true });
      expect(await at('/bad')).toEqual({ ok: false, reason: 'HTTP 503 from /bad' });
      expect(await at('/slow', 100)).toEqual({ ok: false, reason: 'no answer from /slow within 100 ms' });
      expect(await at(null)).toEqual({ ok: true });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect(await checkOnce({ host: '127.0.0.1', port, path: '/ok', timeoutMs: 500 })).toEqual({
      ok: false,
      reached: false,
      refused: true,
      reason: '/ok: ECONNREFUSED',
    });
    expect(await checkOnce({ host: '127.0.0.1', port, path: null, timeoutMs: 500 })).toEqual({
      ok: false,
      reached: false,
      refused: true,
      reason: 'TCP: ECONNREFUSED',
    });
  });

  it('health counter: ready after healthyThreshold passes, unhealthy after unhealthyThreshold failures', () => {
    const c = new HealthCounter({ healthyThreshold: 2, unhealthyThreshold: 3 });
    const pass = { ok: true };
    const fail = { ok: false, reason: 'HTTP 503' };
    expect([c.record(pass), c.record(pass)]).toEqual([null, 'ready']);
    expect([c.record(fail), c.record(fail), c.record(pass), c.record(fail), c.record(fail)]).toEqual([null, null, null, null, null]);
    expect(c.ready).toBe(true);
    expect(c.record(fail)).toBe('unhealthy');
    expect(c.ready).toBe(false);
    expect(c.lastFailure).toBe('HTTP 503');
  });

  it('secret resolver: env:, and file: in .env, JSON and YAML (nested keys), whole files; clear errors', () => {
    const r = new SecretResolver({ fleetDir: FIXTURE_DIR, env: { FROM_ENV: 'e-value', EMPTY: '' } });
    const use = { cluster: 'eu-west-1', service: 'web', name: 'X' };
    const v = (ref: string): string => r.resolve(ref, use).reveal();
    expect(v('env:FROM_ENV')).toBe('e-value');
    expect(v('file:secrets/app.env#DB_PASSWORD')).toBe('s3cret-from-dotenv');
    expect(v('file:secrets/app.env#QUOTED')).toBe('line one\nline two');
    expect(v('file:secrets/app.env#SINGLE')).toBe('lit$eral # not a comment');
    expect(v('file:secrets/app.env#INLINE')).toBe('value');
    expect(v('file:secrets/app.json#api.token')).toBe('tok-from-json');
    expect(v('file:secrets/app.json#flat.key')).toBe('flat-value');
    expect(v('file:secrets/app.json#n')).toBe('42');
    expect(v('file:secrets/app.yaml#stripe.key')).toBe('sk-from-yaml');
    expect(v(`file:${join(FIXTURE_DIR, 'secrets/whole.txt')}`)).toBe('whole-file-secret');

    const code = (ref: string): string => {
      try {
        r.resolve(ref, use);
      } catch (err) {
        expect((err as Error).message).toContain(`secret X of service web on cluster eu-west-1 (${ref})`);
        return (err as SecretResolutionError).code;
      }
      return 'resolved';
    };
    expect(code('env:NOT_SET_ANYWHERE')).toBe('MERIDIAN_E_TARGET_SECRET_NOT_FOUND');
    expect(code('env:EMPTY')).toBe('MERIDIAN_E_TARGET_SECRET_NOT_FOUND');
    expect(code('file:secrets/app.env#EMPTY')).toBe('MERIDIAN_E_TARGET_SECRET_NOT_FOUND');
    expect(code('file:secrets/missing.env#A')).toBe('MERIDIAN_E_TARGET_SECRET_NOT_FOUND');
    expect(code('file:secrets/app.env#NOPE')).toBe('MERIDIAN_E_TARGET_SECRET_NOT_FOUND');
    expect(code('file:secrets/app.json#obj')).toBe('MERIDIAN_E_TARGET_SECRET_INVALID');
    expect(code('vault:kv/web/db#password')).toBe('MERIDIAN_E_TARGET_SECRET_PROVIDER');
    expect(code('k8s:shop/db#password')).toBe('MERIDIAN_E_TARGET_SECRET_PROVIDER');
    expect(code('ssm:/x')).toBe('MERIDIAN_E_TARGET_SECRET_INVALID');
  });

  it('a secret value does not print, stringify or inspect', async () => {
    const s = new SecretValue('hunter2');
    const { inspect } = await import('node:util');
    expect(`${String(s)} ${JSON.stringify({ s })} ${inspect(s)}`).toBe('[secret] {"s":"[secret]"} [secret]');
    expect(s.reveal()).toBe('hunter2');
  });

  it('parses .env files', () => {
    expect([...parseDotenv('A=1\n# c\n\nexport B = two words # note\nC="x\\"y"\nD=\'#raw\'\n')]).toEqual([
      ['A', '1'],
      ['B', 'two words'],
      ['C', 'x"y'],
      ['D', '#raw'],
    ]);
    expect([...parseDotenv('not a pair\nE=5')]).toEqual([['E', '5']]);
  });

  it('describes exits the way a user reads them', () => {
    expect(describeExit(1, null)).toBe('exited with code 1');
    expect(describeExit(137, null)).toBe('killed by SIGKILL');
    expect(describeExit(null, 'SIGTERM')).toBe('killed by SIGTERM');
    expect(describeExit(127, null)).toBe('exited with code 127 (command not found)');
  });

  it('the supervisor kills what a replica left in its process group when it exits', async () => {
    const sup = new ProcessSupervisor({ graceMs: 500, backoff: { initialMs: 60_000 } });
    let stdout = '';
    const p = sup.supervise(
      {
        command: [
          process.execPath,
          '-e',
          "const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(()=>{},1e3)'], {stdio:'ignore'}); console.log(c.pid); setTimeout(() => process.exit(2), 300)",
        ],
        cwd: FIXTURE_DIR,
        env: { PATH: process.env['PATH'] ?? '' },
      },
      { output: (_s, line) => (stdout += line) },
      { restart: false },
    );
    const exited = new Promise<string>((r) => {
      p.start();
      const check = setInterval(() => {
        if (p.state === 'stopped') {
          clearInterval(check);
          r(p.lastError ?? '');
        }
      }, 20);
    });
    expect(await exited).toBe('exited with code 2');
    const grandchild = Number(stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    expect(await waitGone([grandchild], 2000)).toEqual([]);
  });

  it('the supervisor restarts only when the backoff timer fires, and forgets the backoff after a stable run (injected clock)', async () => {
    let now = 1_000_000;
    const timers: { fn: () => void; ms: number }[] = [];
    const clock: Clock = {
      now: () => now,
      setTimeout: (fn, ms) => timers.push({ fn, ms }),
      clearTimeout: () => undefined,
      random: () => 0.5,
    };
    const sup = new ProcessSupervisor({ clock, backoff: { initialMs: 100, factor: 3, resetAfterMs: 30_000 } });
    const runFor = [10, 10, 60_000, 10]; // how long each run "lasts" on the injected clock
    let spawned = 0;
    const delays: number[] = [];
    const restarting = (): Promise<void> => new Promise((r) => (onRestarting = r));
    let onRestarting: () => void = () => undefined;
    const p = sup.supervise(
      { command: [process.execPath, '-e', 'process.exit(1)'], cwd: FIXTURE_DIR, env: {} },
      {
        spawned: () => {
          now += runFor[spawned] ?? 0;
          spawned += 1;
        },
        restarting: ({ delayMs }) => {
          delays.push(delayMs);
          onRestarting();
        },
      },
    );
    for (let i = 0; i < 4; i++) {
      const next = restarting();
      if (i === 0) p.start();
      else timers.shift()?.fn();
      await next;
      expect(spawned).toBe(i + 1); // nothing restarts before its timer fires
      expect(p.state).toBe('backoff');
    }
    expect(delays).toEqual([100, 300, 100, 300]); // the 60 s run reset the backoff
    expect(timers.map((t) => t.ms)).toEqual([300]);
    expect(p.restarts).toBe(3);
    await p.stop();
    expect(p.state).toBe('stopped');
    expect(sup.size).toBe(0);
  });

  it('exposes pids and ports of local replicas in their status', async () => {
    const t = target();
    await t.apply({ cluster: 'c', revisionId: 'r', state: renderedCluster({ web: echoService({ version: '1.0.0' }) }), track: 'stable' });
    const s = await waitForStatus(t, 'c', (x) => isHealthyAt(x, 'web', 'stable', 'r'), { timeoutMs: 10_000 });
    const [replica] = (trackStatus(s, 'web', 'stable')?.replicas ?? []) as LocalReplicaStatus[];
    expect(replica).toMatchObject({ state: 'ready', current: true, restarts: 0, lastError: null, slot: 0 });
    expect(t.pids()).toEqual([replica?.pid]);
    expect(t.endpoints('c')[0]?.port).toBe(replica?.port);
  });
});
