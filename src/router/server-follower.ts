/**
 * A router that follows the control plane (`meridian router --server URL --token T`) instead of reading
 * a fleet and an endpoints file: it loads the routing view (`GET /api/v1/routing`) and the revision in
 * force, then subscribes to the server's `table` events (the routing view without its traffic shares) and applies each one — a new revision, the
 * endpoints, canary weights, drains and flag gates — as an atomic table swap. When the server goes away
 * the router keeps its last table and reconnects with exponential backoff (with `Last-Event-ID`, so
 * that it gets what it missed; a restarted server sends its current view instead).
 *
 * Two halves, so that one connection can feed many routers (`--workers`, src/router/table-relay.ts):
 * {@link connectControlPlane} follows the server and yields tables (a view with its revision), and
 * {@link FollowedRouter} applies tables to a router.
 */
import { type BackoffPolicy, RestartBackoff } from '../backoff.js';
import type { Revision } from '../render/render.js';
import { StaticEndpoints } from './endpoints.js';
import { RouterError } from './errors.js';
import { TableViewSchema, type TableView } from '../routing/view.js';
import { Router, type RouterLog, type RouterOptions } from './router.js';

/**
 * Reads a view the server sent against the contract (src/routing/view.ts); one that does not fit is an
 * error that says where, never a table built from a guess.
 */
export function parseTableView(json: unknown, from: string): TableView {
  const parsed = TableViewSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  throw new RouterError('MERIDIAN_E_ROUTER_SERVER', `${from} does not fit the routing view: ${where}${issue?.message ?? 'invalid'}`, {
    hint: 'run the router and the server from the same Meridian version',
  });
}

/** A routing view with the revision it names: everything a router needs for its table (plain data). */
export interface FollowedTable {
  readonly view: TableView;
  readonly revision: Revision;
}

/** How to reach the control plane, and how patiently. */
export interface ConnectOptions {
  /** The server's base URL (`http://127.0.0.1:7070/`). */
  readonly server: string;
  /** A bearer token with at least the viewer role. */
  readonly token: string;
  readonly log?: RouterLog;
  /** First reconnect delay, ms (default 250); doubles up to `maxBackoffMs` (default 10000). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** A stream silent this long is dead (the server sends heartbeats), ms (default 45000). */
  readonly idleMs?: number;
}

/** A connection to the control plane that has its first table and, once {@link follow} is called, follows the stream. */
export interface ControlPlaneFeed {
  /** The server's base URL, with a trailing slash. */
  readonly base: string;
  /** The last table received (the first one until the stream brings another). */
  readonly current: FollowedTable;
  /** True while the event stream is open. */
  readonly connected: boolean;
  /**
   * Opens the event stream and calls `onTable` with each later table, in order, one at a time (a
   * rejected call is logged; the next table is still delivered). Call once.
   */
  follow(onTable: (table: FollowedTable) => void | Promise<void>): void;
  /** Closes the stream and waits for the table being delivered. */
  close(): Promise<void>;
}

export interface FollowOptions extends ConnectOptions {
  /** The router's other options (GeoIP, health checks, …). */
  readonly router?: Omit<RouterOptions, 'revision' | 'endpoints' | 'state'>;
  /** Called after each view is applied, with its table version. */
  readonly onApplied?: (view: TableView) => void;
}

/** A router that follows a server. */
export interface ServerFollower {
  readonly router: Router;
  /** The table version last applied. */
  readonly applied: number;
  /** True while the event stream is open. */
  readonly connected: boolean;
  close(): Promise<void>;
}

const noLog: RouterLog = () => undefined;

/** A short description of a table for the logs. */
export function describeTable(view: TableView): string {
  return `revision ${view.revision ?? '-'}, ${view.endpoints.length} endpoints, ${view.drained.length} drained`;
}

/** How long ago the server made the change, as a log suffix (empty when the view does not say). */
export function lagOf(view: TableView, now = Date.now()): string {
  const lag = view.at ? now - Date.parse(view.at) : Number.NaN;
  return Number.isFinite(lag) ? `, ${lag} ms after the change` : '';
}

/** A router built over a followed table, to which later tables are applied (each an atomic table swap). */
export class FollowedRouter {
  readonly router: Router;
  readonly #source: StaticEndpoints;
  #current: TableView;

