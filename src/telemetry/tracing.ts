/**
 * OpenTelemetry traces, exported over OTLP/HTTP (JSON) when configured — by a `--otlp URL` flag or the
 * standard environment (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
 * `OTEL_TRACES_EXPORTER`, …) — and off, with nothing created, when not. No global state: each
 * {@link Tracing} has its own provider, so a process may hold several (tests) and none is registered.
 */
import type { Tracer } from '@opentelemetry/api';
import { MeridianError } from '../errors.js';
import type { RequestTracer } from './request-tracing.js';

/** Where and how traces go. */
export interface TracingConfig {
  /** The OTLP/HTTP traces URL (`…/v1/traces`). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** `service.name` of the resource. */
  readonly serviceName: string;
  /** Share of new traces that are recorded (a parent's decision is always followed); 1 by default. */
  readonly sampleRatio: number;
}

/** A tracing configuration that cannot be used. */
export class TracingConfigError extends MeridianError {
  constructor(message: string, hint?: string) {
    super('MERIDIAN_E_TRACING_CONFIG', message, hint === undefined ? {} : { hint });
  }
}

function tracesUrl(base: string, from: string, full: boolean): string {
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw new TracingConfigError(
      `${from} is not a URL: ${JSON.stringify(base)}`,
      'give the collector’s OTLP/HTTP address, e.g. http://127.0.0.1:4318',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new TracingConfigError(
      `${from} must be an http:// or https:// URL (OTLP/HTTP), not ${u.protocol}`,
      'OTLP over gRPC is not supported; use the collector’s HTTP port (4318)',
    );
  }
  if (full || u.pathname.endsWith('/v1/traces')) return u.href;
  return `${u.href.replace(/\/+$/, '')}/v1/traces`;
}

/** `k1=v1,k2=v2` (OTEL_EXPORTER_OTLP_HEADERS), values URL-decoded. */
function parseHeaders(text: string | undefined, from: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? '').split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new TracingConfigError(`${from} has an entry without a name: ${JSON.stringify(part)}`, 'write it as key=value,key2=value2');
    out[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * The tracing configuration from a `--otlp` flag and the environment; null when tracing is off: no flag
 * and no OTLP endpoint in the environment, `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`.
 * The flag wins over the environment. Only the `otlp` exporter over HTTP exists here.
 */
export function tracingConfig(opts: {
  readonly otlp?: string | undefined;
  readonly serviceName: string;
  readonly env?: NodeJS.ProcessEnv;
}): TracingConfig | null {
  const env = opts.env ?? process.env;
  if ((env['OTEL_SDK_DISABLED'] ?? '').trim().toLowerCase() === 'true') return null;
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (opts.otlp === undefined) {
    if (exporters.includes('none')) return null;
    const other = exporters.filter((e) => e !== 'otlp');
    if (other.length > 0) {
      throw new TracingConfigError(
        `OTEL_TRACES_EXPORTER=${env['OTEL_TRACES_EXPORTER']} names an exporter Meridian does not have`,
        'use otlp (or none)',
      );
    }
  }
  const protocol = env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? env['OTEL_EXPORTER_OTLP_PROTOCOL'];
  if (protocol !== undefined && protocol.trim() === 'grpc') {
    throw new TracingConfigError(
      'OTLP over gRPC is not supported',
      'set OTEL_EXPORTER_OTLP_PROTOCOL=http/json (or leave it unset) and use the collector’s HTTP port (4318)',
    );
  }
  let url: string | null = null;
  if (opts.otlp !== undefined) url = tracesUrl(opts.otlp, '--otlp', false);
  else if (env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'])
    url = tracesUrl(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'], 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', true);
  else if (env['OTEL_EXPORTER_OTLP_ENDPOINT']) url = tracesUrl(env['OTEL_EXPORTER_OTLP_ENDPOINT'], 'OTEL_EXPORTER_OTLP_ENDPOINT', false);
  else if (exporters.includes('otlp')) url = 'http://localhost:4318/v1/traces'; // the specification's default
  if (url === null) return null;
  const sampler = (env['OTEL_TRACES_SAMPLER'] ?? 'parentbased_always_on').trim();
  let sampleRatio = 1;
  if (sampler === 'parentbased_always_off' || sampler === 'always_off') sampleRatio = 0;
  else if (sampler === 'parentbased_traceidratio' || sampler === 'traceidratio') {
    sampleRatio = Number(env['OTEL_TRACES_SAMPLER_ARG'] ?? '1');
    if (!(sampleRatio >= 0 && sampleRatio <= 1)) {
      throw new TracingConfigError(
        `OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not ${JSON.stringify(env['OTEL_TRACES_SAMPLER_ARG'])}`,
      );
    }
  } else if (sampler !== 'parentbased_always_on' && sampler !== 'always_on') {
    throw new TracingConfigError(
      `OTEL_TRACES_SAMPLER=${sampler} is not supported`,
      'use parentbased_always_on, parentbased_always_off or parentbased_traceidratio',
    );
  }
  return {
    url,
    headers: {
      ...parseHeaders(env['OTEL_EXPORTER_OTLP_HEADERS'], 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...parseHeaders(env['OTEL_EXPORTER_OTLP_TRACES_HEADERS'], 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
    },
    serviceName: env['OTEL_SERVICE_NAME']?.trim() || opts.serviceName,
    sampleRatio,
  };
}

/** Tracing that is on: a tracer provider exporting to the configured collector. */
export interface Tracing {
  readonly config: TracingConfig;
  /** A tracer of routed requests, for the router's `tracer` option. */
  requestTracer(): RequestTracer;
  /** The tracer, for followers that make spans of their own (src/rollout/rollout-tracing.ts). */
  readonly tracer: Tracer;
  /** Gives the next span started on {@link tracer} these ids (one use), so a trace continues across processes. */
  readonly ids: { seed(spanId: string, traceId?: string): void };
  /** Sends every finished span now. */
  flush(): Promise<void>;
  /** Flushes and stops. */
  shutdown(): Promise<void>;
}

/** Options of {@link createTracing} (tests). */
export interface TracingOptions {
  /** Between two batches sent, ms (default 1000). */
  readonly scheduledDelayMs?: number;
}

/**
 * Starts tracing to `config`. The OpenTelemetry SDK is loaded here, on first use, so a process with
 * tracing off never loads it.
 */
export async function createTracing(config: TracingConfig, opts: TracingOptions = {}): Promise<Tracing> {
  const { OtelTracing } = await import('./otel-tracing.js');
  return new OtelTracing(config, opts);
}

/** Tracing as configured by the flag and environment, or null (off: nothing is created or loaded). */
export async function startTracing(opts: {
  readonly otlp?: string | undefined;
  readonly serviceName: string;
  readonly env?: NodeJS.ProcessEnv;
}): Promise<Tracing | null> {
  const config = tracingConfig(opts);
  return config === null ? null : createTracing(config);
}
