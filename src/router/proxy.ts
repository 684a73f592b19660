/**
 * The request path (hot): match the service, resolve the client's country, decide with the routing
 * table, forward with undici, retry on another cluster when allowed, answer rejections with a reason.
 * One {@link Exchange} per request holds its state; the snapshot it read first serves it to the end. The
 * policies it applies live beside it: headers in `forward-headers.ts`, retries and failover in `failover.ts`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { createDecision, decide, isIdempotent, nextAttempt, type Decision } from '../routing/index.js';
import { residencyRejection, writeAnswer } from './answers.js';
import type { RouterClock } from './clock.js';
import {
  ClientGoneError,
  EXCHANGE,
  Exchange,
  classify,
  onAttemptTimeout,
  onResponseClose,
  type ExchangeHandler,
  type TrackedResponse,
} from './exchange.js';
import { REASON_OF_KIND, chooseUpstream, planRetry, randInt, reroute } from './failover.js';
import {
  OVERRIDE_HEADER,
  clientFromForwardedFor,
  connectionListed,
  cookieValue,
  forwardHeaders,
  headerName,
  isHopByHopResponse,
  newTraceparent,
  responseConnectionListed,
  validTraceparent,
  type RawBuffer,
} from './forward-headers.js';
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

/** The response headers the router passes on, as Node's flat `[name, value, …]` list (reused: `writeHead` copies it). */
const responseHead: string[] = [];

/** The request path: the `http.Server` request listener of a router, and the handler of its upstream attempts. */
export class Proxy implements ExchangeHandler {
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
    const up = chooseUpstream(x, this.#decision);
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
   * Response headers arrived (raw, as undici read them): pass them on without the hop-by-hop ones and
   * with where the request was served, or swallow a 5xx that will be retried. 1xx are not passed on.
   */
  onHeaders(x: Exchange, status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    if (x.timer !== null) {
      clearTimeout(x.timer);
      x.timer = null;
    }
    if (status >= 500 && planRetry(x, '5xx', this.#host.metrics, this.#decision)) {
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
      if (reroute(x, m, this.#decision)) return this.#attempt(x);
    } else if (planRetry(x, failure, m, this.#decision)) {
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

  /** Sends the request again, to the cluster `x` points at now (a retry: counted, and in the retry budget). */
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
    const { message, extra } = residencyRejection(x);
    this.#reject(x, 503, 'residency-reject', message, REASON['residency-reject'], extra);
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

  /** The router's own answer (`answers.ts`), after an attempt or none (`up`: the last endpoint tried). */
  #answer(x: Exchange, status: number, reason: string, message: string, up: Upstream | null, extra: Record<string, unknown> = {}): void {
    writeAnswer(x, status, reason, message, up, extra);
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