  constructor(table: FollowedTable, opts: Omit<RouterOptions, 'revision' | 'endpoints' | 'state'> = {}) {
    const { view, revision } = table;
    this.#source = new StaticEndpoints(view.endpoints, versionOf(revision));
    this.router = new Router({
      ...opts,
      revision,
      endpoints: this.#source,
      state: { drained: view.drained, ramp: view.ramp, canary: view.canary, ...(view.flags ? { flags: view.flags } : {}) },
    });
    this.router.flush(true);
    this.#current = view;
  }

  /** The table version last applied. */
  get applied(): number {
    return this.#current.tableVersion;
  }

  /** Applies the next table: its revision (when another), endpoints, canary weights, drains and flag gates. */
  apply(table: FollowedTable): void {
    const { view: next, revision } = table;
    const router = this.router;
    const current = this.#current;
    if (revision.id !== router.revision.id) router.setRevision(revision);
    // endpoints are listed again only when they changed (a drain or a weight leaves them as they are)
    if (JSON.stringify(next.endpoints) !== JSON.stringify(current.endpoints)) this.#source.replace(next.endpoints);
    for (const [svc, byCluster] of Object.entries(current.canary)) {
      for (const c of Object.keys(byCluster)) if (!next.canary[svc]?.[c]) router.setCanary(svc, c, null);
    }
    for (const [svc, byCluster] of Object.entries(next.canary))
      for (const [c, canary] of Object.entries(byCluster)) router.setCanary(svc, c, canary);
    router.setDrained(
      current.drained.filter((d) => !next.drained.includes(d)),
      false,
    );
    router.setDrained(next.drained, true);
    router.setRamp(next.ramp);
    if (next.flags) router.setFlags(next.flags);
    router.flush(true);
    this.#current = next;
  }
}

function versionOf(rev: Revision): (cluster: string, service: string) => string {
  return (c, s) => rev.clusters[c]?.services[s]?.version ?? 'unknown';
}

/**
 * Loads the routing view and its revision from the server, retrying with backoff until it answers (a
 * refused token is fatal). Resolves with the first table; {@link ControlPlaneFeed.follow} then follows
 * the event stream, reconnecting with backoff and `Last-Event-ID` whenever it is lost.
 */
