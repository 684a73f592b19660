/**
 * The request path (hot): match the service, resolve the client's country, decide with the routing
 * table, forward with undici, retry on another cluster when allowed, answer rejections with a reason.
 * One {@link Exchange} per request holds its state; the snapshot it read first serves it to the end.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { createDecision, decide, isIdempotent, nextAttempt, residencyRule, type Decision } from '../routing/index.js';
import type { RouterClock } from './clock.js';
import type { GeoIp } from './geoip.js';
import type { OutlierDetector } from './outlier-detector.js';
import type { RequestSpan, RequestTracer } from '../telemetry/request-tracing.js';
import { ATTEMPT, REASON, REASONS, attemptOfStatus, codeClass, type RouterMetrics } from './router-metrics.js';
import type { ServiceRuntime, Snapshot } from './snapshot.js';
import type { Upstream } from './upstream.js';

/** What the request path needs from the router. */
export interface ProxyHost {
  snapshot(): Snapshot;
  readonly metrics: RouterMetrics;
  readonly outliers: OutlierDetector;
  readonly geoip: GeoIp;
  readonly clock: RouterClock;
  /** Handles `adminPrefix` paths; returns false when the request is not an admin request. */
  admin(req: IncomingMessage, res: ServerResponse): boolean;
  readonly settings: ProxySettings;
  /** Requests being handled (all services). */
  inFlight: number;
}

export interface ProxySettings {
  /** Request bodies up to this size (with a Content-Length) are buffered so the request can be retried. */
  readonly maxBufferedBodyBytes: number;
  /** `generate`: a request without a valid `traceparent` gets a new one; `pass`: forwarded as received. */
  readonly traceparent: 'generate' | 'pass';
  /** Starts a span per request when tracing is on; null when off (one check per request, nothing else). */
  readonly tracer: RequestTracer | null;
}

const OVERRIDE_HEADER = 'x-meridian-cluster';
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** `00-` and the first 24 hex digits of every generated trace id (random per process). */
const TRACE_HEAD = `00-${randomBytes(12).toString('hex')}`;
/** Between the trace id and the span id, whose first 8 hex digits are random per process. */
const TRACE_MID = `-${randomBytes(4).toString('hex')}`;
let traceSeq = 0;

/** A W3C trace context header that may be forwarded as is. */
export function validTraceparent(v: string): boolean {
  const m = TRACEPARENT.exec(v);
  if (!m) return false;
  const [, version, trace, span, , rest] = m;
  if (version === 'ff' || trace === ZERO_TRACE || span === ZERO_SPAN) return false;
  return version !== '00' || rest === undefined;
}

/** A new trace context (not sampled): a per-process random prefix and a counter, so it costs no entropy per request. */
export function newTraceparent(): string {
  traceSeq = (traceSeq + 1) >>> 0;
  const n = traceSeq.toString(16).padStart(8, '0');
  return TRACE_HEAD + n + TRACE_MID + n + '-00';
}

/** The value of one cookie in a Cookie header, without allocating for the others. */
export function cookieValue(header: string, name: string): string | undefined {
  let i = 0;
  const n = name.length;
  while ((i = header.indexOf(name, i)) !== -1) {
    const before = i === 0 ? 59 : header.charCodeAt(i - 1);
    if ((before === 59 || before === 32 || before === 9) && header.charCodeAt(i + n) === 61) {
      const start = i + n + 1;
      let end = header.indexOf(';', start);
      if (end === -1) end = header.length;
      let v = header.slice(start, end).trim();
      if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
      return v.length > 0 ? v : undefined;
    }
    i += n;
  }
  return undefined;
}

/** The client address from X-Forwarded-For: the right-most entry that is not a trusted proxy. */
export function clientFromForwardedFor(xff: string, trusted: ((a: string) => boolean) | { has(a: string): boolean }): string | null {
  let end = xff.length;
  while (end > 0) {
    const comma = xff.lastIndexOf(',', end - 1);
    const a = xff.slice(comma + 1, end).trim();
    end = comma < 0 ? 0 : comma;
    if (a.length > 0 && !(typeof trusted === 'function' ? trusted(a) : trusted.has(a))) return a;
  }
  return null;
}

/**
 * The header names a request's `Connection` header lists (lower case; RFC 9110 §7.6.1), which are not
 * passed on; null for none (no header, or only `keep-alive` / `close`, the common case). `host` and
 * `x-forwarded-for` are never listed: a client cannot strip those.
 */
