/**
 * The router's admin surface, under a path prefix (default `/_meridian`) on the traffic port and,
 * optionally, on a port of its own. Only clients from the admin sources (default loopback) reach it; for
 * anyone else the prefix is an ordinary path.
 *
 * - `GET /_meridian/healthz` — 200 while the router runs
 * - `GET /_meridian/metrics` — Prometheus text format
 * - `GET /_meridian/stats` — JSON: snapshot version, endpoints and their states per service and cluster
 * - `GET /_meridian/debug/route?service=web&country=DE&user=u1` — a decision explained (also `host`,
 *   `path` to select the service as a request would, `ip` to resolve the country through GeoIP)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressMatcher } from './address-matcher.js';

/** What a `/debug/route` query may say. */
export interface RouteQuery {
  readonly service?: string;
  readonly host?: string;
  readonly path?: string;
  readonly country?: string;
  readonly ip?: string;
  readonly user?: string;
}

export interface AdminHost {
  explainRoute(q: RouteQuery): unknown;
  stats(): unknown;
  metricsText(): Promise<string>;
  readonly metricsContentType: string;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Serves an admin request; returns false when the request is not one (wrong prefix, or a client that is
 * not an admin source), so that it is routed like any other.
 */
export function serveAdmin(
  host: AdminHost,
  prefix: string,
  sources: AddressMatcher,
  req: IncomingMessage,
  res: ServerResponse,
  always = false,
): boolean {
  const url = req.url ?? '/';
  if (
    !always &&
    !(
      url.startsWith(prefix) &&
      (url.length === prefix.length || url.charCodeAt(prefix.length) === 47 || url.charCodeAt(prefix.length) === 63)
    )
  ) {
    return false;
  }
  if (!sources.has(req.socket.remoteAddress)) {
    if (!always) return false;
    json(res, 403, { error: 'forbidden', message: 'the admin endpoints answer only to the admin sources' });
    return true;
  }
  const u = new URL(url, 'http://admin');
  const path = always && !u.pathname.startsWith(prefix) ? u.pathname : u.pathname.slice(prefix.length) || '/';
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    json(res, 405, { error: 'method-not-allowed', message: 'the admin endpoints answer GET only' });
    return true;
  }
  const q = u.searchParams;
  switch (path) {
    case '/healthz':
      send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      return true;
    case '/metrics':
      host.metricsText().then(
        (text) => send(res, 200, host.metricsContentType, text),
        (err: unknown) => json(res, 500, { error: 'metrics', message: String(err) }),
      );
      return true;
    case '/stats':
      json(res, 200, host.stats());
      return true;
    case '/debug/route': {
      const query: Record<string, string> = {};
      for (const k of ['service', 'host', 'path', 'country', 'ip', 'user'] as const) {
        const v = q.get(k);
        if (v !== null) query[k] = v;
      }
      const out = host.explainRoute(query);
      json(res, out === null ? 404 : 200, out ?? { error: 'no-route', message: 'no routed service matches; pass service=NAME' });
      return true;
    }
    default:
      json(res, 404, {
        error: 'not-found',
        message: `no admin endpoint ${path}; try ${prefix}/debug/route, ${prefix}/metrics, ${prefix}/stats`,
      });
      return true;
  }
}
