/**
 * Traces of routed requests: the router starts one server span per request, continuing the client's W3C
 * `traceparent` (or starting a trace), rewrites the forwarded `traceparent` so the upstream's spans are
 * children of the router's, and ends the span with the routing decision (cluster, region, version,
 * reason). The router holds a {@link RequestTracer} only when tracing is on; otherwise it pays one null
 * check per request and nothing else.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { OtelTracing } from './otel-tracing.js';

/** What the router knows when a request ends. */
export interface RequestOutcome {
  /** The status sent to the client; 0 when the client went away first. */
  readonly status: number;
  /** Why it went where it went (`primary`, `sticky`, `spillover`, …, `residency-reject`, `no-route`). */
  readonly reason: string;
  readonly service: string | null;
  readonly cluster: string | null;
  readonly region: string | null;
  readonly version: string | null;
  readonly track: string | null;
  readonly clientCountry: string | null;
  readonly clientRegion: string | null;
  /** Attempts made (1 + retries). */
  readonly attempts: number;
}

/** A request's span, ended once with its outcome. */
export interface RequestSpan {
  end(outcome: RequestOutcome): void;
}

/** What the router calls when tracing is on. */
export interface RequestTracer {
  /**
   * Starts the span of a request whose headers are about to be forwarded: continues their `traceparent`
   * and replaces it (and `tracestate`) with the router's span as the parent.
   */
  start(headers: IncomingHttpHeaders, method: string, url: string): RequestSpan;
}

const getter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (h) => Object.keys(h),
  get: (h, k) => h[k],
};
const setter: TextMapSetter<IncomingHttpHeaders> = {
  set: (h, k, v) => {
    h[k] = v;
  },
};

class OtelRequestSpan implements RequestSpan {
  constructor(private readonly span: Span) {}

  end(o: RequestOutcome): void {
    const s = this.span;
    if (s.isRecording()) {
      s.setAttribute('http.response.status_code', o.status);
      s.setAttribute('meridian.route.reason', o.reason);
      if (o.service !== null) s.setAttribute('meridian.service', o.service);
      if (o.cluster !== null) s.setAttribute('meridian.cluster', o.cluster);
      if (o.region !== null) s.setAttribute('meridian.region', o.region);
      if (o.version !== null) s.setAttribute('meridian.version', o.version);
      if (o.track !== null) s.setAttribute('meridian.track', o.track);
      if (o.clientCountry !== null) s.setAttribute('meridian.client.country', o.clientCountry);
      if (o.clientRegion !== null) s.setAttribute('meridian.client.region', o.clientRegion);
      s.setAttribute('meridian.attempts', o.attempts);
      if (o.status === 0) s.setStatus({ code: SpanStatusCode.ERROR, message: 'the client went away' });
      else if (o.status >= 500) s.setStatus({ code: SpanStatusCode.ERROR, message: o.reason });
    }
    s.end();
  }
}

/** A {@link RequestTracer} on the OpenTelemetry SDK (made by `Tracing.requestTracer()`). */
export class OtelRequestTracer implements RequestTracer {
  readonly #tracing: OtelTracing;
  readonly #propagator = new W3CTraceContextPropagator();

  constructor(tracing: OtelTracing) {
    this.#tracing = tracing;
  }

  start(headers: IncomingHttpHeaders, method: string, url: string): RequestSpan {
    const parent = this.#propagator.extract(ROOT_CONTEXT, headers, getter);
    const q = url.indexOf('?');
    const span = this.#tracing.tracer.startSpan(
      method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': method,
          'url.path': q < 0 ? url : url.slice(0, q),
          ...(typeof headers.host === 'string' ? { 'server.address': headers.host } : {}),
        },
      },
      parent,
    );
    delete headers.tracestate;
    this.#propagator.inject(trace.setSpan(parent, span), headers, setter);
    return new OtelRequestSpan(span);
  }
}
