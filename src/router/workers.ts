/**
 * Router workers: N processes sharing one traffic port through node:cluster, forked and kept running by
 * the primary, which serves their metrics summed on the admin port.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { applyHttpLimits, httpLimits, serverOptions } from '../http-limits.js';
import { AddressMatcher, LOOPBACK_SOURCES } from './address-matcher.js';
import type { RouterSettings } from './router-process.js';
import type { RouterLog } from './router.js';

/** The environment variable that carries a worker's configuration. */
export const WORKER_CONFIG_ENV = 'MERIDIAN_ROUTER_CONFIG';

/** The worker entry module (a sibling of this file: .ts under tsx, .js when built). */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.replace(/workers\.(ts|js)$/, 'worker-main.$1');
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
