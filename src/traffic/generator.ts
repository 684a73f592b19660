/**
 * Synthetic clients: real HTTP requests through the router at a steady rate (open loop: requests are
 * sent on schedule whether or not earlier ones have answered), each from a chosen country, as a user
 * from a bounded population so that stickiness can be seen.
 */
import { Agent, request } from 'node:http';
import { MixPicker, type Mix } from './mix.js';
import { emptyStats, type CountryStats, type TrafficReport } from './report.js';

export interface TrafficOptions {
  /** The router's URL, e.g. http://127.0.0.1:8080/ . */
  readonly url: string;
  readonly rps: number;
  readonly mix: Mix;
  /** Stop after this long … */
  readonly durationMs?: number;
  /** … or after this many requests, whichever comes first. */
  readonly requests?: number;
  /** The header that carries the client's country (the router must trust the source: loopback by default). */
  readonly countryHeader?: string;
  /** Distinct users per country; each request is from one of them (cookie and x-user-id). */
  readonly users?: number;
  /** The stickiness cookie's name. */
  readonly cookie?: string;
  /** A Host header to send (to pick a service by host). */
  readonly host?: string;
  /** Per-request timeout. */
  readonly timeoutMs?: number;
  /** Called about once a second with the report so far. */
  readonly onProgress?: (r: TrafficReport) => void;
  /** Stops early when aborted; the report covers what was sent. */
  readonly signal?: AbortSignal;
  /** Called with every answer (or failure), for callers that judge traffic over time (`meridian drill`). */
  readonly onAnswer?: (a: Answer) => void;
}

/** One request's outcome: when it was sent (`performance.now()` ms), from where, what came back. */
export interface Answer {
  readonly sentAt: number;
  readonly country: string;
  /** The HTTP status, or 0 when the request failed (timeout, reset, refused). */
  readonly status: number;
  readonly latencyMs: number;
  readonly cluster: string | null;
}

const TICK_MS = 10;

/** Sends the traffic and resolves with what it saw once every request has answered or timed out. */
export async function runTraffic(opts: TrafficOptions): Promise<TrafficReport> {
  const url = new URL(opts.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const picker = new MixPicker(opts.mix);
  const countries: Record<string, CountryStats> = {};
  const header = opts.countryHeader ?? 'x-client-country';
  const users = Math.max(1, opts.users ?? 100);
  const cookie = opts.cookie ?? 'mrd_uid';
  const limit = opts.requests ?? Number.POSITIVE_INFINITY;
  const duration = opts.durationMs ?? (Number.isFinite(limit) ? Number.POSITIVE_INFINITY : 10_000);
  const start = performance.now();
  let sent = 0;
  const inflight = new Set<Promise<void>>();
  let lastProgress = start;

  const one = (country: string): Promise<void> => {
    const stats = (countries[country] ??= emptyStats());
    stats.sent++;
    const user = `${country.toLowerCase()}-${(stats.sent - 1) % users}`;
    const t0 = performance.now();
    return new Promise<void>((resolve) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          method: 'GET',
          agent,
          timeout: opts.timeoutMs ?? 5000,
          headers: { [header]: country, 'x-user-id': user, cookie: `${cookie}=${user}`, ...(opts.host ? { host: opts.host } : {}) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const inc = (m: Record<string, number>, k: string | string[] | undefined): void => {
              if (typeof k === 'string') m[k] = (m[k] ?? 0) + 1;
            };
            inc(stats.statuses, String(res.statusCode));
            inc(stats.clusters, res.headers['x-meridian-cluster']);
            inc(stats.versions, res.headers['x-meridian-version']);
            if ((res.statusCode ?? 0) >= 500) inc(stats.reasons, res.headers['x-meridian-reason']);
            stats.latenciesMs.push(performance.now() - t0);
            const c = res.headers['x-meridian-cluster'];
            opts.onAnswer?.({
              sentAt: t0,
              country,
              status: res.statusCode ?? 0,
              latencyMs: performance.now() - t0,
              cluster: typeof c === 'string' ? c : null,
            });
            resolve();
          });
          res.on('error', () => resolve());
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        const key = err.message === 'timeout' ? 'timeout' : 'error';
        stats.statuses[key] = (stats.statuses[key] ?? 0) + 1;
        stats.latenciesMs.push(performance.now() - t0);
        opts.onAnswer?.({ sentAt: t0, country, status: 0, latencyMs: performance.now() - t0, cluster: null });
        resolve();
      });
      req.end();
    });
  };

  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const elapsed = now - start;
      if (elapsed >= duration || sent >= limit || opts.signal?.aborted) {
        clearInterval(timer);
        done();
        return;
      }
      const due = Math.min(limit, Math.floor((elapsed / 1000) * opts.rps)) - sent;
      for (let i = 0; i < due; i++) {
        sent++;
        const p = one(picker.next());
        inflight.add(p);
        void p.then(() => inflight.delete(p));
      }
      if (opts.onProgress && now - lastProgress >= 1000) {
        lastProgress = now;
        opts.onProgress({ url: opts.url, durationMs: elapsed, countries });
      }
    }, TICK_MS);
  });
  await Promise.all(inflight);
  agent.destroy();
  return { url: opts.url, durationMs: performance.now() - start, countries };
}