function connectionListed(v: string | undefined): string[] | null {
  if (v === undefined || v === 'keep-alive' || v === 'close' || v === 'Keep-Alive' || v === 'Close') return null;
  const names: string[] = [];
  for (const t of v.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '' && name !== 'host' && name !== 'x-forwarded-for') names.push(name);
  }
  return names.length > 0 ? names : null;
}

/** Whether a header name as received (any case) is `name` (lower case, of the same length). */
function isNamedStr(raw: string, name: string): boolean {
  for (let i = 0; i < name.length; i++) if ((raw.charCodeAt(i) | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

/** What {@link forwardHeaders} changes in a request's headers. */
interface ForwardOptions {
  /** The country header, not passed on: its sender is not a trusted source (null: none to drop). */
  readonly untrustedCountry: string | null;
  /** The sender is a trusted source (else its `X-Forwarded-Proto` is dropped). */
  readonly trusted: boolean;
  /** Names the `Connection` header lists (see {@link connectionListed}). */
  readonly listed: readonly string[] | null;
  /** The `X-Forwarded-For` to send (the client's, with the sender appended). */
  readonly xff: string;
  /** The received `traceparent` and `tracestate` are replaced by the two below. */
  readonly replaceTrace: boolean;
  readonly traceparent: string | null;
  readonly tracestate: string | string[] | undefined;
}

/**
 * The request headers passed on, as undici's flat `[name, value, …]` list, from the raw ones as the
 * client sent them (names compared length first, without lower-casing): hop-by-hop headers (RFC 9110
 * §7.6.1, plus `proxy-connection` and `proxy-authorization`) and `x-meridian-cluster` dropped, a second
 * `Host` or `Content-Length` dropped (Node keeps the first), X-Forwarded-For and trace context replaced.
 */
function forwardHeaders(raw: readonly string[], o: ForwardOptions): string[] {
  const out: string[] = [];
  let host = false;
  let length = false;
  const country = o.untrustedCountry;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    switch (name.length) {
      case 2:
        if (isNamedStr(name, 'te')) continue;
        break;
      case 4:
        if (isNamedStr(name, 'host')) {
          if (host) continue;
          host = true;
        }
        break;
      case 7:
        if (isNamedStr(name, 'upgrade') || isNamedStr(name, 'trailer')) continue;
        break;
      case 10:
        if (isNamedStr(name, 'connection') || isNamedStr(name, 'keep-alive')) continue;
        if (o.replaceTrace && isNamedStr(name, 'tracestate')) continue;
        break;
      case 11:
        if (o.replaceTrace && isNamedStr(name, 'traceparent')) continue;
        break;
      case 14:
        if (isNamedStr(name, 'content-length')) {
          if (length) continue;
          length = true;
        }
        break;
      case 15:
        if (isNamedStr(name, 'x-forwarded-for')) continue;
        break;
      case 16:
        if (isNamedStr(name, 'proxy-connection')) continue;
        break;
      case 17:
        if (isNamedStr(name, 'transfer-encoding')) continue;
        if (!o.trusted && isNamedStr(name, 'x-forwarded-proto')) continue; // only a trusted proxy says how the client came
        break;
      case 18:
        if (isNamedStr(name, OVERRIDE_HEADER)) continue;
        break;
      case 19:
        if (isNamedStr(name, 'proxy-authorization')) continue;
        break;
    }
    if (country !== null && name.length === country.length && isNamedStr(name, country)) continue; // never pass on a claim nobody vouched for
    if (o.listed !== null && o.listed.includes(name.toLowerCase())) continue;
    out.push(name, raw[i + 1] as string);
  }
  out.push('x-forwarded-for', o.xff);
  if (o.traceparent !== null) out.push('traceparent', o.traceparent);
  const ts = o.tracestate;
  if (ts !== undefined) out.push('tracestate', typeof ts === 'string' ? ts : ts.join(','));
  return out;
}

/** An attempt had no response headers within its time (`timeout`, `retries.perTryTimeout`). */
class AttemptTimeoutError extends Error {
  readonly code = 'MERIDIAN_ATTEMPT_TIMEOUT';
}
const ATTEMPT_TIMEOUT = new AttemptTimeoutError('no response headers within the attempt’s time');

/**
 * The attempt's own timer (undici's headers timeout ticks every half second: too coarse for a 200 ms
 * per-try timeout). Aborts the attempt, or, while it waits for a connection, marks it to be aborted then.
 */
function onAttemptTimeout(x: Exchange): void {
  x.timer = null;
  if (!x.pending) return;
  x.timedOut = true;
  x.abort?.(ATTEMPT_TIMEOUT);
}

/** Upstream failure kinds. */
type Failure = 'refused' | 'connect' | 'reset' | 'timeout' | '5xx';

const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

function classify(err: unknown): Failure {
  const code = (err as { code?: string } | null)?.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (CONNECT_ERRORS.has(code)) return 'connect';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === ATTEMPT_TIMEOUT.code) return 'timeout';
  return 'reset';
}

/** Whether a raw header name (any case) is `name` (lower-case, of the same length). */
function isNamed(raw: Buffer, name: string): boolean {
  // `| 0x20` lower-cases ASCII letters and keeps `-`; a header name has no control characters
  for (let i = 0; i < name.length; i++) if (((raw[i] as number) | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

/** A response header about one connection (RFC 9110 §7.6.1), never passed on; matched on the raw name. */
function isHopByHopResponse(raw: Buffer): boolean {
  switch (raw.length) {
    case 2:
      return isNamed(raw, 'te');
    case 7:
      return isNamed(raw, 'upgrade') || isNamed(raw, 'trailer');
    case 10:
      return isNamed(raw, 'connection') || isNamed(raw, 'keep-alive');
    case 16:
      return isNamed(raw, 'proxy-connection');
    case 17:
      return isNamed(raw, 'transfer-encoding');
    default:
      return false;
  }
}

/**
 * The names the upstream's `Connection` headers list (RFC 9110 §7.6.1: about its connection to us,
 * never passed on), lower case; null for none (the common case: none, `keep-alive` or `close`).
 */
function responseConnectionListed(raw: Buffer[]): string[] | null {
  let listed: string[] | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as RawBuffer;
    if (name.length !== 10 || !isNamed(name, 'connection')) continue;
    const v = raw[i + 1] as RawBuffer;
    const more = connectionListed(v.latin1Slice(0, v.length));
    if (more !== null) (listed ??= []).push(...more);
  }
  return listed;
}

/** Response header names most upstreams send, by length: passed on as these constants instead of a new string each. */
const COMMON_RESPONSE_HEADERS: readonly (readonly string[] | undefined)[] = (() => {
  const byLength: string[][] = [];
  for (const n of [
    'date',
    'etag',
    'vary',
    'server',
    'expires',
    'location',
    'set-cookie',
    'content-type',
    'accept-ranges',
    'cache-control',
    'last-modified',
    'content-length',
    'content-encoding',
  ]) {
    (byLength[n.length] ??= []).push(n);
  }
  return byLength;
})();

/** A raw response header name as a string: a shared constant when it is a common one (in lower case), else as sent. */
function headerName(raw: RawBuffer): string {
  const common = COMMON_RESPONSE_HEADERS[raw.length];
  if (common !== undefined) for (let k = 0; k < common.length; k++) if (isNamed(raw, common[k] as string)) return common[k] as string;
  return raw.latin1Slice(0, raw.length);
}

/** Node's `Buffer#latin1Slice`: the bytes as a one-byte string, without `toString`'s encoding lookup. */
type RawBuffer = Buffer & { latin1Slice(start: number, end: number): string };

/** The response headers the router passes on, as Node's flat `[name, value, …]` list (reused: `writeHead` copies it). */
const responseHead: string[] = [];

/** The client went away: the upstream attempt is aborted with this. */
class ClientGoneError extends Error {
  readonly code = 'MERIDIAN_CLIENT_GONE';
}

/** `res` → its request, for the listeners shared by every request. */
const EXCHANGE = Symbol('meridian.exchange');
type TrackedResponse = ServerResponse & { [EXCHANGE]?: Exchange };

/** The client's connection closed (or the response ended): an upstream attempt still running is aborted. */
function onResponseClose(this: TrackedResponse): void {
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

function randInt(): number {
  return (Math.random() * 0x80000000) | 0;
}

/**
 * One request on its way through the router, and the undici dispatch handler of its upstream attempts
 * (the raw interface: headers as buffers, the body chunk by chunk into the response — no promise, no
 * stream object, no closure per request).
 */
class Exchange implements Dispatcher.DispatchHandler {
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
    readonly proxy: Proxy,
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

const REASON_OF_KIND: Record<Decision['kind'], number> = {
  primary: REASON.primary,
  spillover: REASON.spillover,
  panic: REASON.panic,
  'residency-widened': REASON['residency-widened'],
  'residency-reject': REASON['residency-reject'],
  'no-healthy': REASON['no-healthy'],
  'unknown-service': REASON['no-route'],
};

export class Proxy {
  readonly #host: ProxyHost;
  readonly #decision: Decision = createDecision();

  constructor(host: ProxyHost) {
    this.#host = host;
  }

  /** The `http.Server` request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const host = this.#host;
    const url = req.url ?? '/';
    if (url.charCodeAt(1) === 95 /* _ */ && host.admin(req, res)) return;
    const snap = host.snapshot();
    const x = new Exchange(this, req, res, snap, host.clock.now());
    host.inFlight++;
    // Node has built `req.headers` already (its server reads `host` and `expect`): values are read
    // from it by name; the headers passed on are built from `req.rawHeaders` (see `forwardHeaders`)
    const headers = req.headers;
    const tracer = host.settings.tracer;
    if (tracer !== null) x.span = tracer.start(headers, req.method ?? 'GET', url); // may set `traceparent`/`tracestate`
    const svc = snap.matcher.match(headers.host, url);
    if (svc === undefined || url.charCodeAt(0) !== 47 /* / */) {
      this.#reject(
        x,
        404,
        'no-route',
        `no routed service matches host ${JSON.stringify(headers.host ?? '')} and path ${url.split('?')[0]}`,
      );
      return;
    }
    x.svc = svc;
    svc.counters.active++;

    // 1. who is asking
    const remote = req.socket.remoteAddress;
    const trusted = svc.trusted.has(remote);
    if (svc.countryHeader !== null && trusted) {
      const v = headers[svc.countryHeader];
      if (v !== undefined) x.country = (typeof v === 'string' ? v : (v[0] ?? '')).trim();
    }
    const xffValue = headers['x-forwarded-for'];
    const xff = typeof xffValue === 'string' ? xffValue : undefined;
    if (x.country === '') {
      let ip = remote ?? '';
      if (trusted && xff !== undefined) ip = clientFromForwardedFor(xff, svc.trusted) ?? ip;
      x.country = host.geoip.country(ip) ?? '';
    }

    // the sticky key: cookie (set one when absent) or header
    if (svc.stickyCookie !== null) {
      const c = headers.cookie;
      x.userKey = c === undefined ? undefined : cookieValue(c, svc.stickyCookie);
      if (x.userKey === undefined) {
        x.userKey = randomUUID();
        x.setCookie = `${svc.stickyCookie}=${x.userKey}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly`;
        host.metrics.stickyAssigned.inc(host.metrics.stickyAssigned.series([svc.name]));
      }
    } else if (svc.stickyHeader !== null) {
      const v = headers[svc.stickyHeader];
      if (typeof v === 'string' && v.length > 0) x.userKey = v;
    }

    // the headers passed on: hop-by-hop ones dropped, X-Forwarded-For appended, trace context (the body's framing is read first)
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    const listed = connectionListed(headers.connection);
    const tpValue = listed !== null && listed.includes('traceparent') ? undefined : headers.traceparent;
    const tp = typeof tpValue === 'string' ? tpValue : undefined;
    let traceparent: string | null = null;
    if (host.settings.traceparent === 'generate' && (tp === undefined || !validTraceparent(tp))) traceparent = newTraceparent();
    else if (tracer !== null && tp !== undefined) traceparent = tp; // as the tracer set it
    x.headers = forwardHeaders(req.rawHeaders, {
      untrustedCountry: trusted ? null : svc.countryHeader,
      trusted,
      listed,
      xff: xff === undefined ? (remote ?? '') : `${xff}, ${remote ?? ''}`,
      replaceTrace: traceparent !== null || tracer !== null,
      traceparent,
      tracestate: tracer !== null ? headers.tracestate : undefined,
    });

    // 2–6. the decision (residency first; the table holds steps 2–6)
    const override = headers[OVERRIDE_HEADER];
    const d = this.#decision;
    const table = svc.table;
    let pinned = false;
    if (typeof override === 'string' && trusted) {
      const ci = table.model.clusterIndex.get(override);
      pinned = true;
      if (ci === undefined) {
        this.#reject(x, 404, 'no-route', `x-meridian-cluster names no cluster: ${override}`, REASON.override);
        return;
      }
      nextAttempt(table, svc.name, x.country, x.userKey, randInt(), svc.othersOf[ci] as Int32Array, d);
      if (
        d.clusterIndex !== ci &&
        (d.kind === 'primary' || d.kind === 'spillover' || d.kind === 'panic' || d.kind === 'residency-widened')
      ) {
        d.kind = 'no-healthy';
      }
    } else {
      decide(table, svc.name, x.country, x.userKey, randInt(), d);
    }
    x.home = d.home;
    x.homeId = svc.homeMetricId.get(d.home) ?? 0;
    if (d.clusterIndex < 0) {
      if (d.kind === 'residency-reject') this.#rejectResidency(x);
      else if (pinned)
        this.#reject(x, 503, 'no-healthy', `cluster ${String(override)} may not or cannot serve this client`, REASON.override);
      else this.#reject(x, 503, 'no-healthy', `no cluster can serve ${svc.name} for this client`);
      return;
    }
    x.clusterIndex = d.clusterIndex;
    x.canary = d.canary;
    x.reason = pinned ? REASON.override : d.kind === 'primary' && d.sticky ? REASON.sticky : REASON_OF_KIND[d.kind];

    // the body: none, buffered (retryable) or streamed (not retryable)
    x.idempotent = isIdempotent(req.method ?? 'GET');
    if (te === undefined && (cl === undefined || cl === '0')) {
      this.#attempt(x);
    } else if (te === undefined && Number(cl) <= host.settings.maxBufferedBodyBytes) {
      const chunks: Buffer[] = [];
      let state = 0; // 0 reading, 1 read, 2 abandoned
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (state !== 0) return;
        state = 1;
        x.body = Buffer.concat(chunks);
        this.#attempt(x);
      });
      req.on('close', () => {
        if (state !== 0) return;
        state = 2; // the client went away before sending its whole body
        this.#finish(x, 0);
      });
    } else {
      x.body = req;
      x.replayable = false;
      this.#attempt(x);
    }
  };

  /** Sends the current attempt to an endpoint of `x.clusterIndex` (or another cluster of the row when it has none usable). */
  #attempt(x: Exchange): void {
    // the time this attempt may wait for response headers: `retries.perTryTimeout`, within what is left of
    // `timeout` (without either, undici's pool timeout per attempt)
    const svc = x.svc;
    let limit = 0;
    if (svc.timed) {
      limit = svc.timeoutMs;
      if (x.attempts > 0) {
        limit -= this.#host.clock.now() - x.start;
        if (limit < 1) {
          x.clusterIndex = x.excluded?.pop() ?? x.clusterIndex; // the last one tried, not the one chosen next
          x.attempts--; // this one is not sent
          this.#outOfTime(x);
          return;
        }
      }
      x.lastSlice = true;
      if (svc.perTryTimeoutMs > 0 && svc.perTryTimeoutMs < limit) {
        limit = svc.perTryTimeoutMs;
        x.lastSlice = false;
      }
    }
    const up = this.#choose(x);
    if (up === null) {
      this.#reject(x, 503, 'no-healthy', `no endpoint of ${x.svc.name} can take the request`);
      return;
    }
    x.upstream = up;
    x.retrying = false;
    up.inFlight++;
    if (!x.tracked) {
      x.tracked = true;
      (x.res as TrackedResponse)[EXCHANGE] = x;
      x.res.on('close', onResponseClose);
    }
    const req = x.req;
    x.attemptStart = this.#host.clock.now();
    x.pending = true;
    x.abort = null;
    if (limit > 0) {
      x.timedOut = false;
      x.timer = setTimeout(onAttemptTimeout, limit, x); // before dispatch: it may end the attempt at once
    }
    up.pool.dispatch({ path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: x.headers, body: x.body }, x);
  }

  /** `timeout` passed: 504, whatever attempts are left. */
  #outOfTime(x: Exchange): void {
    const n = x.attempts + 1;
    const msg = `no answer within the timeout of ${x.svc.timeoutMs} ms (${n} attempt${n === 1 ? '' : 's'})`;
    this.#answer(x, 504, 'upstream-timeout', msg, x.upstream);
  }

  /**
   * An endpoint of the decided cluster; when that cluster has none usable (the table is not rebuilt yet),
   * the next cluster of the same row (`nextAttempt`: the same residency rule). When nothing in the row is
   * usable, any endpoint of the first choice (panic). Choosing another cluster here is not a retry.
   */
  #choose(x: Exchange): Upstream | null {
    const svc = x.svc;
    let up = svc.sets[x.clusterIndex]?.pick(x.canary) ?? null;
    if (up !== null) return up;
    const first = x.clusterIndex;
    const firstCanary = x.canary;
    const d = this.#decision;
    while (up === null) {
      (x.excluded ??= []).push(x.clusterIndex);
      nextAttempt(svc.table, svc.name, x.country, x.userKey, randInt(), x.excluded, d);
      if (d.clusterIndex < 0) break;
      x.clusterIndex = d.clusterIndex;
      x.canary = d.canary;
      if (x.reason !== REASON.retry && x.reason !== REASON.override) x.reason = REASON_OF_KIND[d.kind];
      up = svc.sets[x.clusterIndex]?.pick(x.canary) ?? null;
    }
    if (up !== null) return up;
    x.clusterIndex = first;
    x.canary = firstCanary;
    return svc.sets[first]?.pickAny(firstCanary) ?? null;
  }

  /**
   * Response headers arrived (raw, as undici read them): pass them on without the hop-by-hop ones and
   * with where the request was served, or swallow a 5xx that will be retried. 1xx are not passed on.
   */
  onHeaders(x: Exchange, status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    if (x.timer !== null) {
      clearTimeout(x.timer);
      x.timer = null;
    }
    if (status >= 500 && this.#planRetry(x, '5xx')) {
      x.retrying = true;
      return true;
    }
    x.status = status;
    x.resume = resume;
    x.bodyLength = -1;
    // written by index, then cut to length: `length = 0` and `push` would free and regrow its storage each time
    const head = responseHead;
    const listed = responseConnectionListed(raw);
    let n = 0;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as RawBuffer;
      if (isHopByHopResponse(name)) continue;
      if (listed !== null && listed.includes(name.latin1Slice(0, name.length).toLowerCase())) continue;
      const rawValue = raw[i + 1] as RawBuffer;
      const value = rawValue.latin1Slice(0, rawValue.length);
      const h = headerName(name);
      if (h === 'content-length') x.bodyLength = Number(value);
      head[n++] = h;
      head[n++] = value;
    }
    const up = x.upstream as Upstream;
    const svc = x.svc;
    if (svc.exposeHeaders) {
      head[n++] = 'x-meridian-cluster';
      head[n++] = up.cluster;
      head[n++] = 'x-meridian-region';
      head[n++] = svc.table.regions[svc.table.clusterRegion[x.clusterIndex] as number] as string;
      head[n++] = 'x-meridian-version';
      head[n++] = up.version;
    }
    if (x.setCookie !== null) {
      head[n++] = 'set-cookie';
      head[n++] = x.setCookie;
    }
    if (head.length !== n) head.length = n;
    x.res.writeHead(status, head);
    return true;
  }

  /** The attempt ended (response streamed, or an error). */
  onDone(x: Exchange, err: Error | null): void {
    x.pending = false;
    x.abort = null;
    if (x.timer !== null) {
      clearTimeout(x.timer);
      x.timer = null;
    }
    x.resume = null;
    const up = x.upstream as Upstream;
    up.inFlight--;
    const host = this.#host;
    const m = host.metrics;
    const res = x.res;
    const now = host.clock.now();
    if (err === null) {
      if (x.retrying) {
        this.#attempted(x, up, ATTEMPT['5xx'], now);
        m.upstreamFailures.inc(m.upstreamFailures.series([up.service, up.cluster, '5xx']));
        host.outliers.failure(up);
        if (x.clientGone || res.destroyed) this.#finish(x, 0);
        else this.#retry(x);
        return;
      }
      this.#attempted(x, up, attemptOfStatus(x.status), now);
      if (x.status >= 500) host.outliers.failure(up);
      else host.outliers.success(up);
      if (x.clientGone || res.destroyed) {
        this.#finish(x, 0, now); // the whole response came, but the client had gone
        return;
      }
      const held = x.held;
      x.held = null;
      if (held === null) res.end();
      else res.end(held);
      this.#finish(x, x.status, now);
      return;
    }
    x.held = null;
    const clientGone = x.clientGone || err instanceof ClientGoneError;
    if (x.retrying) {
      // the 5xx being swallowed for a retry broke off: retry all the same (unless nobody waits for it)
      this.#attempted(x, up, ATTEMPT['5xx'], now);
      host.outliers.failure(up);
      if (clientGone) this.#finish(x, 0);
      else this.#retry(x);
      return;
    }
    const code = (err as { code?: string }).code ?? '';
    if (x.status !== 0 || res.headersSent) {
      // the response had started: the client went away, or the upstream failed in the middle of the body
      this.#attempted(x, up, clientGone ? ATTEMPT.aborted : ATTEMPT.reset, now);
      if (!clientGone) {
        host.outliers.failure(up);
        m.upstreamFailures.inc(m.upstreamFailures.series([up.service, up.cluster, 'reset']));
      }
      if (!res.destroyed) res.destroy();
      this.#finish(x, clientGone ? 0 : x.status);
      return;
    }
    if (clientGone || res.destroyed) {
      this.#attempted(x, up, ATTEMPT.aborted, now);
      this.#finish(x, 0); // the client went away before anything came back
      return;
    }
    const failure = classify(err);
    x.lastFailure = failure;
    this.#attempted(x, up, failure === 'refused' || failure === 'connect' ? ATTEMPT.refused : ATTEMPT[failure], now);
    if (failure === 'refused' || failure === 'connect') {
      m.connectErrors.inc(m.connectErrors.series([up.service, up.cluster, code || 'other']));
      if (failure === 'refused') host.outliers.refused(up);
      else host.outliers.failure(up);
    } else {
      m.upstreamFailures.inc(m.upstreamFailures.series([up.service, up.cluster, failure]));
      host.outliers.failure(up);
    }
    if (failure === 'timeout' && x.lastSlice && x.timedOut) {
      this.#outOfTime(x); // the attempt ran until `timeout`: nothing is left for another
      return;
    }
    if (failure === 'refused') {
      if (this.#reroute(x)) return this.#attempt(x);
    } else if (this.#planRetry(x, failure)) {
      return this.#retry(x);
    }
    if (failure === 'refused' || failure === 'connect') {
      // nothing was sent anywhere: no cluster the client may use could be reached
      const msg = `no cluster that may serve this client could be reached for ${x.svc.name} (last: ${up.cluster} ${up.host}:${up.port} ${code || err.message})`;
      this.#answer(x, 503, 'no-healthy', msg, up);
      return;
    }
    const timeout = failure === 'timeout';
    const msg = `${up.cluster} (${up.host}:${up.port}) ${timeout ? 'timed out' : `failed: ${code || err.message}`}`;
    this.#answer(x, timeout ? 504 : 502, timeout ? 'upstream-timeout' : 'upstream-error', msg, up);
  }

  /** Books one upstream attempt of `x` on `up`: its outcome (an index of `ATTEMPT_OUTCOMES`) and how long it took. */
  #attempted(x: Exchange, up: Upstream, outcome: number, now: number): void {
    const m = this.#host.metrics;
    m.attempts.inc(m.attemptSeries(up, outcome));
    m.attemptDuration.observe(m.attemptDurationSeries(up), (now - x.attemptStart) / 1000);
  }

  /**
   * May the request be tried again on another cluster? Connect failures (nothing was sent: no connection
   * in time, an unreachable host) for any method; 5xx, resets and timeouts for idempotent methods only;
   * never a streamed body nor a pinned request; within the service's `retries.attempts` and retry budget;
   * and only when the row has another cluster. On yes, `x` points at that cluster. (A refused connection
   * is not retried but rerouted: `#reroute`.)
   */
  #planRetry(x: Exchange, failure: Failure): boolean {
    const svc = x.svc;
    const m = this.#host.metrics;
    const budget = svc.retry;
    if (x.reason === REASON.override) {
      m.retries.inc(m.retries.series([svc.name, 'not-retryable'])); // a pinned request stays where it was pinned
      return false;
    }
    if (budget === null || !x.replayable || (!x.idempotent && failure !== 'connect')) {
      m.retries.inc(m.retries.series([svc.name, 'not-retryable']));
      return false;
    }
    if (!budget.allows(x.attempts, { activeRequests: svc.counters.active, activeRetries: svc.counters.retries })) {
      m.retries.inc(m.retries.series([svc.name, 'budget-exhausted']));
      return false;
    }
    return this.#nextCluster(x);
  }

  /**
   * After a refused connection: nothing listens at that endpoint (it is out of rotation already) and
   * nothing was sent, so the request moves on to the next cluster of its row at once — as when a
   * cluster has no usable endpoint (`#choose`), not as a retry: for any method and body that is still
   * whole, whatever `retries` says, without using the budget. Bounded by the row: each cluster once.
   */
  #reroute(x: Exchange): boolean {
    const m = this.#host.metrics;
    if (x.reason === REASON.override || !x.replayable) {
      m.retries.inc(m.retries.series([x.svc.name, 'not-retryable'])); // pinned, or a streamed body may be partly read
      return false;
    }
    if (!this.#nextCluster(x)) return false;
    m.retries.inc(m.retries.series([x.svc.name, 'rerouted']));
    if (x.reason !== REASON.retry) x.reason = REASON_OF_KIND[this.#decision.kind];
    return true;
  }

  /** Points `x` at the next cluster of its row (not one tried); false, counted as `no-cluster`, when none is left. */
  #nextCluster(x: Exchange): boolean {
    const svc = x.svc;
    const m = this.#host.metrics;
    const excluded = (x.excluded ??= []);
    excluded.push(x.clusterIndex);
    const d = this.#decision;
    nextAttempt(svc.table, svc.name, x.country, x.userKey, randInt(), excluded, d);
    if (d.clusterIndex < 0) {
      excluded.pop();
      m.retries.inc(m.retries.series([svc.name, 'no-cluster']));
      return false;
    }
    x.clusterIndex = d.clusterIndex;
    x.canary = d.canary;
    return true;
  }

  #retry(x: Exchange): void {
    const m = this.#host.metrics;
    m.retries.inc(m.retries.series([x.svc.name, 'sent']));
    x.attempts++;
    if (!x.isRetry) x.svc.counters.retries++; // a request counts as one retry in flight until it finishes
    x.isRetry = true;
    if (x.reason !== REASON.override) x.reason = REASON.retry;
    this.#attempt(x);
  }

  /** Residency lock leaves nothing: 503 with the rule that decided it. */
  #rejectResidency(x: Exchange): void {
    const t = x.svc.table;
    const s = t.serviceIndex.get(x.svc.name) ?? 0;
    const hi = x.home === null ? -1 : (t.model.regionIndex.get(x.home) ?? -1);
    const jurisdiction = hi < 0 ? null : (t.model.regionJurisdiction[hi] ?? null);
    const { rule } = residencyRule(t.model.policies[s]?.residency ?? {}, jurisdiction);
    const allowed = rule?.allow ?? [];
    this.#reject(
      x,
      503,
      'residency-reject',
      `no cluster in ${allowed.join(', ') || 'the allowed jurisdictions'} can serve ${x.svc.name} for a client ${x.country ? `from ${x.country}` : 'of unknown country'} (${jurisdiction ?? 'no jurisdiction'}), and residency mode ${rule?.mode ?? 'lock'} forbids serving it from anywhere else`,
      REASON['residency-reject'],
      { jurisdiction, allowed, mode: rule?.mode ?? 'lock' },
    );
  }

  /** The router answers by itself, before choosing any endpoint. */
  #reject(x: Exchange, status: number, reason: string, message: string, metricReason?: number, extra: Record<string, unknown> = {}): void {
    const r =
      metricReason ??
      (reason === 'no-route' ? REASON['no-route'] : reason === 'residency-reject' ? REASON['residency-reject'] : REASON['no-healthy']);
    x.reason = r;
    x.upstream = null;
    this.#answer(x, status, reason, message, null, extra);
  }

  #answer(x: Exchange, status: number, reason: string, message: string, up: Upstream | null, extra: Record<string, unknown> = {}): void {
    const res = x.res;
    const svc = x.svc as ServiceRuntime | undefined;
    const body = JSON.stringify({
      error: reason,
      message,
      service: svc?.name ?? null,
      client: { country: x.country || null, region: x.home },
      ...extra,
      tried: up === null ? [] : [...new Set([...(x.excluded ?? []), x.clusterIndex])].map((c) => svc?.table.clusters[c] ?? null),
      table: svc?.table.id ?? null,
      snapshot: x.snap.version,
    });
    if (!res.headersSent && !res.destroyed) {
      const h: Record<string, string | number> = {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        'x-meridian-reason': reason,
      };
      if (x.setCookie !== null) h['set-cookie'] = x.setCookie;
      res.writeHead(status, h);
      res.end(body);
    }
    x.upstream = up;
    this.#finish(x, status);
  }

  /** Books the request in the metrics and counters (`now`: the router clock, when the caller has read it). */
  #finish(x: Exchange, status: number, now = this.#host.clock.now()): void {
    const host = this.#host;
    host.inFlight--;
    const svc = x.svc as ServiceRuntime | undefined;
    if (svc) {
      svc.counters.active--;
      if (x.isRetry) svc.counters.retries--;
    }
    const m = host.metrics;
    const code = status === 0 ? 0 : codeClass(status);
    const up = x.upstream;
    if (up !== null) {
      m.requests.inc(m.requestSeries(up, x.homeId, code, x.reason));
      m.duration.observe(m.durationSeries(up, x.homeId), (now - x.start) / 1000);
    } else {
      m.requests.inc(m.rejectSeries(svc ? svc.metricId : -1, x.homeId, code, x.reason));
    }
    if (x.span !== null) this.#endSpan(x, status, x.span);
  }

  /** Ends the request's span with the decision (only when tracing is on). */
  #endSpan(x: Exchange, status: number, span: RequestSpan): void {
    const svc = x.svc as ServiceRuntime | undefined;
    const up = x.upstream;
    const t = svc?.table;
    span.end({
      status,
      reason: REASONS[x.reason] ?? 'primary',
      service: svc?.name ?? null,
      cluster: up?.cluster ?? null,
      region: up !== null && t !== undefined ? (t.regions[t.clusterRegion[x.clusterIndex] as number] ?? null) : null,
      version: up?.version ?? null,
      track: up?.track ?? null,
      clientCountry: x.country || null,
      clientRegion: x.home,
      attempts: x.attempts + 1,
    });
  }
}
