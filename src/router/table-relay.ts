/**
 * `meridian router --server URL --workers N`: the primary follows the control plane once (one event
 * stream, however many workers) and relays each table to its workers over the cluster's IPC channel;
 * each worker applies it to its own router. A worker that starts (the first ones, and each replacement)
 * asks the primary for the current table before it listens, so it never serves an older one.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { RouterLog } from './router.js';
import { connectControlPlane, describeTable, FollowedRouter, lagOf, type FollowedTable } from './server-follower.js';
import { routerOptionsOf, routerSettingsOf, type FollowingConfig, type RouterSettings, type RunningRouter } from './router-process.js';
import { superviseWorkers } from './workers.js';

/** A worker's configuration: the router's options, without the server or its token (the primary holds them). */
export interface RelayedWorkerConfig extends RouterSettings {
  readonly follow: 'primary';
  readonly port: number;
  readonly host: string;
}

/** The messages between the primary and its workers (distinct from prom-client's metrics messages). */
type RelayMessage =
  | { readonly type: 'meridian:table'; readonly seq: number; readonly table: FollowedTable }
  | { readonly type: 'meridian:table-request' }
  | { readonly type: 'meridian:table-applied'; readonly seq: number; readonly tableVersion: number };

function isRelayMessage(m: unknown): m is RelayMessage {
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof (m as { type?: unknown }).type === 'string' &&
    (m as { type: string }).type.startsWith('meridian:table')
  );
}

/** True for a worker configuration that follows its primary (see worker-main.ts). */
export function isRelayedWorkerConfig(config: object): config is RelayedWorkerConfig {
  return (config as { follow?: unknown }).follow === 'primary';
}

/**
 * Follows the server in this process (the primary) and runs `config.workers` router workers on one port
 * that get every table from it. Resolves once every worker listens with the current table. When the
 * server goes away the workers keep their last table; the primary reconnects as one router would.
 */
export async function startFollowingWorkers(config: FollowingConfig, log?: RouterLog): Promise<RunningRouter> {
  const feed = await connectControlPlane({ server: config.server, token: config.token, ...(log ? { log } : {}) });
  const workerConfig: RelayedWorkerConfig = {
    follow: 'primary',
    port: config.port,
    host: config.host,
    ...routerSettingsOf(config),
  };
  const send = (w: Worker, m: RelayMessage): void => {
    // a worker that is going away misses the message; its replacement asks for the current table
    if (w.isConnected()) w.send(m, undefined, {}, () => undefined);
  };

  // the table in force: what a starting worker gets, and what every worker is sent on a change (`seq`
  // numbers the changes here: a restarted server may count its table versions from the start again)
  let table = feed.current;
  let seq = 0;
  // what each worker has applied (by worker id); a change is logged once every worker has it
  const appliedBy = new Map<number, { seq: number; tableVersion: number }>();
  let logged = seq;
  let sentAt = Date.now();
  const logIfEverywhere = (alive: readonly Worker[]): void => {
    if (logged === seq || alive.length === 0 || !alive.every((w) => (appliedBy.get(w.id)?.seq ?? -1) >= seq)) return;
    logged = seq;
    const view = table.view;
    log?.(
      'info',
      `routing table ${view.tableVersion} applied in ${alive.length} worker${alive.length > 1 ? 's' : ''} (${describeTable(view)})${lagOf(view)}; relayed in ${Date.now() - sentAt} ms`,
    );
  };

  let supervision: Awaited<ReturnType<typeof superviseWorkers>> | null = null;
  const alive = (): Worker[] => supervision?.workers() ?? [];
  supervision = await superviseWorkers({
    workers: config.workers ?? 1,
    config: workerConfig,
    host: config.host,
    settings: routerSettingsOf(config),
    ...(config.adminPort !== undefined ? { adminPort: config.adminPort } : {}),
    ...(log ? { log } : {}),
    onFork: (w) => {
      w.on('message', (m: unknown) => {
        if (!isRelayMessage(m)) return;
        if (m.type === 'meridian:table-request') send(w, { type: 'meridian:table', seq, table });
        else if (m.type === 'meridian:table-applied') {
          appliedBy.set(w.id, { seq: m.seq, tableVersion: m.tableVersion });
          logIfEverywhere(alive());
        }
      });
      // a worker applies its first table before it listens (and its messages arrive in order)
      w.once('listening', () =>
        log?.('info', `router worker ${w.process.pid ?? '?'} listening with routing table ${appliedBy.get(w.id)?.tableVersion ?? '?'}`),
      );
      w.once('exit', () => {
        appliedBy.delete(w.id);
        logIfEverywhere(alive().filter((x) => x !== w));
      });
    },
  });
  feed.follow((next) => {
    table = next;
    seq++;
    sentAt = Date.now();
    for (const w of alive()) send(w, { type: 'meridian:table', seq, table: next });
  });
  const running = supervision;
  return {
    port: running.port,
    adminPort: running.adminPort,
    router: null,
    reload: () => undefined, // the server pushes every change
    close: async () => {
      await feed.close();
      await running.close();
    },
  };
}

/**
 * A worker of {@link startFollowingWorkers}: asks the primary for the current table, builds its router
 * over it, listens, and applies every table the primary relays (acknowledging each). Runs in a
 * node:cluster worker.
 */
export async function startRelayedWorker(config: RelayedWorkerConfig, log?: RouterLog): Promise<RunningRouter> {
  const send = process.send?.bind(process);
  if (!cluster.isWorker || send === undefined)
    throw new Error('startRelayedWorker runs in a router worker started by `meridian router --server URL --workers N`');
  let followed: FollowedRouter | null = null;
  let ready: (f: FollowedRouter) => void = () => undefined;
  const first = new Promise<FollowedRouter>((resolve) => (ready = resolve));
  const onMessage = (m: unknown): void => {
    if (!isRelayMessage(m) || m.type !== 'meridian:table') return;
    try {
      if (followed === null) {
        followed = new FollowedRouter(m.table, { ...routerOptionsOf(config), ...(log ? { log } : {}) });
        ready(followed);
      } else followed.apply(m.table);
      send({ type: 'meridian:table-applied', seq: m.seq, tableVersion: m.table.view.tableVersion } satisfies RelayMessage);
    } catch (err) {
      log?.('error', `could not apply routing table ${m.table.view.tableVersion}: ${(err as Error).message}; keeping the previous one`);
    }
  };
  process.on('message', onMessage);
  send({ type: 'meridian:table-request' } satisfies RelayMessage);
  const { router } = await first;
  const { port } = await router.listen(config.port, config.host);
  new AggregatorRegistry(); // installs the worker's answer to the primary's metrics requests
  AggregatorRegistry.setRegistries([router.metrics.registry]);
  return {
    port,
    adminPort: null,
    router,
    reload: () => undefined,
    close: async () => {
      process.off('message', onMessage);
      await router.close();
    },
  };
}
