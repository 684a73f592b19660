/**
 * The OpenTelemetry SDK behind {@link Tracing}: a tracer provider of its own (nothing registered
 * globally), a batch processor and the OTLP/HTTP (JSON) exporter. Loaded only when tracing is on.
 */
import type { Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type IdGenerator,
  type Sampler,
  type SamplingResult,
} from '@opentelemetry/sdk-trace-base';
import { OtelRequestTracer, type RequestTracer } from './request-tracing.js';
import type { Tracing, TracingConfig, TracingOptions } from './tracing.js';

/**
 * Random ids, except for the next span whose ids were given with {@link SeededIds.seed}: rollout spans
 * get ids derived from the rollout's id and events, so a rollout resumed by another process continues
 * the same trace under the same parents.
 */
export class SeededIds implements IdGenerator {
  readonly #random = new RandomIdGenerator();
  #traceId: string | null = null;
  #spanId: string | null = null;

  /** The ids of the next span started (one use). */
  seed(spanId: string, traceId?: string): void {
    this.#spanId = spanId;
    this.#traceId = traceId ?? null;
  }

  generateTraceId(): string {
    const t = this.#traceId;
    this.#traceId = null;
    return t ?? this.#random.generateTraceId();
  }

  generateSpanId(): string {
    const s = this.#spanId;
    this.#spanId = null;
    return s ?? this.#random.generateSpanId();
  }
}

/**
 * Follows the parent's decision, and samples new traces at `ratio` — except a rollout's root span (it has
 * the `meridian.rollout.id` attribute), which is always recorded: a rollout is rare and its children are
 * started under a sampled parent.
 */
class MeridianSampler implements Sampler {
  readonly #inner: Sampler;
  constructor(ratio: number) {
    const root: Sampler = ratio >= 1 ? new AlwaysOnSampler() : ratio <= 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(ratio);
    this.#inner = new ParentBasedSampler({ root });
  }
  shouldSample(...args: Parameters<Sampler['shouldSample']>): SamplingResult {
    const attributes = args[4];
    if (attributes['meridian.rollout.id'] !== undefined) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    return this.#inner.shouldSample(...args);
  }
  toString(): string {
    return `MeridianSampler{${this.#inner.toString()}}`;
  }
}

/** A running tracer provider with its exporter. */
export class OtelTracing implements Tracing {
  readonly tracer: Tracer;
  readonly ids = new SeededIds();
  readonly config: TracingConfig;
  readonly #provider: BasicTracerProvider;

  constructor(config: TracingConfig, opts: TracingOptions = {}) {
    this.config = config;
    const exporter = new OTLPTraceExporter({ url: config.url, headers: { ...config.headers }, timeoutMillis: 10_000 });
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName, 'service.namespace': 'meridian' }),
      sampler: new MeridianSampler(config.sampleRatio),
      idGenerator: this.ids,
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: opts.scheduledDelayMs ?? 1000, maxQueueSize: 8192 })],
    });
    this.tracer = this.#provider.getTracer('meridian');
  }

  requestTracer(): RequestTracer {
    return new OtelRequestTracer(this);
  }

  /** Sends every finished span now. */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** Flushes and stops. */
  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }
}
