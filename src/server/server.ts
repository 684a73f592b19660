/**
 * `meridian serve`: the control plane over node:http — the API of src/server/routes.ts, the event
 * stream, Prometheus metrics, OFREP flag evaluation at /ofrep/v1/, and the dashboard's static files at
 * `/`. Every API call but the document and liveness needs a bearer token whose role allows it (OFREP
 * too with `ofrepAuth`; without it OFREP is open and read-only); every mutating call is audited with the
 * identity that made it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { applyHttpLimits, httpLimits, serverOptions, type HttpLimits } from '../http-limits.js';
import { ofrepHandler, type OfrepHandler } from '../flags/ofrep-handler.js';
import { storeFlagSource } from '../flags/store-source.js';
import { flagState } from '../flags/flag-state.js';
import { MeridianError } from '../errors.js';
import type { Revision } from '../render/render.js';
import type { Recovery } from '../spec/schema.js';
import type { RolloutRecord, Store } from '../store/store.js';
import { ApiError, errorBody, statusOf } from './api-error.js';
import { authorize, Authenticator, bearerOf } from './auth/authenticate.js';
import { type OidcConfig, OidcVerifier } from './auth/oidc.js';
import type { Identity } from './auth/roles.js';
import { ControlState } from './control-state.js';
import { hostAllowed } from './host-check.js';
import { EventHub } from './event-hub.js';
import type { FleetLink } from './fleet-link.js';
import { openApiDocument } from './openapi.js';
import { compile, match, type CompiledRoute, type RouteSpec } from './route.js';
import { apiRoutes, flagDefinitions } from './routes.js';
import { ServerMetrics } from './server-metrics.js';
import { staticHandler } from './static.js';
import { registerRolloutMetrics } from '../rollout/rollout-metrics.js';

/** The version the server reports. */
export const SERVER_VERSION = '0.1.0';

export interface ServerOptions {
  readonly store: Store;
  /** Default 0 (a free port). */
  readonly port?: number | undefined;
  /** Default 127.0.0.1. */
  readonly host?: string | undefined;
  readonly link?: FleetLink | null | undefined;
  /** The fleet as written, in force while the store records nothing running. */
  readonly written?: Revision | null | undefined;
  /** The fleet's recovery policy: the safety rules every drain through the API is checked against (residency alone when absent). */
  readonly recovery?: Recovery | undefined;
  readonly oidc?: OidcConfig | undefined;
  /**
   * Whether OFREP (`/ofrep/v1/…`) needs a bearer token the API accepts (any role: reading flags needs
   * `viewer`). Default false: OFREP is open and read-only, as `meridian up`'s control API serves it.
   */
  readonly ofrepAuth?: boolean | undefined;
  /**
   * Host names (beyond loopback names) that `Host` may carry. Bound to loopback, only loopback names and
   * these are answered (DNS rebinding); bound beyond it, any name unless this lists some.
   */
  readonly allowedHosts?: readonly string[] | undefined;
  /** An in-memory admin token (what `meridian up` puts into the dashboard URL); accepted from loopback peers only. */
  readonly localAdmin?: { readonly token: string; readonly id: string } | undefined;
  /** The dashboard's directory, or null for none. */
  readonly dashboard?: string | null | undefined;
  readonly storePollMs?: number | undefined;
  readonly fleetPollMs?: number | undefined;
  readonly heartbeatMs?: number | undefined;
  readonly log?: ((level: 'info' | 'error', message: string) => void) | undefined;
  /** Timeouts and the connection cap of the listener (defaults: `DEFAULT_HTTP_LIMITS`, src/http-limits.ts). */
  readonly limits?: Partial<HttpLimits> | undefined;
}

export interface RunningServer {
  /** `http://HOST:PORT/` */
  readonly url: string;
  readonly port: number;
  readonly state: ControlState;
  readonly hub: EventHub;
  readonly routes: readonly RouteSpec[];
  readonly openapi: Record<string, unknown>;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError('MERIDIAN_E_API_BAD_REQUEST', `the request body is larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError('MERIDIAN_E_API_BAD_REQUEST', `the request body is not JSON: ${(err as Error).message}`, {
      hint: 'send a JSON object with `content-type: application/json`',
    });
  }
}

function parseBody<B>(schema: z.ZodType<B>, value: unknown, where: string): B {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`).join('; ');
  throw new ApiError('MERIDIAN_E_API_INVALID', `the body of ${where} is invalid: ${problems}`, {
    hint: 'see the request schema in /api/v1/openapi.json',
  });
}

/**
 * An authentication failure on `/ofrep/`: OFREP leaves the body of its 401/403 open, and its clients read
 * `errorDetails` (its general error shape), so that carries the message and hint; `error` is the API's own
 * body, so a Meridian client finds the same code as on any other call.
 */
