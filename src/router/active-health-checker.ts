/**
 * Active health checks of every endpoint (`routing.<svc>.healthCheck`): an HTTP GET on the path (2xx and
 * 3xx pass) or a TCP connect when no path is known, every `interval`, failing after `timeout`. Each
 * endpoint's first check is spread over the first interval so that a large fleet is not checked in bursts.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { parseDuration } from '../units/duration.js';
import type { Routing } from '../spec/schema.js';
import type { RouterClock } from './clock.js';
import type { ProbeResult, Upstream } from './upstream.js';

export interface CheckPolicy {
  /** HTTP path, or null for a TCP connect check. */
  readonly path: string | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** The fleet's `healthCheck` with defaults: the service's own health path, every 5 s, 1 s timeout, 3 down, 2 up. */
export function checkPolicy(r: Routing['healthCheck'] | undefined, servicePath: string | null): CheckPolicy {
  return {
    path: r?.path ?? servicePath,
    intervalMs: (r?.interval !== undefined ? parseDuration(r.interval) : undefined) ?? 5000,
    timeoutMs: (r?.timeout !== undefined ? parseDuration(r.timeout) : undefined) ?? 1000,
    unhealthyThreshold: r?.unhealthyThreshold ?? 3,
    healthyThreshold: r?.healthyThreshold ?? 2,
  };
}

/** Runs one check; never rejects. */
export type Probe = (host: string, port: number, path: string | null, timeoutMs: number) => Promise<ProbeResult>;

/** HTTP GET (or TCP connect) with a fresh connection, so that a dead process is never hidden by a pooled socket. */
export const httpProbe: Probe = (host, port, path, timeoutMs) =>
  new Promise((resolve) => {
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      resolve(r);
    };
    const onError = (err: NodeJS.ErrnoException): void =>
      finish({ ok: false, refused: err.code === 'ECONNREFUSED', reason: err.code ?? err.message });
    if (path === null) {
      const socket = connect({ host, port });
      timer = setTimeout(() => {
        socket.destroy();
        finish({ ok: false, reason: `no TCP connection within ${timeoutMs} ms` });
      }, timeoutMs);
      socket.once('connect', () => {
        socket.destroy();
        finish({ ok: true });
      });
      socket.once('error', onError);
      return;
    }
    const req = request({ host, port, path, method: 'GET', agent: false, headers: { 'user-agent': 'meridian-router-health' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      res.on('error', () => undefined);
      finish(status >= 200 && status < 400 ? { ok: true } : { ok: false, reason: `HTTP ${status} from ${path}` });
    });
    timer = setTimeout(() => {
      finish({ ok: false, reason: `no answer from ${path} within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', onError);
    req.end();
  });

export class ActiveHealthChecker {
  #closed = false;

  constructor(
    private readonly clock: RouterClock,
    private readonly policyOf: (u: Upstream) => CheckPolicy,
    private readonly onResult: (u: Upstream, r: ProbeResult, p: CheckPolicy) => void,
    private readonly probe: Probe = httpProbe,
    private readonly random: () => number = Math.random,
  ) {}

  /** Starts checking an endpoint (the first check within one interval). */
  start(u: Upstream): void {
    if (this.#closed || u.checkTimer !== null) return;
    const p = this.policyOf(u);
    this.#arm(u, Math.floor(this.random() * p.intervalMs));
  }

  /** Runs a check now (e.g. right after an endpoint appears), then keeps the interval. */
  checkNow(u: Upstream): void {
    this.stop(u);
    this.#arm(u, 0);
  }

  stop(u: Upstream): void {
    if (u.checkTimer !== null) this.clock.clearTimeout(u.checkTimer);
    u.checkTimer = null;
  }

  close(): void {
    this.#closed = true;
  }

  #arm(u: Upstream, delay: number): void {
    if (this.#closed) return;
    u.checkTimer = this.clock.setTimeout(() => {
      if (this.#closed || u.gone) return;
      const p = this.policyOf(u);
      void this.probe(u.host, u.port, p.path, p.timeoutMs).then((r) => {
        if (this.#closed || u.gone || u.checkTimer === null) return;
        this.onResult(u, r, p);
        this.#arm(u, p.intervalMs);
      });
    }, delay);
  }
}
