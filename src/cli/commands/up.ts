/**
 * `meridian up`: the whole fleet on this machine — every cluster as real processes, the router in front —
 * and `meridian down`. In the foreground until Ctrl-C, or in the background with `--detach`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { MeridianError, UsageError } from '../../errors.js';
import { type FlagPoller, followFlags, ofrepHandler, OFREP_BULK_PATH, storeFlagSource } from '../../flags/index.js';
import { baselineRevisionId } from '../../plan/plan.js';
import type { Revision } from '../../render/render.js';
import type { Store } from '../../store/store.js';
import { parseDuration } from '../../units/duration.js';
import { Router } from '../../router/router.js';
import { HaproxyPlane } from '../../router/haproxy-plane.js';
import type { ControlRouter } from '../../targets/local/control-api.js';
import { LOOPBACK_SOURCES } from '../../router/address-matcher.js';
import { localLink } from '../../server/fleet-link.js';
import type { RunningServer } from '../../server/server.js';
import { serveBesideFleet } from './serve.js';
import { wholeNumber } from '../options.js';
import { resolveActor } from '../../store/actor.js';
import { type ControlApi, startControlApi } from '../../targets/local/control-api.js';
import { LocalTarget, type OutputLine } from '../../targets/local/local-target.js';
import { LogFiles } from '../../targets/local/log-files.js';
import { startClusters } from '../../targets/local/local-fleet.js';
import { installShutdownHandlers } from '../../targets/shutdown.js';
import { report } from '../../validate/report/index.js';
import { validateFleet } from '../../validate/run.js';
import { type Io, write, type Result } from '../io.js';
import { readUpInfo, type UpInfo, upFile } from '../up-info.js';
import { upSummary } from '../up-summary.js';
import { storeFor } from '../state.js';
import { loadAndRender } from './render.js';

export { readUpInfo, type UpInfo } from '../up-info.js';

/** Listens on `port`, or on a free one when it is taken (saying so in `moved`). */
async function listenOrMove<T extends { port: number }>(
  port: number,
  listen: (port: number) => Promise<T>,
  what: string,
  moved: string[],
): Promise<T> {
  try {
    return await listen(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
    const r = await listen(0);
    moved.push(`port ${port} is taken: the ${what} listens on ${r.port} instead`);
    return r;
  }
}

interface UpOptions {
  port: string;
  adminPort: string;
  detach?: boolean;
  state?: string;
  actor?: string;
  fresh?: boolean;
  maxReplicas: string;
  quiet?: boolean;
  printLogs?: boolean;
  flagsInterval: string;
  server: boolean;
  serverPort: string;
  dataPlane: string;
}

/** The data planes `meridian up` can put in front of the local fleet. */
const DATA_PLANES = ['router', 'haproxy'] as const;

/** A free port on 127.0.0.1 (for HAProxy, which is told its ports in its configuration). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** The port itself when free, else a free one (saying so in `moved`). */
async function portOrMove(port: number, what: string, moved: string[]): Promise<number> {
  if (port === 0) return freePort();
  const free = await new Promise<boolean>((resolve) => {
    const s = createNetServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  if (free) return port;
  const p = await freePort();
  moved.push(`port ${port} is taken: the ${what} listens on ${p} instead`);
  return p;
}

export function registerUp(program: Command, io: Io, result: Result): void {
  program
    .command('up')
    .description('run every cluster of the fleet as local processes with the router in front (Ctrl-C stops everything)')
    .argument('[fleet]', 'fleet directory or file', '.')
    .option('-p, --port <n>', 'router port', '8080')
    .option('--admin-port <n>', 'router admin port (/metrics, /debug/route); 0 picks a free one', '0')
    .option('-d, --detach', 'run in the background; stop with `meridian down`')
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .option('--actor <id>', 'who starts it, for the audit log')
    .option('--fresh', 'run the fleet as written, even when the store records another revision as running')
    .option('--max-replicas <n>', 'at most this many processes per service per cluster', '2')
    .option('-q, --quiet', 'do not keep the services’ output (by default it goes to .meridian/logs; see `meridian logs`)')
    .option('--print-logs', 'also print the services’ output here, prefixed by cluster/service#replica')
    .option('--flags-interval <duration>', 'how often the router polls the flags (OFREP) endpoint', '250ms')
    .option('--server-port <n>', 'port of the control plane (API, events, dashboard); another free one when taken', '7070')
    .option('--no-server', 'do not start the control plane (`meridian serve`) beside the fleet')
    .option(
      '--data-plane <kind>',
      'what serves clients: `router` (Meridian’s Node router) or `haproxy` (HAProxy configured by `meridian export haproxy`, weights and drains through its runtime API)',
      'router',
    )
    .action(async (dir: string, opts: UpOptions) => {
      // a bad number is a usage error before anything starts (the values are read again where they are used)
      wholeNumber('--port', 0, 65535)(opts.port);
      wholeNumber('--admin-port', 0, 65535)(opts.adminPort);
      wholeNumber('--server-port', 0, 65535)(opts.serverPort);
      wholeNumber('--max-replicas', 1)(opts.maxReplicas);
      if (!(DATA_PLANES as readonly string[]).includes(opts.dataPlane))
        throw new UsageError(`--data-plane must be one of ${DATA_PLANES.join(', ')}, not ${JSON.stringify(opts.dataPlane)}`);
      if (opts.detach) {
        result.code = await detach(dir, opts, io);
        return;
      }
      result.code = await runForeground(dir, opts, io);
    });

  program
    .command('down')
    .description('stop a fleet started with `meridian up --detach`')
    .action(async () => {
      const info = readUpInfo(io);
      if (!info) {
        rmSync(upFile(io), { force: true });
        await write(io.out, 'nothing is running here (no live .meridian/up.json)\n');
        result.code = 0;
        return;
      }
      process.kill(info.pid, 'SIGTERM');
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        try {
          process.kill(info.pid, 0);
        } catch {
          if (info.dataPlane) killQuietly(info.dataPlane.pid); // stopped with `up` itself; this only covers an `up` that died
          rmSync(upFile(io), { force: true });
          await write(io.out, `stopped the fleet ${info.fleet} (pid ${info.pid})\n`);
          result.code = 0;
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      process.kill(info.pid, 'SIGKILL');
      if (info.dataPlane) killQuietly(info.dataPlane.pid);
      rmSync(upFile(io), { force: true });
      await write(
        io.err,
        `the fleet did not stop within 20 s; killed pid ${info.pid} (its replicas stop when their watchdogs see it gone)\n`,
      );
      result.code = 1;
    });
}

/** Sends SIGTERM to a process that may already be gone. */
function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // gone already
  }
}

async function detach(dir: string, opts: UpOptions, io: Io): Promise<number> {
  const existing = readUpInfo(io);
  if (existing)
    throw new UsageError(
      `a fleet is already running here (pid ${existing.pid}, router ${existing.router})`,
      'stop it with `meridian down` first',
    );
  const log = join(io.cwd, '.meridian', 'up.log');
  mkdirSync(dirname(log), { recursive: true });
  rmSync(upFile(io), { force: true });
  const fd = openSync(log, 'a');
  const args = process.argv.slice(1).filter((a) => a !== '-d' && a !== '--detach');
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    cwd: io.cwd,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: io.env,
  });
  closeSync(fd);
  child.unref();
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const info = readUpInfo(io);
    if (info) {
      await write(
        io.out,
        `fleet ${info.fleet} is up in the background (pid ${info.pid})\n  router  ${info.router}\n  admin   ${info.admin}\n` +
          (info.dashboard ? `  dashboard ${info.dashboard}\n` : '') +
          `  flags   ${info.control.replace(/\/$/, '')}${OFREP_BULK_PATH} (OFREP)\n` +
          (info.logs ? `  logs    ${info.logs} (meridian logs -f)\n` : '') +
          `  log     ${log}\nstop it with: meridian down\n`,
      );
      return 0;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await write(io.err, `meridian up did not come up; see ${log}\n`);
  return 1;
}

async function runForeground(dir: string, opts: UpOptions, io: Io): Promise<number> {
  const s = io.style;
  const say = (text: string): void => void io.err.write(`${s.dim('meridian')} ${text}\n`);
  const check = await validateFleet(dir, { now: io.now(), env: io.env });
  if (check.exitCode !== 0) {
    await write(io.out, report('text', check.findings, { color: io.style.color }));
    await write(io.err, 'the fleet does not pass preflight; fix the findings above, then run `meridian up` again\n');
    return check.exitCode;
  }
  const { loaded, rendered } = loadAndRender(dir);
  const actor = resolveActor(opts.actor, io.env);
  const flagsIntervalMs = parseDuration(opts.flagsInterval);
  if (flagsIntervalMs === undefined || flagsIntervalMs <= 0)
    throw new UsageError(`--flags-interval must be a duration like 250ms or 1s, not ${JSON.stringify(opts.flagsInterval)}`);
  const store = await storeFor(opts.state, io);
  const states = await store.clusterStates();
  const baseline = opts.fresh ? null : baselineRevisionId(states);
  const recordedRev = baseline ? await store.getRevision(baseline) : undefined;
  const revision: Revision = recordedRev ?? rendered.revision;
  await store.putRevision(rendered.revision, actor, 'meridian up');
  const clusters: Record<string, { revisionId: string; state: Revision['clusters'][string] }> = {};
  for (const [name, state] of Object.entries(revision.clusters)) {
    const rec = opts.fresh ? undefined : states[name];
    clusters[name] = rec ? { revisionId: rec.revisionId, state: rec.state } : { revisionId: revision.id, state };
  }
  if (recordedRev && recordedRev.id !== rendered.revision.id) {
    say(
      `running the recorded revision ${recordedRev.id}; the fleet as written is ${rendered.revision.id} — roll it out with \`meridian rollout\`, or start with --fresh`,
    );
  }

  // the services' output goes to files (`meridian logs`), not between the status lines
  const logs = opts.quiet ? undefined : new LogFiles(join(io.cwd, '.meridian', 'logs'));
  const print = opts.printLogs
    ? (l: OutputLine) => void io.err.write(`${s.dim(`${l.cluster}/${l.service}#${l.replica}`)} ${l.line}\n`)
    : undefined;
  const target = new LocalTarget({
    fleetDir: loaded.dir,
    maxReplicasPerService: Number.parseInt(opts.maxReplicas, 10),
    ...(logs || print
      ? {
          onOutput: (l: OutputLine) => {
            logs?.write(l);
            print?.(l);
          },
        }
      : {}),
  });
  const running: {
    router?: Router;
    control?: ControlApi;
    flags?: FlagPoller;
    flagStore?: Store;
    server?: RunningServer;
    serverStore?: Store;
    plane?: HaproxyPlane;
  } = {};
  const stopAll = async (): Promise<void> => {
    await running.server?.close();
    await running.serverStore?.close();
    running.flags?.stop();
    await running.control?.close();
    await running.flagStore?.close();
    await running.router?.close();
    await running.plane?.close();
    await logs?.close();
    rmSync(upFile(io), { force: true });
  };
  installShutdownHandlers([{ close: stopAll, terminateSync: () => rmSync(upFile(io), { force: true }) }, target], {
    onSignal: (sig) => say(`${sig}: stopping every process of the fleet…`),
  });
  // the router, and the control API with the flags over OFREP, come before the clusters: every replica is
  // started with MERIDIAN_OFREP_URL (the control API's), so the services read their flags from the start
  // a development fleet on loopback only: its own machine is trusted for the country header and pins
  const haproxy = opts.dataPlane === 'haproxy';
  const router = haproxy
    ? undefined
    : new Router({
        revision,
        endpoints: target,
        trustedSources: LOOPBACK_SOURCES,
        log: (level, msg) => level !== 'info' && say(`router ${level}: ${msg}`),
      });
  if (router) running.router = router;
  // with HAProxy as the data plane, the control API's traffic control goes to it once it runs (after the clusters)
  const plane = (): HaproxyPlane => {
    if (!running.plane) throw new MeridianError('MERIDIAN_E_HAPROXY_START', 'HAProxy is not running yet: the fleet is still starting');
    return running.plane;
  };
  const planeControl = {
    setCanary: (service: string, cluster: string, canary: { weight: number; version: string } | null) =>
      plane().setCanary(service, cluster, canary),
    setDrained: (names: readonly string[], drained: boolean) => plane().setDrained(names, drained),
    setRevision: (rev: Revision) => plane().setRevision(rev),
    setRamp: (ramp: Readonly<Record<string, number>>) => plane().setRamp(ramp),
    flush: () => 0,
    metricsText: () => plane().metricsText(),
    stats: () => running.plane?.stats() ?? { dataPlane: 'haproxy', starting: true },
  } satisfies ControlRouter;
  const token = randomBytes(24).toString('hex');
  // flags: the fleet file's defaults with operators' settings from the store; the services and the router follow them
  running.flagStore = await storeFor(opts.state, io, { readonly: true });
  const ofrep = ofrepHandler(storeFlagSource(running.flagStore, rendered.revision), {
    onError: (err) => say(`flags: ${err instanceof Error ? err.message : String(err)}`),
  });
  running.control = await startControlApi({ target, router: router ?? planeControl, token, ofrep });
  target.setOfrepUrl(running.control.url);

  const count = Object.values(clusters).reduce((n, c) => n + Object.keys(c.state.services).length, 0);
  say(`starting ${Object.keys(clusters).length} clusters, ${count} service deployments of revision ${revision.id}…`);
  try {
    await startClusters(target, clusters, { onClusterReady: (c, ms) => say(`${c} ready in ${(ms / 1000).toFixed(1)} s`) });
  } catch (err) {
    await stopAll();
    await target.close();
    await store.close();
    throw new MeridianError('MERIDIAN_E_UP_FAILED', `the local fleet did not become healthy: ${(err as Error).message.slice(0, 400)}`, {
      cause: err,
      hint: `look at the services’ output (${logs ? '`meridian logs`' : 'run without --quiet'}); fix the service or its configuration and run \`meridian up\` again`,
    });
  }
  for (const [name, c] of Object.entries(clusters)) {
    if (states[name]?.revisionId !== c.revisionId || states[name]?.status !== 'running') {
      await store.recordClusterState(name, c.revisionId, c.state, 'running', actor, 'meridian up: local fleet started');
    }
  }
  await store.close();

  const moved: string[] = [];
  let port: number;
  let adminPort: number;
  if (router) {
    running.flags = followFlags(router, {
      url: running.control.url,
      intervalMs: flagsIntervalMs,
      log: (_level, msg) => say(`router ${msg}`),
    });
    port = (await listenOrMove(Number.parseInt(opts.port, 10), (p) => router.listen(p), 'router', moved)).port;
    adminPort = (await router.listenAdmin(Number.parseInt(opts.adminPort, 10))).port;
  } else {
    port = await portOrMove(Number.parseInt(opts.port, 10), 'HAProxy frontend', moved);
    adminPort = await portOrMove(Number.parseInt(opts.adminPort, 10), 'HAProxy Prometheus exporter', moved);
    try {
      running.plane = await HaproxyPlane.start({
        revision,
        target,
        dir: join(io.cwd, '.meridian', 'haproxy'),
        port,
        metricsPort: adminPort,
        log: (level, msg) => say(`${level}: ${msg}`),
      });
    } catch (err) {
      await stopAll();
      await target.close();
      throw err;
    }
    say(`HAProxy (pid ${running.plane.pid}) serves the fleet; weights and drains go through its runtime API ${running.plane.socket}`);
  }
  // the control plane beside the fleet: its API, event stream and dashboard, over this process's driver and router
  let dashboard: string | null = null;
  if (opts.server) {
    running.serverStore = await storeFor(opts.state, io);
    const cp = await serveBesideFleet(io, running.serverStore, {
      preferredPort: Number.parseInt(opts.serverPort, 10),
      link: localLink(
        target,
        router ?? {
          ...planeControl,
          // the control plane's drains, in order (HAProxy's changes are queued); a refusal is said, not thrown
          setDrained: (names: string | readonly string[], drained?: boolean) =>
            void plane()
              .setDrained(names, drained ?? true)
              .catch((err: unknown) => say(`haproxy: drain not applied: ${err instanceof Error ? err.message : String(err)}`)),
        },
      ),
      written: rendered.revision,
      recovery: loaded.fleet.recovery,
      actor: opts.actor,
    });
    running.server = cp.server;
    dashboard = cp.dashboardUrl;
    const preferred = Number.parseInt(opts.serverPort, 10);
    if (preferred !== 0 && !cp.server.url.includes(`:${preferred}/`))
      moved.push(`port ${preferred} is taken: the dashboard and API are on ${cp.server.url} instead`);
  }
  const info: UpInfo = {
    pid: process.pid,
    fleet: revision.fleet,
    fleetDir: resolve(loaded.dir),
    revision: revision.id,
    router: `http://127.0.0.1:${port}/`,
    admin: `http://127.0.0.1:${adminPort}/`,
    control: running.control.url,
    token,
    startedAt: io.now().toISOString(),
    ...(running.server && dashboard ? { server: running.server.url, dashboard } : {}),
    ...(logs ? { logs: logs.dir } : {}),
    ...(running.plane?.pid
      ? { dataPlane: { kind: 'haproxy' as const, pid: running.plane.pid, dir: join(io.cwd, '.meridian', 'haproxy') } }
      : {}),
  };
  mkdirSync(dirname(upFile(io)), { recursive: true });
  // written whole, then renamed into place: `up --detach` polls for it, and must never read half a file
  const tmp = `${upFile(io)}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the token in it drives the fleet
  renameSync(tmp, upFile(io));
  await write(io.out, upSummary(info, revision, { flagsIntervalMs, moved, logs: logs?.dir }));
  await new Promise<never>(() => {}); // until a signal: the shutdown handlers exit the process
  return 0;
}
