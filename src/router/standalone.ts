/**
 * A standalone router process over a fleet and a static endpoints file (`meridian router`), alone or as
 * N workers sharing one port through node:cluster (one per core). Each worker runs its own health checks
 * and outlier detection; the primary only supervises, and serves aggregated metrics on `adminPort`. Also
 * the entry points of a router that follows the control plane instead (`startFollowing`).
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { InputError } from '../errors.js';
import { render, type Revision } from '../render/render.js';
import { loadFleet } from '../spec/load.js';
import { startTracing } from '../telemetry/tracing.js';
import { followFlags } from '../flags/ofrep-client.js';
import { checkEndpointsDocument, readEndpointsFile, StaticEndpoints, type EndpointsDocument } from './endpoints.js';
import { applyHttpLimits, httpLimits, serverOptions, type HttpLimits } from '../http-limits.js';
import { AddressMatcher, LOOPBACK_SOURCES } from './address-matcher.js';
import { Router, type RouterLog, type RouterOptions } from './router.js';

/** The router's own settings, shared by every way of starting one; plain data, passed to workers as JSON. */
export interface RouterSettings {
  /** Path to a .mmdb country database, or null for no GeoIP; default the bundled one. */
  readonly geoip?: string | null;
  readonly healthChecks?: boolean;
  readonly traceparent?: 'generate' | 'pass';
  /** Timeouts and connection cap of every listener (src/http-limits.ts). */
  readonly limits?: Partial<HttpLimits>;
  /** Trusted sources of services whose routing names none (default: none). */
  readonly trustedSources?: readonly string[];
  /** Who may use `/_meridian/*` on the traffic port (default: nobody) and the admin port (default: loopback). */
  readonly adminSources?: readonly string[];
}

/** The {@link Router} options that {@link RouterSettings} set. */
export function routerOptionsOf(settings: RouterSettings): Omit<RouterOptions, 'revision' | 'endpoints' | 'state'> {
  return {
    ...(settings.geoip !== undefined ? { geoip: settings.geoip } : {}),
    ...(settings.healthChecks !== undefined ? { healthChecks: settings.healthChecks } : {}),
    ...(settings.traceparent ? { traceparent: settings.traceparent } : {}),
    ...(settings.limits ? { limits: settings.limits } : {}),
    ...(settings.trustedSources ? { trustedSources: settings.trustedSources } : {}),
    ...(settings.adminSources ? { adminSources: settings.adminSources } : {}),
  };
}

/** The {@link RouterSettings} of a larger configuration, and nothing else (a worker gets no server token). */
export function routerSettingsOf(config: RouterSettings): RouterSettings {
  const out: Record<string, unknown> = {};
  for (const k of ['geoip', 'healthChecks', 'traceparent', 'limits', 'trustedSources', 'adminSources'] as const)
    if (config[k] !== undefined) out[k] = config[k];
  return out as RouterSettings;
}

/** Everything a standalone router (or each of its workers) needs; plain data, passed to workers as JSON. */
export interface StandaloneConfig extends RouterSettings {
  readonly fleet: string;
  readonly endpoints: string;
  readonly port: number;
  readonly host: string;
  /** A port for the admin endpoints alone (with workers: served by the primary, metrics aggregated). */
  readonly adminPort?: number;
  /** Worker processes; 1 (default) runs the router in this process. */
  readonly workers?: number;
  /** OTLP/HTTP collector for request traces; without it the OTEL_* environment decides (off when unset). */
  readonly otlp?: string;
  /** An OFREP server (base URL or bulk endpoint) to follow for flag gates; default none (the fleet file's flags). */
  readonly flags?: string;
  /** How often to poll `flags`, ms (default 250). */
  readonly flagsIntervalMs?: number;
  /** A bearer token for `flags` (a `meridian serve --ofrep-auth`); default none. */
  readonly flagsToken?: string;
}

export interface RunningRouter {
  /** The traffic port. */
  readonly port: number;
  readonly adminPort: number | null;
  /** The router (single process only). */
  readonly router: Router | null;
  /** Re-reads the endpoints file (also on SIGHUP). */
  reload(): void;
  close(): Promise<void>;
}

/** The fleet's revision, or an InputError listing what is wrong with it. */
export function loadRevision(dir: string): Revision {
  const loaded = loadFleet(dir);
  const rendered = render(loaded);
  if (rendered.findings.length > 0) throw new InputError(`the fleet at ${dir} cannot be rendered`, rendered.findings);
  return rendered.revision;
}

function stableVersion(revision: Revision): (cluster: string, service: string) => string {
  return (c, s) => revision.clusters[c]?.services[s]?.version ?? 'unknown';
}

