/**
 * `meridian router --flags URL` as a real process: it follows an OFREP server (here in the test, over a
 * real SQLite store) and gates the route on the flag; a bad --flags value is refused.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ofrepHandler, storeFlagSource } from '../src/flags/index.js';
import { render } from '../src/render/render.js';
import { loadFleet } from '../src/spec/load.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { Store } from '../src/store/store.js';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';
import { closeAgents, get, startUpstream, until, type Upstream } from './support/router-kit.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'meridian.js');
const work = mkdtempSync(join(tmpdir(), 'meridian-router-flags-'));
const fleet = join(work, 'fleet');
const oncall = { id: 'oncall' };
let store: Store;
let ofrep: Server;
let ups: Upstream[] = [];
let child: ChildProcess | undefined;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  copyRolloutFleet(fleet);
  const file = join(fleet, 'fleet.yaml');
  const yaml = readFileSync(file, 'utf8').replace(
    '    match: { hosts: [tiny.example] }\n',
    '    match: { hosts: [tiny.example] }\n    flag: beta\n    clientCountryHeader: x-client-country\n',
  );
  writeFileSync(file, `${yaml}\nflags:\n  beta: { default: true }\n`);
  const revision = render(loadFleet(fleet)).revision;
  store = await openSqliteStore(join(work, 'state.db'));
  const handle = ofrepHandler(storeFlagSource(store, revision));
  ofrep = createServer((req, res) => void (handle(req, res) || res.writeHead(404).end()));
  await new Promise<void>((r) => ofrep.listen(0, '127.0.0.1', r));
  ups = await Promise.all(['local-a', 'local-b', 'local-c'].map((c) => startUpstream(c, '1.0.0')));
  writeFileSync(
    join(work, 'endpoints.json'),
    JSON.stringify({ endpoints: ups.map((u) => ({ cluster: u.cluster, service: 'web', port: u.port })) }),
  );
});

async function stop(): Promise<void> {
  closeAgents();
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child?.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  child = undefined;
}

afterAll(async () => {
  await stop();
  ofrep.closeAllConnections();
  await new Promise((r) => ofrep.close(r));
  await Promise.all(ups.map((u) => u.kill()));
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('meridian router --flags', () => {
  it.each([1, 2])('gates the route on the flag it polls over OFREP (%i worker(s))', async (workers) => {
    const url = `http://127.0.0.1:${(ofrep.address() as AddressInfo).port}/`;
    const proc = spawn(
      process.execPath,
      [
        bin,
        'router',
        '--fleet',
        fleet,
        '--endpoints',
        join(work, 'endpoints.json'),
        '--port',
        '0',
        '--no-health-checks',
        '--trusted-sources',
        '127.0.0.0/8',
        '--flags',
        url,
        '--flags-interval',
        '50ms',
        '--workers',
        String(workers),
      ],
      { cwd: work, env: { ...process.env, NO_COLOR: '1' } },
    );
    child = proc;
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(out), 20_000, 'the router to listen');
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
    // a new connection per request: node:cluster hands connections to the workers in turn, so both are asked
    const cluster = async (): Promise<string> =>
      String(
        (await get(port, '/', { headers: { host: 'tiny.example', 'x-client-country': 'DE', connection: 'close' } })).headers[
          'x-meridian-cluster'
        ],
      );

    expect(['local-a', 'local-b']).toContain(await cluster());
    await store.setFlag({ fleet: 'tiny', flag: 'beta', region: 'eu', enabled: false, percent: 100 }, oncall);
    // every worker polls on its own: wait until a run of answers (each worker asked in turn) shows it applied
    const allServedBy = async (want: string): Promise<boolean> => {
      for (let i = 0; i < workers * 3; i++) if ((await cluster()) !== want) return false;
      return true;
    };
    await until(() => allServedBy('local-c'), 10_000, 'eu to stop serving');
    for (let i = 0; i < 30; i++) expect(await cluster()).toBe('local-c');
    await store.resetFlag('tiny', 'beta', 'eu', oncall);
    await until(async () => (await cluster()) !== 'local-c', 10_000, 'eu to serve again');
    await stop();
  });

  it('refuses a --flags value that is not an http(s) URL', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'router', '--fleet', fleet, '--endpoints', join(work, 'endpoints.json'), '--flags', 'localhost:7070'],
      {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
      },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--flags must be an http(s) URL of an OFREP server');
  });
});