function sendOfrepRefusal(res: ServerResponse, status: number, err: unknown): void {
  const { error } = errorBody(err);
  const text = JSON.stringify({ errorDetails: error.hint ? `${error.message}; ${error.hint}` : error.message, error });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...(status === 401 ? { 'www-authenticate': 'Bearer realm="meridian"' } : {}),
  });
  res.end(text);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

/**
 * The URL of a request target. In origin form (`/path?query`) a leading `//` is part of the path, not an
 * authority: `new URL('//x%%', base)` would throw, and did so outside any handler (a one-line request
 * ended the process). Anything that still does not parse is the client's error: 400.
 */
function requestUrl(target: string): URL {
  try {
    return target.startsWith('/') ? new URL(`http://localhost${target}`) : new URL(target, 'http://localhost');
  } catch (err) {
    throw new ApiError('MERIDIAN_E_API_BAD_REQUEST', `the request target ${JSON.stringify(target.slice(0, 200))} is not a URL`, {
      cause: err,
      hint: 'send a path that starts with / and escape its segments with encodeURIComponent',
    });
  }
}

/** Starts the control plane. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const metrics = new ServerMetrics();
  let state: ControlState | null = null;
  // rollout metrics (src/rollout/rollout-metrics.ts), fed with every rollout event the store holds, in order
  const rolloutMetrics = registerRolloutMetrics(metrics.registry, {
    ...(opts.written ? { revision: opts.written } : {}),
    regionOf: (cluster) => state?.revision?.clusters[cluster]?.region,
  });
  const fedUpTo = new Map<string, number>();
  const feed = async (r: RolloutRecord): Promise<void> => {
    const events = await opts.store.listRolloutEvents(r.id, { afterSeq: fedUpTo.get(r.id) ?? 0 });
    for (const e of events) rolloutMetrics.observe(e, r);
    const last = events[events.length - 1];
    if (last) fedUpTo.set(r.id, last.seq);
  };
  const hub = new EventHub({
    ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
    snapshot: (t) => {
      if (!state) return undefined;
      if (t === 'routing') return state.routing;
      if (t === 'table') return state.table;
      if (t === 'health') return { clusters: state.clusters };
      if (t === 'traffic') return state.traffic;
      return undefined;
    },
    onSubscribersChanged: (n) => metrics.subscribers.set(n),
    onPublish: (type, data) => {
      metrics.events.inc({ type });
      // a revoked token's streams end now, not at the next heartbeat
      if (type === 'audit' && (data as { action?: unknown } | null)?.action === 'token.revoke') void hub.recheck();
    },
  });
  const log = opts.log ?? (() => undefined);
  state = new ControlState({
    store: opts.store,
    hub,
    link: opts.link,
    written: opts.written,
    recovery: opts.recovery,
    storePollMs: opts.storePollMs,
    fleetPollMs: opts.fleetPollMs,
    onRolloutChanged: feed,
    flags: async (rev) => {
      const st = flagState(flagDefinitions(rev), await opts.store.listFlagSettings(rev.fleet));
      const out: Record<string, Record<string, { enabled: boolean; percent: number }>> = {};
      for (const [name, f] of Object.entries(st.flags)) {
        out[name] = Object.fromEntries(Object.entries(f.regions).map(([r, g]) => [r, { enabled: g.enabled, percent: g.percent }]));
      }
      return out;
    },
    log: (m) => log('error', m),
  });
  const auth = new Authenticator({
    store: opts.store,
    oidc: opts.oidc ? new OidcVerifier(opts.oidc) : undefined,
    localAdmin: opts.localAdmin,
  });
  let doc: Record<string, unknown> = {};
  const specs = apiRoutes({ store: opts.store, state, hub, registry: metrics.registry, version: SERVER_VERSION, openapi: () => doc });
  doc = openApiDocument(specs, SERVER_VERSION);
  const routes: CompiledRoute[] = specs.map(compile);
  const dashboard = opts.dashboard ? staticHandler(opts.dashboard) : null;
  const st = state;
  let ofrep: OfrepHandler | null = null;
  const ofrepFor = (): OfrepHandler | null => {
    const rev = st.revision;
    if (!rev) return null;
    ofrep ??= ofrepHandler(
      { load: () => storeFlagSource(opts.store, flagDefinitions(st.revision ?? rev)).load() },
      { onError: (err) => log('error', `OFREP: ${String(err)}`) },
    );
    return ofrep;
  };

  const host = opts.host ?? '127.0.0.1';
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    let url = new URL('http://localhost/');
    const method = req.method ?? 'GET';
    const peer = req.socket.remoteAddress;
    let label = 'unmatched';
    const done = (code: number): void => {
      metrics.requests.inc({ method, route: label, code: String(code) });
      metrics.duration.observe({ method, route: label }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    try {
      url = requestUrl(req.url ?? '/');
      if (!hostAllowed(req.headers.host, host, opts.allowedHosts)) {
        throw new ApiError(
          'MERIDIAN_E_API_HOST',
          `this control plane does not answer to the host name in Host: ${JSON.stringify(req.headers.host)}`,
          {
            hint: 'reach it as localhost or 127.0.0.1, or start it with --allowed-host NAME (a page of another site may be trying DNS rebinding)',
          },
        );
      }
      if (url.pathname.startsWith('/ofrep/')) {
        label = '/ofrep/v1';
        if (opts.ofrepAuth) {
          try {
            authorize(await auth.identify(bearerOf(req, url), peer), 'read', 'evaluate flags over OFREP');
          } catch (err) {
            const status = statusOf(err);
            if (status !== 401 && status !== 403) throw err;
            metrics.authFailures.inc({ reason: status === 403 ? 'forbidden' : 'unauthenticated' });
            sendOfrepRefusal(res, status, err);
            done(status);
            return;
          }
        }
        const h = ofrepFor();
        if (h && h(req, res)) {
          res.on('finish', () => done(res.statusCode));
          return;
        }
        throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', 'flag evaluation needs a fleet, and the control plane knows none yet');
      }
      const m = match(routes, method, url.pathname);
      if (m.route === null) {
        if (!url.pathname.startsWith('/api/') && dashboard?.(req, res)) {
          label = 'dashboard';
          res.on('finish', () => done(res.statusCode));
          return;
        }
        if (m.allowed.length > 0) {
          res.setHeader('allow', m.allowed.join(', '));
          throw new ApiError('MERIDIAN_E_API_METHOD', `${method} is not allowed on ${url.pathname}`, {
            hint: `use ${m.allowed.join(' or ')}`,
          });
        }
        throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no ${url.pathname}`, {
          hint: 'the API is described at /api/v1/openapi.json',
        });
      }
      const spec = m.route.spec;
      label = spec.path;
      let identity: Identity | null = null;
      let bearer: string | null = null;
      if (spec.permission !== null) {
        try {
          bearer = bearerOf(req, url, spec.response.kind === 'sse');
          identity = await auth.identify(bearer, peer);
          authorize(identity, spec.permission, spec.action ?? `${method} ${spec.path}`);
        } catch (err) {
          metrics.authFailures.inc({ reason: statusOf(err) === 403 ? 'forbidden' : 'unauthenticated' });
          throw err;
        }
      }
      const body = spec.body ? parseBody(spec.body, await readJson(req), `${method} ${spec.path}`) : undefined;
      const actor = identity ? { id: identity.id, via: identity.via } : { id: 'anonymous', via: 'none' };
      const stillValid = (): Promise<boolean> =>
        spec.permission === null
          ? Promise.resolve(true)
          : auth.identify(bearer, peer).then(
              () => true,
              (err: unknown) => statusOf(err) !== 401, // a revoked or expired token; an unreachable issuer is not a verdict
            );
      const out = await spec.handle({ req, res, url, params: m.params, body, identity, actor, stillValid });
      if (spec.response.kind === 'sse') {
        done(200);
        return;
      }
      if (spec.response.kind === 'text') {
        const text = String(out);
        res.writeHead(200, {
          'content-type': spec.response.contentType,
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
        });
        res.end(text);
        done(200);
        return;
      }
      const status = spec.response.kind === 'json' ? (spec.response.status ?? 200) : 200;
      sendJson(res, status, out);
      done(status);
    } catch (err) {
      const status = statusOf(err);
      if (!(err instanceof MeridianError && err.user))
        log('error', `${method} ${url.pathname}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      else if (status >= 500 && !(err instanceof ApiError)) log('error', `${method} ${url.pathname}: ${err.code}: ${err.message}`);
      if (res.headersSent) res.destroy();
      else sendJson(res, status, errorBody(err));
      done(status);
    }
  }

  await state.start();
  const limits = httpLimits(opts.limits);
  const server: Server = applyHttpLimits(
    createServer(serverOptions(limits), (req, res) => {
      // handle answers every error itself; this is the last net, so that no request can end the process
      handle(req, res).catch((err: unknown) => {
        log('error', `${req.method ?? '?'} request failed outside the handler: ${err instanceof Error ? err.message : String(err)}`);
        res.destroy();
      });
    }),
    limits,
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    state,
    hub,
    routes: specs,
    openapi: doc,
    close: async () => {
      st.stop();
      hub.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await opts.link?.close();
    },
  };
}