function applyDocument(router: Router, doc: EndpointsDocument, previous: EndpointsDocument | null): void {
  for (const [svc, byCluster] of Object.entries(previous?.canary ?? {})) {
    for (const c of Object.keys(byCluster)) if (!doc.canary[svc]?.[c]) router.setCanary(svc, c, null);
  }
  for (const [svc, byCluster] of Object.entries(doc.canary))
    for (const [c, canary] of Object.entries(byCluster)) router.setCanary(svc, c, canary);
  router.setDrained(
    (previous?.drained ?? []).filter((d) => !doc.drained.includes(d)),
    false,
  );
  router.setDrained(doc.drained, true);
}

/** Runs one router in this process. */
export async function startStandalone(config: StandaloneConfig, log?: RouterLog): Promise<RunningRouter> {
  const revision = loadRevision(config.fleet);
  let doc = readEndpointsFile(config.endpoints);
  checkEndpointsDocument(doc, revision, config.endpoints);
  const source = new StaticEndpoints(doc.endpoints, stableVersion(revision));
  const tracing = await startTracing({ otlp: config.otlp, serviceName: 'meridian-router' });
  const router = new Router({
    ...(tracing ? { tracer: tracing.requestTracer() } : {}),
    revision,
    endpoints: source,
    ...routerOptionsOf(config),
    ...(log ? { log } : {}),
  });
  applyDocument(router, doc, null);
  router.flush(true);
  const flags =
    config.flags !== undefined
      ? followFlags(router, {
          url: config.flags,
          ...(config.flagsIntervalMs !== undefined ? { intervalMs: config.flagsIntervalMs } : {}),
          ...(config.flagsToken !== undefined ? { token: config.flagsToken } : {}),
          ...(log ? { log } : {}),
        })
      : null;
  const { port } = await router.listen(config.port, config.host);
  const adminPort =
    config.adminPort !== undefined && !cluster.isWorker ? (await router.listenAdmin(config.adminPort, config.host)).port : null;
  if (cluster.isWorker) {
    new AggregatorRegistry(); // installs the worker's answer to the primary's metrics requests
    AggregatorRegistry.setRegistries([router.metrics.registry]);
  }
  const reload = (): void => {
    try {
      const next = readEndpointsFile(config.endpoints);
      checkEndpointsDocument(next, revision, config.endpoints);
      source.replace(next.endpoints);
      applyDocument(router, next, doc);
      doc = next;
      log?.('info', `reloaded ${config.endpoints}: ${next.endpoints.length} endpoints`);
    } catch (err) {
      log?.('error', `could not reload ${config.endpoints}; keeping the previous endpoints`, { error: String(err) });
    }
  };
  const onHup = (): void => reload();
  process.on('SIGHUP', onHup);
  return {
    port,
    adminPort,
    router,
    reload,
    close: async () => {
      process.off('SIGHUP', onHup);
      flags?.stop();
      await router.close();
      await tracing?.shutdown();
    },
  };
}

/** The environment variable that carries a worker's configuration. */
export const WORKER_CONFIG_ENV = 'MERIDIAN_ROUTER_CONFIG';

/** The worker entry module (a sibling of this file: .ts under tsx, .js when built). */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.replace(/standalone\.(ts|js)$/, 'worker-main.$1');
}

/**
 * Runs `config.workers` router processes sharing the traffic port (node:cluster). Resolves once every
 * worker listens. A worker that dies is replaced after a second. Must be called in the primary.
 */
export async function startWorkers(config: StandaloneConfig, log?: RouterLog): Promise<RunningRouter> {
  loadRevision(config.fleet); // fail here, once, on a bad fleet
  readEndpointsFile(config.endpoints);
  const workers = await superviseWorkers({
    workers: config.workers ?? 1,
    config: { ...config, workers: 1, adminPort: undefined },
    host: config.host,
    settings: routerSettingsOf(config),
    ...(config.adminPort !== undefined ? { adminPort: config.adminPort } : {}),
    ...(log ? { log } : {}),
  });
  const reload = (): void => {
    for (const w of Object.values(cluster.workers ?? {})) if (w?.process.pid) process.kill(w.process.pid, 'SIGHUP');
  };
  return { port: workers.port, adminPort: workers.adminPort, router: null, reload, close: () => workers.close() };
}

/** What {@link superviseWorkers} runs. */
export interface SupervisionOptions {
  /** How many workers (at least 1). */
  readonly workers: number;
  /** Each worker's configuration (JSON in {@link WORKER_CONFIG_ENV}; read by worker-main.ts). */
  readonly config: object;
  readonly host: string;
  /** Serve the metrics summed over the workers on this port. */
  readonly adminPort?: number;
  readonly log?: RouterLog;
  /** Limits and admin sources of the admin port (see {@link RouterSettings}). */
  readonly settings?: RouterSettings;
  /** Called with each worker as it is forked (the first ones and every replacement), before it runs. */
  readonly onFork?: (worker: Worker) => void;
}

