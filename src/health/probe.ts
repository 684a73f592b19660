/**
 * One health check of one endpoint, shared by the local driver's supervision and the router's active
 * checks: an HTTP GET on a path (2xx and 3xx pass, as in Kubernetes) on a fresh connection, so that a dead
 * process is never hidden by a pooled socket, or a TCP connect when there is no path.
 *
 * The timeout is wall-clock time in which this process could have seen the answer. When the process
 * itself did not run — its event loop blocked, or the machine so busy that it was not scheduled — the
 * timer fires late, at the same turn of the loop as an answer that arrived long ago, and timers run
 * first. A check whose timer fired later than half its timeout past due is given the timeout once more:
 * an endpoint is not failed for the checker's own stall (a dead one still fails, refused at once; a hung
 * one after at most twice its timeout).
 */
import { request } from 'node:http';
import { connect } from 'node:net';

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** The HTTP path; null for a TCP connect check. */
  readonly path: string | null;
  readonly timeoutMs: number;
  /** The User-Agent of the HTTP check. */
  readonly userAgent?: string;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** False when nothing answered at all (connection refused or reset): the process may still be starting. */
  readonly reached?: boolean;
  /** The connection was refused: nothing listens there. */
  readonly refused?: boolean;
  /** Why it failed (`HTTP 503 from /healthz`, `no answer from /healthz within 1000 ms`, `/healthz: ECONNREFUSED`). */
  readonly reason?: string;
}

/** Runs one check; never rejects. */
export function probe(t: ProbeTarget): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    let cancelTimer = (): void => undefined;
    let abort = (): void => undefined;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      cancelTimer();
      abort();
      resolve(r);
    };
    const failed = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? err.message;
      finish({
        ok: false,
        reached: false,
        ...(err.code === 'ECONNREFUSED' ? { refused: true } : {}),
        reason: `${t.path ?? 'TCP'}: ${code}`,
      });
    };
    const path = t.path;
    if (path === null) {
      const socket = connect({ host: t.host, port: t.port });
      abort = () => socket.destroy();
      socket.once('connect', () => finish({ ok: true }));
      socket.once('error', failed);
      cancelTimer = stallTolerantTimeout(t.timeoutMs, () => finish({ ok: false, reason: `no TCP connection within ${t.timeoutMs} ms` }));
      return;
    }
    const req = request(
      { host: t.host, port: t.port, path, method: 'GET', agent: false, headers: { 'user-agent': t.userAgent ?? 'meridian-health' } },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        res.on('error', () => undefined);
        finish(status >= 200 && status < 400 ? { ok: true } : { ok: false, reason: `HTTP ${status} from ${path}` });
      },
    );
    req.on('error', failed);
    cancelTimer = stallTolerantTimeout(t.timeoutMs, () => {
      abort = () => req.destroy();
      finish({ ok: false, reason: `no answer from ${path} within ${t.timeoutMs} ms` });
    });
    req.end();
  });
}

/**
 * Calls `onTimeout` after `ms`, unless the timer fired more than half of `ms` late (this process was
 * stalled): then it waits `ms` once more. Answers a function that cancels it.
 */
export function stallTolerantTimeout(ms: number, onTimeout: () => void, now: () => number = () => performance.now()): () => void {
  let timer: ReturnType<typeof setTimeout>;
  let second = false;
  const arm = (): void => {
    const due = now() + ms;
    timer = setTimeout(() => {
      if (!second && now() - due > ms / 2) {
        second = true;
        arm();
        return;
      }
      onTimeout();
    }, ms);
  };
  arm();
  return () => clearTimeout(timer);
}
