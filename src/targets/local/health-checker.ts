/**
 * Health checks for local replicas: an HTTP GET on the service's health path (2xx and 3xx pass, as in
 * Kubernetes), or a TCP connect when the service declares no health path; and the consecutive
 * success/failure counting that turns single checks into a ready/unhealthy state.
 */
import { request } from 'node:http';
import { connect } from 'node:net';

export interface CheckResult {
  readonly ok: boolean;
  /** False when nothing answered at all (connection refused or reset): the process may still be starting. */
  readonly reached?: boolean;
  /** Why it failed (`HTTP 503`, `timeout after 1000 ms`, `ECONNREFUSED`); absent when it passed. */
  readonly reason?: string;
}

export interface CheckTarget {
  readonly host: string;
  readonly port: number;
  /** The HTTP path; null for a TCP connect check. */
  readonly path: string | null;
  readonly timeoutMs: number;
}

/** Runs one check; never rejects. */
export function checkOnce(t: CheckTarget): Promise<CheckResult> {
  return t.path === null ? checkTcp(t) : checkHttp(t, t.path);
}

function checkHttp(t: CheckTarget, path: string): Promise<CheckResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: CheckResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = request(
      { host: t.host, port: t.port, path, method: 'GET', agent: false, headers: { 'user-agent': 'meridian-health' } },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        res.on('error', () => undefined);
        finish(status >= 200 && status < 400 ? { ok: true } : { ok: false, reason: `HTTP ${status} from ${path}` });
      },
    );
    const timer = setTimeout(() => {
      finish({ ok: false, reason: `no answer from ${path} within ${t.timeoutMs} ms` });
      req.destroy();
    }, t.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reached: false, reason: `${path}: ${err.code ?? err.message}` }));
    req.end();
  });
}

function checkTcp(t: CheckTarget): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: t.host, port: t.port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, reason: `no TCP connection within ${t.timeoutMs} ms` });
    }, t.timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: true });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, reached: false, reason: `TCP: ${err.code ?? err.message}` });
    });
  });
}

export interface HealthThresholds {
  /** Consecutive passes that make a not-ready replica ready. */
  readonly healthyThreshold: number;
  /** Consecutive failures that make a ready replica unhealthy. */
  readonly unhealthyThreshold: number;
}

/** The ready/unhealthy state of one replica, driven by check results. Pure. */
export class HealthCounter {
  #successes = 0;
  #failures = 0;
  #ready = false;
  #lastFailure: string | null = null;

  constructor(private readonly thresholds: HealthThresholds) {}

  /** Records a result; returns `ready`/`unhealthy` when the state flips, else null. */
  record(result: CheckResult): 'ready' | 'unhealthy' | null {
    if (result.ok) {
      this.#successes += 1;
      this.#failures = 0;
      if (!this.#ready && this.#successes >= this.thresholds.healthyThreshold) {
        this.#ready = true;
        return 'ready';
      }
      return null;
    }
    this.#failures += 1;
    this.#successes = 0;
    this.#lastFailure = result.reason ?? 'check failed';
    if (this.#ready && this.#failures >= this.thresholds.unhealthyThreshold) {
      this.#ready = false;
      return 'unhealthy';
    }
    return null;
  }

  /** Forgets everything (a new process). */
  reset(): void {
    this.#successes = 0;
    this.#failures = 0;
    this.#ready = false;
    this.#lastFailure = null;
  }

  get ready(): boolean {
    return this.#ready;
  }
  get consecutiveSuccesses(): number {
    return this.#successes;
  }
  get consecutiveFailures(): number {
    return this.#failures;
  }
  get lastFailure(): string | null {
    return this.#lastFailure;
  }
}
