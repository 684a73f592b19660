/**
 * Kit for the data-plane exporter tests: the fixture fleet (test/fixtures/dataplanes) run as a local
 * fleet of echo processes, a real data-plane server (HAProxy, nginx) started on loopback from an
 * export, and per-country tallies of which cluster answered, to hold against `route simulate`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAndRender } from '../../src/cli/commands/render.js';
import type { Revision } from '../../src/render/render.js';
import { simulatedState, trafficTable } from '../../src/routing/index.js';
import { LocalTarget } from '../../src/targets/local/local-target.js';
import { startClusters } from '../../src/targets/local/local-fleet.js';
import { FIXTURE_DIR } from '../fixtures/local-services/cluster.js';
import { get, load } from './router-kit.js';

export const FLEET_DIR = join(import.meta.dirname, '..', 'fixtures', 'dataplanes');

/** The fixture fleet's revision, as written (every cluster with a declared ingress). */
export function fixtureRevision(): Revision {
  return loadAndRender(FLEET_DIR).rendered.revision;
}

/** The same revision without ingress addresses: a local fleet whose replicas' endpoints are used. */
export function localRevision(rev: Revision): Revision {
  const clusters = Object.fromEntries(
    Object.entries(rev.clusters).map(([name, c]) => {
      const { ingress: _ingress, ...rest } = c;
      return [name, rest];
    }),
  );
  return { ...rev, clusters };
}

/** Starts every cluster of the revision as local echo processes; resolves when all are healthy. */
export async function startLocalFleet(rev: Revision): Promise<LocalTarget> {
  const target = new LocalTarget({
    fleetDir: FIXTURE_DIR,
    graceMs: 500,
    health: { intervalMs: 100, startupIntervalMs: 50, timeoutMs: 500 },
  });
  const clusters = Object.fromEntries(Object.entries(rev.clusters).map(([n, state]) => [n, { revisionId: rev.id, state }]));
  await startClusters(target, clusters);
  return target;
}

/** A free TCP port on 127.0.0.1 (released before it is returned: a test server binds it next). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A server process started by a test; `stop` ends it by its pid: SIGTERM, then SIGKILL after 3 s. (SIGKILL
 * at once left nginx's worker processes running without their master, one per nginx test file and run.)
 */
export interface Proc {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns a command and keeps its output for failure messages. */
export function spawnProc(cmd: string, args: readonly string[], opts: { cwd?: string } = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-8000)));
  child.stderr?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-8000)));
  return {
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        if (child.pid === undefined) return resolve();
        const pid = child.pid;
        process.kill(pid, 'SIGTERM');
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
        }, 3000).unref();
      }),
  };
}

/** Waits until a request to the port gets any HTTP answer. */
export async function waitHttp(port: number, proc: Proc, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await get(port, '/', { headers: { 'x-client-country': 'US' } });
      return;
    } catch {
      if (proc.child.exitCode !== null) throw new Error(`the server exited: ${proc.output()}`);
      if (Date.now() > deadline) throw new Error(`no answer on port ${port}: ${proc.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Which clusters answered, as shares of `n` requests; failed requests count under `status:<code>`. */
export type Tally = Record<string, number>;

/** Sends `n` requests as clients of `country` (by header, or from a loopback source address) and tallies the answers. */
export async function tally(port: number, n: number, who: { country?: string; from?: string; close?: boolean }): Promise<Tally> {
  const counts: Record<string, number> = {};
  await load(
    n,
    16,
    () =>
      get(port, '/', {
        ...(who.country ? { headers: { 'x-client-country': who.country } } : {}),
        ...(who.from ? { localAddress: who.from } : {}),
      }),
    (r) => {
      const key = r instanceof Error ? 'error' : r.status === 200 ? String(r.json<{ cluster: string }>().cluster) : `status:${r.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    },
  );
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
}

/** The largest difference, in points, between a tally and the expected shares (clusters missing on either side count). */
export function maxDiff(observed: Tally, expected: Readonly<Record<string, number>>): number {
  const keys = new Set([...Object.keys(observed), ...Object.keys(expected)]);
  let max = 0;
  for (const k of keys) max = Math.max(max, Math.abs((observed[k] ?? 0) - (expected[k] ?? 0)) * 100);
  return max;
}

/** The countries the live tests send as, with their client region in the fixture fleet. */
export const COUNTRIES = { IE: 'eu-west', DE: 'eu-central', US: 'us-east', IN: 'ap-south', ZZ: '(unknown)' } as const;

/** `route simulate`'s shares of `web` for a client region (clusters down as given), rejections as `status:503`. */
export function simulated(rev: Revision, client: string, down: readonly string[] = []): Record<string, number> {
  const row = trafficTable(rev, simulatedState({ down })).services['web']?.[client];
  const out: Record<string, number> = {};
  for (const [c, v] of Object.entries(row?.clusters ?? {})) out[c] = v.stable + v.canary;
  if ((row?.rejected ?? 0) > 0) out['status:503'] = row?.rejected ?? 0;
  return out;
}
