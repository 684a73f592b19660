// A tiny HTTP service for the local fleet: plain Node, no dependencies. Every service of the example
// shop is this app with a name; the local driver sets PORT, MERIDIAN_SERVICE, MERIDIAN_VERSION,
// MERIDIAN_CLUSTER, MERIDIAN_REGION, MERIDIAN_OFREP_URL and the rendered env/config/secrets.
//
// Feature flags: a service that declares `flags` (name → default) reads them over OFREP (./flags.mjs) and
// answers them as `"features"`, for the request's user (header x-user-id or cookie mrd_uid, the shop's
// sticky keys) when it has one. FLAGS_POLL_INTERVAL (default 500ms, at least 250ms) sets how often it asks.
//
// Fault knobs (from env or config), so that a rollout has something to catch:
//   FAULT_ERROR_RATIO  0..1 or 5%   that share of requests answers 500 (deterministic: exactly every 1/ratio-th)
//   FAULT_LATENCY      200ms, 1s    added to every request (not to health checks)
//   FAULT_CRASH_AFTER  100 or 30s   the process exits (code 1) after that many requests, or that long after start
//   FAULT_HEALTH       true         the health check answers 503
import { createServer } from 'node:http';
import { flagClient } from './flags.mjs';

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Milliseconds from `250ms`, `2s`, `1m`, or a bare number of milliseconds; 0 when unset or invalid. */
export function parseDuration(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text ?? '');
  if (!m) return 0;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms'];
  return Number(m[1]) * factor;
}

/** A ratio from `0.05` or `5%`, clamped to 0..1; 0 when unset or invalid. */
export function parseRatio(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%)?\s*$/.exec(text ?? '');
  if (!m) return 0;
  const r = Number(m[1]) / (m[2] ? 100 : 1);
  return Math.min(1, Math.max(0, r));
}

/** The request's user: the x-user-id header, else the mrd_uid cookie (the shop's sticky keys); undefined when none. */
function userOf(req) {
  const header = req.headers['x-user-id'];
  if (typeof header === 'string' && header !== '') return header;
  return /(?:^|;\s*)mrd_uid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
}

function truthy(text) {
  return /^(1|true|yes|on|fail)$/i.test(String(text ?? '').trim());
}

/**
 * Starts the service. `handle(req, url, info, features)` may return an object to merge into the JSON
 * answer for a path the service knows; everything else answers the common JSON. `flags`: the feature
 * flags it reads, with their defaults (`{ 'new-checkout': false }`).
 */
export function serve({ service, handle, flags } = {}) {
  const env = process.env;
  const port = Number(env.PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`${service ?? 'service'}: PORT must be set to a TCP port (got ${JSON.stringify(env.PORT)})`);
    process.exit(2);
  }
  const info = {
    service: env.MERIDIAN_SERVICE ?? service ?? 'unknown',
    version: env.MERIDIAN_VERSION ?? '0.0.0',
    cluster: env.MERIDIAN_CLUSTER ?? 'local',
    region: env.MERIDIAN_REGION ?? 'local',
    ...(env.MERIDIAN_TRACK ? { track: env.MERIDIAN_TRACK } : {}), // stable or canary, from the local driver
    ...(env.MERIDIAN_REPLICA ? { replica: env.MERIDIAN_REPLICA } : {}),
  };
  const healthPath = env.HEALTH_PATH ?? '/healthz';
  const errorRatio = parseRatio(env.FAULT_ERROR_RATIO);
  const latency = parseDuration(env.FAULT_LATENCY);
  const crash = env.FAULT_CRASH_AFTER ?? '';
  const crashAfterRequests = /^\s*\d+\s*$/.test(crash) ? Number(crash) : 0;
  const crashAfterMs = crashAfterRequests === 0 ? parseDuration(crash) : 0;
  const healthFails = truthy(env.FAULT_HEALTH);
  let served = 0;
  let shuttingDown = false;

  const log = (msg, extra = {}) => process.stdout.write(`${JSON.stringify({ msg, ...info, ...extra })}\n`);
  const features = flags
    ? flagClient({
        url: env.MERIDIAN_OFREP_URL,
        defaults: flags,
        context: { region: info.region, cluster: info.cluster, service: info.service },
        intervalMs: Math.max(250, parseDuration(env.FLAGS_POLL_INTERVAL) || 500),
        log,
      })
    : null;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const headers = { 'content-type': 'application/json', 'x-served-by': `${info.service}@${info.cluster}` };
    const trace = req.headers.traceparent;
    if (typeof trace === 'string' && TRACEPARENT.test(trace.trim())) headers.traceparent = trace.trim();
    const send = (status, body) => {
      // checked when answering, not on arrival: a request in flight at SIGTERM must not keep its
      // keep-alive connection (and so the process) open after it is answered
      if (shuttingDown) headers.connection = 'close';
      res.writeHead(status, headers);
      res.end(`${JSON.stringify(body)}\n`);
    };

    if (url.pathname === healthPath) {
      if (healthFails || shuttingDown) send(503, { status: shuttingDown ? 'stopping' : 'failing', ...info });
      else send(200, { status: 'ok', ...info });
      return;
    }

    served += 1;
    const n = served;
    // Deterministic error ratio: request n fails when it crosses the next multiple of 1/ratio.
    const fail = Math.floor(n * errorRatio) > Math.floor((n - 1) * errorRatio);
    const answer = async () => {
      if (crashAfterRequests > 0 && n >= crashAfterRequests) {
        res.on('finish', () => {
          log('crashing (FAULT_CRASH_AFTER)', { requests: n });
          process.exit(1);
        });
      }
      if (fail) return send(500, { error: 'injected fault (FAULT_ERROR_RATIO)', ...info, path: url.pathname });
      const values = features ? await features.flags(userOf(req)) : undefined;
      send(200, { ...info, path: url.pathname, ...(values ? { features: values } : {}), ...(handle?.(req, url, info, values) ?? {}) });
    };
    const run = () => void answer().catch((err) => send(500, { error: err.message, ...info, path: url.pathname }));
    if (latency > 0) setTimeout(run, latency);
    else run();
  });

  server.listen(port, '127.0.0.1', () => log('listening', { port, healthPath }));
  server.on('error', (err) => {
    console.error(`${info.service}: ${err.message}`);
    process.exit(2);
  });

  if (crashAfterMs > 0) {
    setTimeout(() => {
      log('crashing (FAULT_CRASH_AFTER)', { afterMs: crashAfterMs });
      process.exit(1);
    }, crashAfterMs).unref();
  }

  const stop = (signal) => {
    if (shuttingDown) return;
    shuttingDown = true;
    features?.stop();
    log('stopping', { signal });
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref(); // do not wait for ever on a slow client
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return server;
}
