/**
 * The limits every Meridian HTTP listener (the router's traffic and admin ports, the control plane)
 * puts on its clients: how long headers, a whole request and a silent connection may take, and how many
 * connections may be open at once. One mechanism for every listener, so a slowloris client that sends
 * nothing, trickles its headers or announces a body it never sends is cut off the same way everywhere.
 * See docs/router.md and docs/server.md ("HTTP limits and trust").
 */
import type { Server } from 'node:http';

/** What a listener allows its clients. Every duration is in milliseconds; 0 turns that limit off. */
export interface HttpLimits {
  /** From the connection (or the end of the previous request) to the end of the request headers. */
  readonly headersTimeoutMs: number;
  /** From the start of a request to the end of its body. */
  readonly requestTimeoutMs: number;
  /** No byte either way on a connection with a request open for this long closes it (body and send stalls). */
  readonly idleTimeoutMs: number;
  /** A kept-alive connection with no request open is closed after this long. */
  readonly keepAliveTimeoutMs: number;
  /** Connections over this many are closed as soon as they are accepted. */
  readonly maxConnections: number;
}

/**
 * The defaults, close to what the usual proxies ship: nginx closes slow headers, bodies and sends after
 * 60 s and idle keep-alive connections after 75 s; Envoy's edge guidance sets a 10 s headers timeout;
 * HAProxy's example configurations use `timeout http-request 10s`; Node's own request timeout is 300 s.
 */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 65_000,
  maxConnections: 4096,
};

/** The defaults with the given limits replaced. */
export function httpLimits(overrides: Partial<HttpLimits> = {}): HttpLimits {
  const out: Record<string, number> = { ...DEFAULT_HTTP_LIMITS };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) out[k] = v;
  return out as unknown as HttpLimits;
}

/**
 * The options of `http.createServer` that carry the limits. Node checks the headers and request
 * timeouts on a sweep (`connectionsCheckingInterval`, 30 s by default, far coarser than a 20 s limit),
 * so the sweep runs four times per headers timeout (at least every 250 ms, at most every 5 s).
 */
export function serverOptions(limits: HttpLimits): {
  keepAliveTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  // Node refuses a headers timeout above a non-zero request timeout
  const headersTimeout =
    limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs ? limits.requestTimeoutMs : limits.headersTimeoutMs;
  const sweep = Math.min(headersTimeout || 20_000, limits.requestTimeoutMs || 20_000);
  return {
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    headersTimeout,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(sweep / 4))),
  };
}

/** Puts the limits that are not `createServer` options (idle timeout, connection cap) on a server. */
export function applyHttpLimits(server: Server, limits: HttpLimits): Server {
  server.timeout = limits.idleTimeoutMs; // no 'timeout' listener: Node destroys the socket
  server.maxConnections = limits.maxConnections > 0 ? limits.maxConnections : Infinity;
  return server;
}