export async function connectControlPlane(opts: ConnectOptions): Promise<ControlPlaneFeed> {
  const log = opts.log ?? noLog;
  const base = opts.server.endsWith('/') ? opts.server : `${opts.server}/`;
  const headers = { authorization: `Bearer ${opts.token}` };
  // reconnects: from `backoffMs`, doubling up to `maxBackoffMs`, ±20 % so routers do not come back in step;
  // a stream that stayed up 10 s starts the backoff again
  const policy: BackoffPolicy = {
    initialMs: opts.backoffMs ?? 250,
    factor: 2,
    maxMs: opts.maxBackoffMs ?? 10_000,
    jitter: 0.2,
    resetAfterMs: 10_000,
  };
  const ctl = new AbortController();
  let closed = false;

  async function getJson(path: string): Promise<unknown> {
    const res = await fetch(new URL(path, base), { headers, signal: AbortSignal.any([ctl.signal, AbortSignal.timeout(10_000)]) });
    const text = await res.text();
    if (!res.ok) {
      let message = text.slice(0, 300);
      try {
        const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
        if (e?.message) message = `${e.code ?? ''} ${e.message}`.trim();
      } catch {
        // not JSON
      }
      const err = new RouterError(
        'MERIDIAN_E_ROUTER_SERVER',
        `the control plane at ${base} answered ${res.status} to ${path}: ${message}`,
        {
          hint:
            res.status === 401 || res.status === 403
              ? 'pass a token with at least the viewer role: --token, or MERIDIAN_SERVER_TOKEN'
              : 'check the server',
        },
      );
      if (res.status === 401 || res.status === 403) (err as { fatal?: boolean }).fatal = true;
      throw err;
    }
    return JSON.parse(text) as unknown;
  }

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      ctl.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });

  // the first table: wait for the server as long as it takes (a wrong token is fatal)
  let current: FollowedTable;
  const waiting = new RestartBackoff(policy);
  for (;;) {
    try {
      const view = parseTableView(await getJson('api/v1/routing'), `${base}api/v1/routing`);
      if (view.revision === null) throw new RouterError('MERIDIAN_E_ROUTER_SERVER', `the control plane at ${base} knows no fleet yet`);
      const revision = (await getJson(`api/v1/revisions/${encodeURIComponent(view.revision)}`)) as Revision;
      current = { view, revision };
      break;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      const delay = waiting.next(0);
      log('warn', `waiting for the control plane at ${base}: ${(err as Error).message}; again in ${delay} ms`);
      await sleep(delay);
    }
  }

  let connected = false;
  let onTable: ((table: FollowedTable) => void | Promise<void>) | null = null;

  // delivers tables one at a time, in order; a new revision is loaded first
  let chain = Promise.resolve();
  const enqueue = (v: TableView): void => {
    chain = chain
      .then(async () => {
        const revision =
          v.revision !== null && v.revision !== current.revision.id
            ? ((await getJson(`api/v1/revisions/${encodeURIComponent(v.revision)}`)) as Revision)
            : current.revision;
        const next = { view: v, revision };
        await onTable?.(next);
        current = next;
      })
      .catch((err: unknown) =>
        log('error', `could not apply routing table ${v.tableVersion}: ${(err as Error).message}; keeping the previous one`),
      );
  };

  async function stream(lastId: string | null): Promise<string | null> {
    const idle = opts.idleMs ?? 45_000;
    const local = new AbortController();
    const abort = (): void => local.abort();
    ctl.signal.addEventListener('abort', abort, { once: true });
    let watchdog = setTimeout(abort, idle);
    try {
      const res = await fetch(new URL('api/v1/events?types=table', base), {
        headers: { ...headers, accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
        signal: local.signal,
      });
      if (!res.ok || !res.body) {
        const err = new RouterError('MERIDIAN_E_ROUTER_SERVER', `the control plane's event stream answered ${res.status}`);
        if (res.status === 401 || res.status === 403) log('error', `${err.message}: the token is refused`);
        throw err;
      }
      connected = true;
      log('info', `following the control plane at ${base}`);
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        clearTimeout(watchdog);
        watchdog = setTimeout(abort, idle);
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          let id: string | null = null;
          for (const line of frame.split('\n')) {
            if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            else if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('id:')) id = line.slice(3).trim();
          }
          if (id !== null) lastId = id;
          if ((event === 'table' || event === 'routing') && data.length > 0) {
            try {
              enqueue(parseTableView(JSON.parse(data.join('\n')), `a ${event} event from ${base}`));
            } catch (err) {
              log('warn', `${(err as Error).message}; keeping routing table ${current.view.tableVersion}`);
            }
          }
        }
      }
    } catch (err) {
      if (!closed)
        log('warn', `lost the control plane at ${base} (${(err as Error).message}); keeping routing table ${current.view.tableVersion}`);
    } finally {
      clearTimeout(watchdog);
      ctl.signal.removeEventListener('abort', abort);
      connected = false;
    }
    return lastId;
  }

  let loop: Promise<void> = Promise.resolve();
  return {
    base,
    get current() {
      return current;
    },
    get connected() {
      return connected;
    },
    follow(fn) {
      if (onTable) throw new Error('ControlPlaneFeed.follow called twice');
      onTable = fn;
      loop = (async () => {
        let lastId: string | null = null;
        const reconnects = new RestartBackoff(policy);
        while (!closed) {
          const opened = Date.now();
          lastId = await stream(lastId);
          if (closed) break;
          const delay = reconnects.next(Date.now() - opened);
          log('info', `reconnecting to the control plane in ${delay} ms`);
          await sleep(delay);
        }
      })();
    },
    close: async () => {
      closed = true;
      ctl.abort();
      await loop;
      await chain;
    },
  };
}

/**
 * Loads the routing view and revision from the server (retrying with backoff until it answers), builds
 * the router over them, and follows the event stream. Resolves once the router has its first table.
 */
export async function followServer(opts: FollowOptions): Promise<ServerFollower> {
  const log = opts.log ?? noLog;
  const feed = await connectControlPlane(opts);
  const followed = new FollowedRouter(feed.current, { ...opts.router, ...(opts.log ? { log: opts.log } : {}) });
  opts.onApplied?.(feed.current.view);
  feed.follow((table) => {
    followed.apply(table);
    log('info', `routing table ${table.view.tableVersion} applied (${describeTable(table.view)})${lagOf(table.view)}`);
    opts.onApplied?.(table.view);
  });
  return {
    router: followed.router,
    get applied() {
      return followed.applied;
    },
    get connected() {
      return feed.connected;
    },
    close: async () => {
      await feed.close();
      await followed.router.close();
    },
  };
}
