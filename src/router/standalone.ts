/**
 * A standalone router process over a fleet and a static endpoints file (`meridian router`), alone or as
 * N workers sharing one port through node:cluster (one per core). Each worker runs its own health checks
 * and outlier detection; the primary only supervises, and serves aggregated metrics on `adminPort`. Also
 * the entry points of a router that follows the control plane instead (`startFollowing`).
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { InputError } from '../errors.js';
import { render, type Revision } from '../render/render.js';
import { loadFleet } from '../spec/load.js';
import { startTracing } from '../telemetry/tracing.js';
import { followFlags } from '../flags/ofrep-client.js';
import { checkEndpointsDocument, readEndpointsFile, StaticEndpoints, type EndpointsDocument } from './endpoints.js';
import { routerOptionsOf, routerSettingsOf, type FollowingConfig, type RouterSettings, type RunningRouter } from './router-process.js';
import { Router, type RouterLog } from './router.js';
import { superviseWorkers } from './workers.js';

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
