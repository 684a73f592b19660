/**
 * Prometheus as a metric source: an instant query (`GET /api/v1/query`) at the window's end, with
 * `$service`, `$cluster`, `$version` and `$window` filled in, asked once for the canary version and, when
 * the metric compares with the baseline, once for the baseline version.
 */
import type { Metric } from '../../spec/schema.js';
import { type MetricSample, type Observation, SAMPLE_ERROR_CODES, type SampleError } from './observation.js';
import { type MetricSource, type SampleContext, failedSample } from './sources.js';

/** The values a query template may use. */
export interface QueryVariables {
  readonly service: string;
  readonly clusters: readonly string[];
  readonly version: string;
  /** The window's length in seconds. */
  readonly windowSeconds: number;
}

/** Escapes a value for a double-quoted PromQL string. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes a value for a regular expression (RE2) in a double-quoted PromQL string. */
export function escapeRegexValue(value: string): string {
  return escapeLabelValue(value.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&'));
}

/** A window's length as a PromQL duration: whole seconds, at least 1s. */
export function promDuration(seconds: number): string {
  return `${Math.max(1, Math.round(seconds))}s`;
}

/**
 * Fills in a query template. `$service` and `$version` are escaped for a quoted label value
 * (`version="$version"`); `$cluster` becomes an escaped regular expression matching any of the wave's
 * clusters (`cluster=~"$cluster"`); `$window` the window's length (`rate(x[$window])`).
 */
export function substituteQuery(template: string, vars: QueryVariables): string {
  return template.replace(/\$(service|cluster|version|window)\b/g, (_, name: string) => {
    switch (name) {
      case 'service':
        return escapeLabelValue(vars.service);
      case 'cluster':
        return vars.clusters.map(escapeRegexValue).join('|');
      case 'version':
        return escapeLabelValue(vars.version);
      default:
        return promDuration(vars.windowSeconds);
    }
  });
}

/** What one query answered: a number, no data (empty, or NaN), or why it cannot be used. */
export type QueryAnswer = { readonly value: number | null; readonly notes: readonly string[] } | { readonly error: SampleError };

function parseSampleValue(v: unknown, notes: string[]): QueryAnswer {
  const text = Array.isArray(v) ? v[1] : undefined;
  if (typeof text !== 'string')
    return { error: { code: SAMPLE_ERROR_CODES.result, message: `unexpected sample ${JSON.stringify(v)?.slice(0, 200)}` } };
  if (text === 'NaN')
    return { value: null, notes: [...notes, 'the query returned NaN (typically 0/0: no requests in the window); judged as no data'] };
  const x = Number(text);
  if (!Number.isFinite(x))
    return { error: { code: SAMPLE_ERROR_CODES.result, message: `the query returned ${text}; a limit cannot be checked against it` } };
  return { value: x, notes };
}

/**
 * Reads Prometheus's answer to an instant query. A vector with one series or a scalar is a value; an
 * empty vector is no data; several series, a range vector or a string are errors (aggregate the query,
 * e.g. with `sum(...)`).
 */
export function parseQueryResponse(httpStatus: number, body: unknown): QueryAnswer {
  const b = (typeof body === 'object' && body !== null ? body : {}) as {
    status?: unknown;
    data?: unknown;
    error?: unknown;
    errorType?: unknown;
    warnings?: unknown;
  };
  const notes = Array.isArray(b.warnings)
    ? b.warnings.filter((w): w is string => typeof w === 'string').map((w) => `Prometheus warning: ${w}`)
    : [];
  if (b.status === 'error') {
    return {
      error: {
        code: SAMPLE_ERROR_CODES.query,
        message: `Prometheus: ${String(b.errorType ?? 'error')}: ${String(b.error ?? 'no message')} (HTTP ${httpStatus})`,
      },
    };
  }
  if (httpStatus < 200 || httpStatus >= 300) {
    return { error: { code: SAMPLE_ERROR_CODES.http, message: `Prometheus answered HTTP ${httpStatus}` } };
  }
  if (b.status !== 'success' || typeof b.data !== 'object' || b.data === null) {
    return { error: { code: SAMPLE_ERROR_CODES.result, message: 'not a Prometheus query response (no status: success with data)' } };
  }
  const { resultType, result } = b.data as { resultType?: unknown; result?: unknown };
  if (resultType === 'scalar') return parseSampleValue(result, notes);
  if (resultType === 'vector' && Array.isArray(result)) {
    if (result.length === 0) return { value: null, notes: [...notes, 'the query returned an empty vector'] };
    if (result.length > 1) {
      const labels = result.slice(0, 3).map((r: unknown) => JSON.stringify((r as { metric?: unknown }).metric ?? {}));
      return {
        error: {
          code: SAMPLE_ERROR_CODES.result,
          message: `the query returned ${result.length} series (${labels.join(', ')}${result.length > 3 ? ', …' : ''}); aggregate it to one, e.g. with sum(...)`,
        },
      };
    }
    return parseSampleValue((result[0] as { value?: unknown }).value, notes);
  }
  return {
    error: {
      code: SAMPLE_ERROR_CODES.result,
      message: `the query returned a ${String(resultType)}; write an instant query that returns one number`,
    },
  };
}

/** How to reach Prometheus. */
export interface PrometheusSourceOptions {
  /** The server for metrics that name no `url` (e.g. http://127.0.0.1:9090). */
  readonly url?: string;
  /** Per query, default 10 s. */
  readonly timeoutMs?: number;
  /** Extra request headers, such as `authorization`. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Prometheus's HTTP API as a metric source. */
export class PrometheusSource implements MetricSource {
  readonly #opts: PrometheusSourceOptions;

  constructor(opts: PrometheusSourceOptions = {}) {
    this.#opts = opts;
  }

  /** Runs one instant query at `time` (ISO 8601) against the server at `base`. */
  async query(base: string, query: string, time: string): Promise<QueryAnswer> {
    const url = new URL('api/v1/query', base.endsWith('/') ? base : `${base}/`);
    url.searchParams.set('query', query);
    url.searchParams.set('time', String(Date.parse(time) / 1000));
    const timeoutMs = this.#opts.timeoutMs ?? 10_000;
    let res: Response;
    try {
      res = await fetch(url, { headers: { accept: 'application/json', ...this.#opts.headers }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error & { cause?: { message?: string; code?: string } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        return { error: { code: SAMPLE_ERROR_CODES.timeout, message: `Prometheus at ${url.origin} did not answer within ${timeoutMs}ms` } };
      }
      const why = e.cause?.code ?? e.cause?.message ?? e.message;
      return { error: { code: SAMPLE_ERROR_CODES.http, message: `cannot reach Prometheus at ${url.origin}: ${why}` } };
    }
    let body: unknown;
    try {
      const text = await res.text();
      try {
        body = JSON.parse(text) as unknown;
      } catch {
        return {
          error: {
            code: SAMPLE_ERROR_CODES.http,
            message: `Prometheus answered HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`,
          },
        };
      }
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError';
      return {
        error: timedOut
          ? { code: SAMPLE_ERROR_CODES.timeout, message: `Prometheus at ${url.origin} did not answer within ${timeoutMs}ms` }
          : { code: SAMPLE_ERROR_CODES.http, message: `reading Prometheus's answer failed: ${(err as Error).message}` },
      };
    }
    return parseQueryResponse(res.status, body);
  }

  async sample(metric: Metric, ctx: SampleContext): Promise<MetricSample> {
    const windowSeconds = (Date.parse(ctx.window.end) - Date.parse(ctx.window.start)) / 1000;
    const vars = (version: string): QueryVariables => ({ service: ctx.service, clusters: ctx.clusters, version, windowSeconds });
    const template = metric.query ?? '';
    const query = substituteQuery(template, vars(ctx.canaryVersion));
    const base = metric.url ?? this.#opts.url;
    const config = (message: string) =>
      failedSample(metric, query || '(no query)', ctx.window, { code: SAMPLE_ERROR_CODES.config, message });
    if (!template) return config(`metric ${metric.name} has source prometheus but no query`);
    if (!base) return config(`metric ${metric.name} has source prometheus but no url, and no default Prometheus server is configured`);
    if (!(windowSeconds > 0)) return config(`the window ${ctx.window.start} → ${ctx.window.end} is empty`);
    const compare = metric.maxIncreaseOverBaseline !== undefined && ctx.baselineVersion !== null;
    if (compare && !template.includes('$version')) {
      return config(`metric ${metric.name} compares with the baseline, so its query must select the version with $version`);
    }
    const baselineQuery = compare ? substituteQuery(template, vars(ctx.baselineVersion as string)) : null;
    const [c, b] = await Promise.all([
      this.query(base, query, ctx.window.end),
      baselineQuery === null ? Promise.resolve(null) : this.query(base, baselineQuery, ctx.window.end),
    ]);
    if ('error' in c) return failedSample(metric, query, ctx.window, c.error, baselineQuery);
    if (b && 'error' in b) {
      return failedSample(metric, query, ctx.window, { code: b.error.code, message: `baseline query: ${b.error.message}` }, baselineQuery);
    }
    const obs = (a: { value: number | null }): Observation => ({ kind: 'value', value: a.value, samples: null });
    return {
      metric: metric.name,
      query,
      baselineQuery,
      window: ctx.window,
      canary: obs(c),
      baseline: b ? obs(b) : null,
      error: null,
      notes: [...c.notes.map((n) => `canary: ${n}`), ...(b ? b.notes.map((n) => `baseline: ${n}`) : [])],
    };
  }
}