/** Workers under supervision. */
export interface Supervision {
  /** The traffic port the workers share. */
  readonly port: number;
  readonly adminPort: number | null;
  /** The workers alive now. */
  workers(): Worker[];
  /** Stops every worker (SIGTERM) and waits for them. */
  close(): Promise<void>;
}

/**
 * Forks router workers sharing one port (node:cluster) and keeps them running: a worker that dies is
 * replaced after a second. With `adminPort`, serves their metrics summed. Resolves once every worker
 * listens. Must be called in the primary.
 */
export async function superviseWorkers(opts: SupervisionOptions): Promise<Supervision> {
  const n = Math.max(1, opts.workers);
  const log = opts.log;
  const aggregator = new AggregatorRegistry();
  // the workers run the entry module with this process's Node flags (e.g. --import tsx), not its -e script
  const execArgv: string[] = [];
  const skip = new Set(['-e', '--eval', '-p', '--print']);
  for (let i = 0; i < process.execArgv.length; i++) {
    const a = process.execArgv[i] as string;
    if (skip.has(a)) i++;
    else if (!a.startsWith('--input-type') && !a.startsWith('--eval=') && !a.startsWith('--print=')) execArgv.push(a);
  }
  cluster.setupPrimary({ exec: workerEntry(), args: [], execArgv, silent: false });
  let closing = false;
  let port = 0;
  const env = { [WORKER_CONFIG_ENV]: JSON.stringify(opts.config) };
  const fork = (): Promise<Worker> =>
    new Promise((resolve, reject) => {
      // every worker asks for the configured port: with 0, node:cluster gives them all the same free one
      const w = cluster.fork(env);
      opts.onFork?.(w);
      const onExit = (code: number | null): void => reject(new Error(`router worker exited with ${code ?? 'a signal'} before listening`));
      w.once('exit', onExit);
      w.once('listening', (addr: AddressInfo) => {
        w.off('exit', onExit);
        port = addr.port;
        w.on('exit', (code, signal) => {
          if (closing) return;
          log?.('error', `router worker ${w.process.pid ?? '?'} exited (${signal ?? code}); starting another`);
          setTimeout(() => void fork().catch((err: unknown) => log?.('error', String(err))), 1000).unref();
        });
        resolve(w);
      });
    });
  await Promise.all(Array.from({ length: n }, () => fork()));
  let admin: Server | null = null;
  let adminPort: number | null = null;
  if (opts.adminPort !== undefined) {
    const limits = httpLimits(opts.settings?.limits);
    const sources = new AddressMatcher(opts.settings?.adminSources ?? LOOPBACK_SOURCES);
    admin = createServer(serverOptions(limits), (req, res) => {
      if (!sources.has(req.socket.remoteAddress)) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('the admin port answers only to the admin sources\n');
        return;
      }
      if (!(req.url ?? '').replace(/^\/_meridian/, '').startsWith('/metrics')) {
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('with workers, the admin port serves /metrics; use /_meridian/... on the traffic port\n');
        return;
      }
      aggregator.clusterMetrics().then(
        (text) => res.writeHead(200, { 'content-type': aggregator.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    applyHttpLimits(admin, limits);
    await new Promise<void>((r) => (admin as Server).listen(opts.adminPort, opts.host, r));
    adminPort = (admin.address() as AddressInfo).port;
  }
  const alive = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
  return {
    port,
    adminPort,
    workers: alive,
    close: async () => {
      closing = true;
      admin?.close();
      await Promise.all(
        alive().map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              w.once('exit', () => resolve());
              w.process.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

/** A router that follows the control plane (`meridian router --server URL`) instead of a fleet and an endpoints file. */
export interface FollowingConfig extends RouterSettings {
  readonly server: string;
  readonly token: string;
  readonly port: number;
  readonly host: string;
  readonly adminPort?: number;
  /**
   * Worker processes; 1 (default) runs the router in this process. With more, this process follows the
   * server once and relays each table to the workers (src/router/table-relay.ts).
   */
  readonly workers?: number;
}

/**
 * Runs one router in this process that follows the server's routing table (src/router/server-follower.ts),
 * or with `workers > 1` follows it here for that many worker processes.
 */
export async function startFollowing(config: FollowingConfig, log?: RouterLog): Promise<RunningRouter> {
  if ((config.workers ?? 1) > 1) {
    const { startFollowingWorkers } = await import('./table-relay.js');
    return startFollowingWorkers(config, log);
  }
  const { followServer } = await import('./server-follower.js');
  const follower = await followServer({
    server: config.server,
    token: config.token,
    router: routerOptionsOf(config),
    ...(log ? { log } : {}),
  });
  const { port } = await follower.router.listen(config.port, config.host);
  const adminPort = config.adminPort !== undefined ? (await follower.router.listenAdmin(config.adminPort, config.host)).port : null;
  return {
    port,
    adminPort,
    router: follower.router,
    reload: () => undefined, // the server pushes every change
    close: () => follower.close(),
  };
}
