/**
 * A fake local fleet for tests that run `meridian rollout` as a child process: an in-memory driver and
 * router behind the real control API in the test's process (as `meridian up` serves them), a work
 * directory with the tiny fleet (recorded as running 1.0.0, edited to 1.1.0) and its up.json, and a
 * way to run the CLI from source.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { render, type Revision } from '../../src/render/render.js';
import { loadFleet } from '../../src/spec/load.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { JsonValue, RolloutEventRecord } from '../../src/store/store.js';
import { type ControlApi, startControlApi } from '../../src/targets/local/control-api.js';
import { FakeDriver, seed } from './rollout-kit.js';
import { copyRolloutFleet } from '../fixtures/copy-rollout-fleet.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'test', 'fixtures', 'meridian-cli.ts');
const tsx = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
/** Where the work directories go (the caller removes it). */
export const base = mkdtempSync(join(tmpdir(), 'meridian-rollout-cli-'));

/** A router stand-in that keeps the canary weights and the revision it routes with. */
export class FakeRouter {
  readonly weights = new Map<string, number>();
  revision: string | null = null;
  setRevision(revision: Revision): void {
    this.revision = revision.id;
  }
  setCanary(service: string, cluster: string, canary: { weight: number; version: string } | null): void {
    if (canary) this.weights.set(`${service}@${cluster}`, canary.weight);
    else this.weights.delete(`${service}@${cluster}`);
  }
  flush(): number {
    return 0;
  }
  metricsText(): Promise<string> {
    return Promise.resolve('');
  }
  stats(): unknown {
    return {};
  }
}

export interface Fleet {
  readonly dir: string;
  readonly driver: FakeDriver;
  readonly router: FakeRouter;
  readonly api: ControlApi;
  readonly v1: Revision;
  readonly state: string;
}

/** A work directory: the fleet at 1.1.0 (rev1 = 1.0.0 recorded as running), a fake fleet behind a control API, up.json. */
export async function fleet(name: string, edit: (yaml: string) => string = (y) => y): Promise<Fleet> {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  copyRolloutFleet(join(dir, 'fleet'));
  const file = join(dir, 'fleet', 'fleet.yaml');
  const yaml = edit(readFileSync(file, 'utf8').replace('maxParallel: 2', 'maxParallel: 1\n      bake: 50ms'));
  writeFileSync(file, yaml);
  const v1 = render(loadFleet(join(dir, 'fleet'))).revision;
  writeFileSync(file, yaml.replace('version: 1.0.0', 'version: 1.1.0').replace('web:1.0.0@', 'web:1.1.0@'));
  const state = join(dir, '.meridian', 'state.db');
  const store = await openSqliteStore(state);
  await store.putRevision(v1, { id: 'up' });
  for (const [c, s] of Object.entries(v1.clusters)) await store.recordClusterState(c, v1.id, s, 'running', { id: 'up' });
  await store.close();
  const driver = new FakeDriver();
  await seed(driver, v1);
  const router = new FakeRouter();
  const token = randomBytes(16).toString('hex');
  const api = await startControlApi({ target: driver, router, token });
  writeFileSync(
    join(dir, '.meridian', 'up.json'),
    JSON.stringify({ pid: process.pid, fleet: 'tiny', revision: v1.id, router: '-', admin: '-', control: api.url, token, startedAt: '-' }),
  );
  return { dir, driver, router, api, v1, state };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  pid: number;
}

export function meridian(f: Fleet, args: string[], env: Record<string, string> = {}): { pid: number; done: Promise<Exit> } {
  const child = spawn(process.execPath, ['--import', tsx, cli, ...args], {
    cwd: f.dir,
    env: { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ci', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return {
    pid: child.pid ?? -1,
    done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out, err, pid: child.pid ?? -1 }))),
  };
}

export const FAST = ['--poll', '20ms', '--health-timeout', '10s', '--healthy-checks', '1'];

/** The event log without times: what must be the same whether or not the driver crashed. */
export async function eventLog(f: Fleet): Promise<{ type: string; actor: string; data: JsonValue }[]> {
  const store = await openSqliteStore(f.state);
  try {
    const [r] = await store.listRollouts({ limit: 1 });
    if (!r) return [];
    return (await store.listRolloutEvents(r.id)).map((e: RolloutEventRecord) => ({ type: e.type, actor: e.actor, data: e.data }));
  } finally {
    await store.close();
  }
}
