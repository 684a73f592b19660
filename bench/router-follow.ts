/**
 * How fast does a router in its own process follow a routing change made on the control plane?
 *
 * The server (`meridian serve`, in this process, SQLite store, the example shop fleet) and a router
 * process started as `meridian router --server URL --token T`. Each change drains or undrains one
 * cluster through the API (`POST /api/v1/clusters/NAME/drain`); the time is taken from just before the
 * request is sent to the moment the router's log line `routing table N applied` for that change reaches
 * this process — an upper bound on change-to-applied (it includes the API call with its audit write,
 * the event stream, the table rebuild and the pipe). Target: p99 ≤ 100 ms over ~200 changes.
 *
 * Peer, in the same run: the way a router learnt changes before — a router over a fleet and an
 * endpoints file, reloaded with SIGHUP after the file is rewritten; timed from the write to its log line
 * `reloaded …`.
 *
 * Run: `npx tsx bench/router-follow.ts [--changes 200] [--json]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { loadAndRender } from '../src/cli/commands/render.js';
import { newApiToken } from '../src/server/auth/tokens.js';
import type { FleetLink } from '../src/server/fleet-link.js';
import { startServer } from '../src/server/server.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { Endpoint } from '../src/targets/target.js';
import { median } from './lib/measure.js';

const argN = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const CHANGES = argN('changes', 200);
const JSON_OUT = process.argv.includes('--json');
const ROOT = join(import.meta.dirname, '..');
const CLI = join(import.meta.dirname, 'lib', 'meridian-src.ts');

/** A child process whose stderr lines are watched for a pattern. */
class Watched {
  readonly child: ChildProcess;
  #buf = '';
  #waiters: { re: RegExp; resolve: (t: number, line: string) => void }[] = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    const onData = (chunk: Buffer): void => {
      const at = performance.now();
      this.#buf += chunk.toString();
      let i: number;
      while ((i = this.#buf.indexOf('\n')) >= 0) {
        const line = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 1);
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.re.test(line)) return true;
          w.resolve(at, line);
          return false;
        });
      }
    };
    this.child.stderr?.on('data', onData);
    this.child.stdout?.on('data', onData);
  }

  /** Resolves with the time (performance.now) the first line matching `re` arrives. */
  waitFor(re: RegExp, ms = 30_000): Promise<number> {
    return this.waitLine(re, ms).then(([at]) => at);
  }

  /** Resolves with the arrival time and the text of the first line matching `re`. */
  waitLine(re: RegExp, ms = 30_000): Promise<[number, string]> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms`)), ms);
      this.#waiters.push({ re, resolve: (at, line) => (clearTimeout(t), resolve([at, line])) });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || !this.child.pid) return resolve();
      this.child.once('exit', () => resolve());
      process.kill(this.child.pid, 'SIGTERM');
    });
  }
}

function pct(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

function summary(ms: readonly number[]): { p50: number; p90: number; p99: number; max: number } {
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { p50: r(median(ms)), p90: r(pct(ms, 90)), p99: r(pct(ms, 99)), max: r(Math.max(...ms)) };
}

const work = mkdtempSync(join(os.tmpdir(), 'meridian-bench-follow-'));
const fleetDir = join(ROOT, 'examples', 'shop');
const { rendered } = loadAndRender(fleetDir);
const revision = rendered.revision;
const clusters = Object.keys(revision.clusters);
let port = 20000;
const endpoints: Endpoint[] = [];
for (const [c, state] of Object.entries(revision.clusters)) {
  for (const [s, svc] of Object.entries(state.services)) {
    endpoints.push({
      cluster: c,
      service: s,
      track: 'stable',
      version: svc.version,
      revisionId: revision.id,
      host: '127.0.0.1',
      port: port++,
      healthy: true,
      replica: `${c}-${s}-1`,
    });
  }
}

// ---------------------------------------------------------------- the server and a following router
const store = await openSqliteStore(join(work, 'state.db'));
const t = newApiToken('bench-router', 'viewer', { id: 'bench' });
await store.createApiToken(t.record, { id: 'bench' });
const op = newApiToken('bench-operator', 'deployer', { id: 'bench' });
await store.createApiToken(op.record, { id: 'bench' });
const link: FleetLink = {
  describe: 'static endpoints',
  status: (cluster) => Promise.resolve({ cluster, services: {} }),
  endpoints: (cluster) => Promise.resolve(endpoints.filter((e) => e.cluster === cluster)),
  routerMetrics: () => Promise.resolve(null),
  setDrained: () => Promise.resolve(),
  subscribe: () => () => undefined,
  close: () => Promise.resolve(),
};
const server = await startServer({ store, link, written: revision, dashboard: null, fleetPollMs: 60_000 });
const follower = new Watched(['router', '--server', server.url, '--token', t.token, '--port', '0', '--no-health-checks', '--no-geoip']);
await follower.waitFor(/following the control plane/);

const followMs: number[] = [];
const apiMs: number[] = [];
/** The router's own measure: from the server's change (the table's `at`) to the table applied, ms (same clock). */
const lagMs: number[] = [];
for (let i = 0; i < CHANGES; i++) {
  const cluster = clusters[i % clusters.length] as string;
  const drained = Math.floor(i / clusters.length) % 2 === 0;
  const t0 = performance.now();
  const res = await fetch(new URL(`api/v1/clusters/${cluster}/drain`, server.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${op.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ drained }),
  });
  const { tableVersion } = (await res.json()) as { tableVersion: number };
  apiMs.push(performance.now() - t0);
  const [t1, line] = await follower.waitLine(new RegExp(`routing table ${tableVersion} applied`));
  followMs.push(t1 - t0);
  lagMs.push(Number(/, (\d+) ms after the change/.exec(line)?.[1] ?? Number.NaN));
  await new Promise((r) => setTimeout(r, 5));
}
await follower.stop();
await server.close();
await store.close();

// ---------------------------------------------------------------- the peer: endpoints file + SIGHUP
const file = join(work, 'endpoints.json');
const doc = (drained: string[]): string =>
  JSON.stringify({
    endpoints: endpoints.map(({ cluster, service, track, version, host, port: p }) => ({
      cluster,
      service,
      track,
      version,
      host,
      port: p,
    })),
    drained,
  });
writeFileSync(file, doc([]));
const peer = new Watched(['router', '--fleet', fleetDir, '--endpoints', file, '--port', '0', '--no-health-checks', '--no-geoip']);
await peer.waitFor(/listening on/);
const sighupMs: number[] = [];
for (let i = 0; i < CHANGES; i++) {
  const cluster = clusters[i % clusters.length] as string;
  const t0 = performance.now();
  writeFileSync(file, doc(Math.floor(i / clusters.length) % 2 === 0 ? [cluster] : []));
  const wait = peer.waitFor(/reloaded /);
  process.kill(peer.child.pid as number, 'SIGHUP');
  sighupMs.push((await wait) - t0);
  await new Promise((r) => setTimeout(r, 5));
}
await peer.stop();
rmSync(work, { recursive: true, force: true });

const follow = summary(followMs);
const lag = summary(lagMs);
const api = summary(apiMs);
const sighup = summary(sighupMs);
const result = {
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}`,
  changes: CHANGES,
  clusters: clusters.length,
  lag,
  follow,
  api,
  sighup,
  ratioP99: Math.round((lag.p99 / sighup.p99) * 100) / 100,
};
if (JSON_OUT) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  process.stdout.write(
    [
      `## router following the control plane (\`bench/router-follow.ts\`)`,
      '',
      `${result.machine}; ${CHANGES} changes (drain/undrain one of ${clusters.length} clusters of examples/shop), one at a time.`,
      '',
      '| how the router learns a change | p50 ms | p90 ms | p99 ms | max ms |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| \`router --server\`: server's change → table applied in the router (router's clock, 1 ms steps) | ${lag.p50} | ${lag.p90} | ${lag.p99} | ${lag.max} |`,
      `| \`router --server\`: API call sent → router's log line here (upper bound) | ${follow.p50} | ${follow.p90} | ${follow.p99} | ${follow.max} |`,
      `| (of which the API call: drain, audit write, answer) | ${api.p50} | ${api.p90} | ${api.p99} | ${api.max} |`,
      `| peer: endpoints file rewritten + SIGHUP → reloaded | ${sighup.p50} | ${sighup.p90} | ${sighup.p99} | ${sighup.max} |`,
      '',
      `p99 ratio (server's change → applied / SIGHUP): ${result.ratioP99}. Target: p99 ≤ 100 ms from the server's change — ${lag.p99 <= 100 ? 'met' : 'NOT met'}. Load average at the end: ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(', ')}.`,
      '',
    ].join('\n'),
  );
}
