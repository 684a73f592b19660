/**
 * One request on its way through the router ({@link Exchange}): its state from the decision to the last
 * byte, and the undici dispatch handler of its upstream attempts; how an attempt's failure is classified.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RequestSpan } from '../telemetry/request-tracing.js';
import type { ServiceRuntime, Snapshot } from './snapshot.js';
import type { Upstream } from './upstream.js';

/** What an {@link Exchange} hands its attempt's response headers and end to (the request path, `Proxy`). */
export interface ExchangeHandler {
  onHeaders(x: Exchange, status: number, raw: Buffer[], resume: () => void): boolean;
  onDone(x: Exchange, err: Error | null): void;
}

class AttemptTimeoutError extends Error {
  readonly code = 'MERIDIAN_ATTEMPT_TIMEOUT';
}
const ATTEMPT_TIMEOUT = new AttemptTimeoutError('no response headers within the attempt’s time');

/**
 * The attempt's own timer (undici's headers timeout ticks every half second: too coarse for a 200 ms
 * per-try timeout). Aborts the attempt, or, while it waits for a connection, marks it to be aborted then.
 */
export function onAttemptTimeout(x: Exchange): void {
  x.timer = null;
  if (!x.pending) return;
  x.timedOut = true;
  x.abort?.(ATTEMPT_TIMEOUT);
}

/** Upstream failure kinds. */
export type Failure = 'refused' | 'connect' | 'reset' | 'timeout' | '5xx';

const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** The kind of an upstream attempt's error (undici's and Node's codes, and the attempt's own timeout). */
export function classify(err: unknown): Failure {
  const code = (err as { code?: string } | null)?.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (CONNECT_ERRORS.has(code)) return 'connect';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === ATTEMPT_TIMEOUT.code) return 'timeout';
  return 'reset';
}

/** The client went away: the upstream attempt is aborted with this. */
export class ClientGoneError extends Error {
  readonly code = 'MERIDIAN_CLIENT_GONE';
}

/** `res` → its request, for the listeners shared by every request. */
export const EXCHANGE = Symbol('meridian.exchange');
export type TrackedResponse = ServerResponse & { [EXCHANGE]?: Exchange };

/** The client's connection closed (or the response ended): an upstream attempt still running is aborted. */
export function onResponseClose(this: TrackedResponse): void {
  const x = this[EXCHANGE];
  if (x === undefined || !x.pending) return;
  x.clientGone = true;
  x.abort?.(new ClientGoneError('the client went away'));
}

/** The client took what was written: let undici read from the upstream again. */
function onResponseDrain(this: TrackedResponse): void {
  const x = this[EXCHANGE];
  if (x !== undefined && x.pending) x.resume?.();
}

/**
 * One request on its way through the router, and the undici dispatch handler of its upstream attempts
 * (the raw interface: headers as buffers, the body chunk by chunk into the response — no promise, no
 * stream object, no closure per request).
 */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly start: number;
  svc!: ServiceRuntime;
  country = '';
  homeId = 0;
  home: string | null = null;
  userKey: string | undefined = undefined;
  setCookie: string | null = null;
  /** The request headers passed on (undici's flat list; every attempt sends the same). */
  headers: string[] = [];
  body: Buffer | Readable | null = null;
  replayable = true;
  idempotent = true;
  clusterIndex = -1;
  canary = false;
  reason = 0;
  attempts = 0;
  /** When the current upstream attempt was sent (the router clock's ms). */
  attemptStart = 0;
  /** Clusters tried already (allocated on the first retry or fall-back). */
  excluded: number[] | null = null;
  upstream: Upstream | null = null;
  /** The current attempt's 5xx response is being discarded for a retry. */
  retrying = false;
  isRetry = false;
  status = 0;
  lastFailure: Failure | null = null;
  /** The request's span, when tracing is on. */
  span: RequestSpan | null = null;
  /** An upstream attempt is under way (dispatched, neither complete nor failed yet). */
  pending = false;
  /** The response's `close` is watched (from the first attempt on). */
  tracked = false;
  /** The client's connection closed before the response was complete. */
  clientGone = false;
  /** Aborts the attempt under way (from undici, once it has a connection). */
  abort: ((err?: Error) => void) | null = null;
  /** The attempt's timer, when the service sets `timeout` or `retries.perTryTimeout`. */
  timer: ReturnType<typeof setTimeout> | null = null;
  /** The attempt's time ran out (abort it as soon as it has a connection). */
  timedOut = false;
  /** The attempt may run until `timeout` (not cut short by `retries.perTryTimeout`). */
  lastSlice = false;
  /** Lets undici read the upstream's response again after `onData` said the client is full. */
  resume: (() => void) | null = null;
  /** The response's Content-Length, or -1. */
  bodyLength = -1;
  /** The whole body in one chunk, kept for `res.end(body)`: the head and body leave in one write, with no extra tick. */
  held: Buffer | null = null;

  constructor(
    readonly proxy: ExchangeHandler,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly snap: Snapshot,
    now: number,
  ) {
    this.start = now;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.clientGone) abort(new ClientGoneError('the client went away'));
    else if (this.timedOut) abort(ATTEMPT_TIMEOUT);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    return this.proxy.onHeaders(this, status, raw, resume);
  }

  onData(chunk: Buffer): boolean {
    if (this.retrying) return true; // a 5xx that is retried elsewhere: swallowed
    if (chunk.length === this.bodyLength) {
      this.held = chunk; // the whole body: `onComplete` follows in the same read of the upstream's socket
      return true;
    }
    const res = this.res;
    if (res.write(chunk) || res.destroyed) return true; // destroyed: the `close` listener aborts the attempt
    res.once('drain', onResponseDrain);
    return false;
  }

  onComplete(): void {
    this.proxy.onDone(this, null);
  }

  onError(err: Error): void {
    this.proxy.onDone(this, err);
  }
}
