/**
 * A live local fleet for end-to-end rollout tests, run as a user runs it: the built CLI (`npm run build`
 * first), `meridian up --detach` in a work directory with the tiny rollout fleet (real processes behind
 * the router, with its control API), commands run as child processes, real requests through the router,
 * and `meridian down` with every replica process accounted for.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { runTraffic } from '../../src/traffic/generator.js';
import type { TrafficReport } from '../../src/traffic/report.js';
import type { Store } from '../../src/store/store.js';
import { copyRolloutFleet } from '../fixtures/copy-rollout-fleet.js';
import { replicaPids } from './cli-kit.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'meridian.js');

export interface Exit {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** A command still running: its pid, and how it ended (`signal` when it was killed). */
export interface Running {
  readonly pid: number;
  readonly done: Promise<Exit & { readonly signal: NodeJS.Signals | null }>;
}

export interface UpInfo {
  readonly router: string;
  readonly control: string;
  readonly token: string;
}

export interface LiveFleet {
  /** The work directory (`.meridian/` lives here); the fleet is in `fleet/` below it, named `tiny`. */
  readonly work: string;
  readonly fleet: string;
  /** Runs `meridian ARGS` in the work directory, without blocking this process (traffic keeps flowing). */
  run(args: readonly string[], env?: Readonly<Record<string, string>>): Promise<Exit>;
  /** Starts `meridian ARGS` like {@link run}, answering its pid (to kill it) and its exit. */
  start(args: readonly string[], env?: Readonly<Record<string, string>>): Running;
  /** Rewrites fleet.yaml. */
  edit(change: (yaml: string) => string): void;
  /** The running fleet's addresses (after {@link up}). */
  info(): UpInfo;
  /** `meridian up tiny --detach --port 0`, with `extra` arguments (e.g. `--data-plane haproxy`). */
  up(extra?: readonly string[]): Promise<void>;
  /** `meridian down`; answers the replica processes still alive after it (then killed), which should be none. */
  down(): Promise<number[]>;
  /** Removes the work directory. */
  remove(): void;
}

/** A work directory with the tiny fleet (edited by `edit`), not yet running. */
export function liveFleet(prefix: string, edit: (yaml: string) => string = (y) => y): LiveFleet {
  const work = mkdtempSync(join(tmpdir(), `meridian-${prefix}-`));
  const fleet = join(work, 'tiny');
  copyRolloutFleet(fleet);
  const yaml = join(fleet, 'fleet.yaml');
  writeFileSync(yaml, edit(readFileSync(yaml, 'utf8')));
  const self: LiveFleet = {
    work,
    fleet,
    run: (args, env = {}) => self.start(args, env).done,
    start: (args, env = {}) => {
      const child = spawn(process.execPath, [bin, ...args], {
        cwd: work,
        env: { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ci', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const done = new Promise<Exit & { signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => resolve({ code: code ?? -1, signal, out, err })),
      );
      return { pid: child.pid ?? -1, done };
    },
    edit: (change) => writeFileSync(yaml, change(readFileSync(yaml, 'utf8'))),
    info: () => JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as UpInfo,
    up: async (extra = []) => {
      const r = await self.run(['up', 'tiny', '--detach', '--port', '0', ...extra]);
      if (r.code !== 0) throw new Error(`meridian up failed (${r.code}): ${r.err}${r.out}`);
    },
    down: async () => {
      const pids = replicaPids(fleet);
      await self.run(['down']);
      const alive = pids.filter(isAlive);
      for (const pid of replicaPids(fleet)) process.kill(pid, 'SIGKILL');
      return alive;
    },
    remove: () => rmSync(work, { recursive: true, force: true }),
  };
  return self;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One GET through the router as a client from `country`. */
export function get(url: string, country = 'DE'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host: 'tiny.example', 'x-client-country': country } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A GET on the fleet's control API (its bearer token from up.json). */
export async function control(info: UpInfo, path: string): Promise<unknown> {
  const res = await fetch(new URL(path, info.control), { headers: { authorization: `Bearer ${info.token}` } });
  return res.json() as Promise<unknown>;
}

/** Opens the fleet's state store (`.meridian/state.db` in the work directory) for `fn`, then closes it. */
export async function withState<T>(live: LiveFleet, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openSqliteStore(join(live.work, '.meridian', 'state.db'));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * Runs `meridian rollout tiny` (with `args`) while clients from Germany and the US send `rps` requests a
 * second through the fleet's data plane; answers how the rollout ended and what the clients saw.
 */
export async function rolloutUnderTraffic(
  live: LiveFleet,
  opts: { rps: number; args?: readonly string[] },
): Promise<{ run: Exit; traffic: TrafficReport }> {
  const stop = new AbortController();
  const traffic = runTraffic({
    url: live.info().router,
    rps: opts.rps,
    mix: [
      { country: 'DE', weight: 1 },
      { country: 'US', weight: 1 },
    ],
    host: 'tiny.example',
    durationMs: 90_000,
    signal: stop.signal,
  });
  const run = await live.run(['rollout', 'tiny', '--poll', '50ms', '--healthy-checks', '1', ...(opts.args ?? [])]);
  stop.abort();
  return { run, traffic: await traffic };
}
