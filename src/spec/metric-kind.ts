/**
 * What a configured metric measures and in which unit its limits are read. The router's metrics are known
 * by name (`error-rate`, `p99-latency`, …); a Prometheus metric is a plain value from its query. Read by the
 * judge (rollout/analysis), its metric sources and the alert-rule exporter (export/alert-rules.ts).
 */
import { parseDuration } from '../units/duration.js';
import { parseRatio, RATIO_PATTERN } from '../units/quantity.js';
import type { Metric } from './schema.js';

/** The three shapes of measurement the judge knows. */
export const METRIC_KINDS = ['error-rate', 'latency', 'value'] as const;
export type MetricKindName = (typeof METRIC_KINDS)[number];

/**
 * Units of the numbers in a verdict: `ratio` is a fraction of 1 (0.01 = 1%), `ms` milliseconds, `s`
 * seconds (Prometheus's base unit for time), `number` whatever the query returns.
 */
export type Unit = 'ratio' | 'ms' | 's' | 'number';

/** A metric's kind, with the quantile for latency (0.99 for `p99-latency`). */
export type MetricKind =
  | { readonly kind: 'error-rate'; readonly unit: 'ratio' }
  | { readonly kind: 'latency'; readonly unit: 'ms'; readonly quantile: number }
  | { readonly kind: 'value'; readonly unit: 'number' | 'ratio' | 's' };

const LATENCY_NAME = /^p(\d{1,2}|\d{3,4})-latency$/;

/** The router metric names the judge understands, for messages. */
export const ROUTER_METRICS_HINT = 'the router provides error-rate (5xx / answered) and pNN-latency (p50, p90, p95, p99, p999-latency)';

/** The quantile a `pNN-latency` name asks for: p50 → 0.5, p99 → 0.99, p999 → 0.999, p9999 → 0.9999. */
export function quantileOfName(name: string): number | undefined {
  const m = LATENCY_NAME.exec(name);
  if (!m) return undefined;
  const digits = m[1] as string;
  const q = digits.length <= 2 ? Number(digits) / 100 : Number(`0.${digits}`);
  return q > 0 && q < 1 ? q : undefined;
}

/** The kind of a metric, or a message saying why it has none. */
export function metricKind(metric: Metric): MetricKind | { readonly error: string } {
  if (metric.source === 'prometheus') {
    const written = [metric.max, metric.min, metric.maxIncreaseOverBaseline].filter((v): v is string | number => v !== undefined);
    const ratio = written.some((v) => typeof v === 'string' && new RegExp(RATIO_PATTERN).test(v));
    const duration = written.some((v) => typeof v === 'string' && parseDuration(v) !== undefined);
    if (ratio && duration) return { error: `metric ${metric.name} mixes a ratio and a duration in its limits; use one unit` };
    return { kind: 'value', unit: ratio ? 'ratio' : duration ? 's' : 'number' };
  }
  if (metric.name === 'error-rate') return { kind: 'error-rate', unit: 'ratio' };
  const q = quantileOfName(metric.name);
  if (q !== undefined) return { kind: 'latency', unit: 'ms', quantile: q };
  return { error: `the router has no metric named ${metric.name}: ${ROUTER_METRICS_HINT}; use source: prometheus with a query for others` };
}

/** A metric's limits as numbers in its unit (`null` when not set). */
export interface Limits {
  readonly max: number | null;
  readonly min: number | null;
  readonly maxIncreaseOverBaseline: number | null;
}

/** Reads one limit in the kind's unit, or says why it cannot be read. */
function readLimit(kind: MetricKind, field: keyof Limits, raw: string | number | undefined): number | null | { error: string } {
  if (raw === undefined) return null;
  const bad = (want: string) => ({ error: `${field}: ${JSON.stringify(raw)} is not ${want}` });
  switch (kind.kind) {
    case 'error-rate': {
      const r = parseRatio(raw);
      return r === undefined ? bad('a ratio like 1% or 0.01 (an error rate is a fraction of the requests)') : r;
    }
    case 'latency': {
      if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? raw : bad('a duration like 300ms');
      const ms = parseDuration(raw);
      return ms === undefined ? bad('a duration like 300ms or 1s (a latency increase is absolute, not a percentage)') : ms;
    }
    case 'value': {
      if (typeof raw === 'number') return raw;
      const r = parseRatio(raw);
      if (r !== undefined) return r;
      const ms = parseDuration(raw);
      if (ms !== undefined) return ms / 1000; // Prometheus measures time in seconds
      return bad('a number, a ratio or a duration');
    }
  }
}

/** A metric's limits, read in its unit; problems are listed, not thrown. */
export function metricLimits(metric: Metric, kind: MetricKind): Limits | { readonly error: string } {
  const out: Record<keyof Limits, number | null> = { max: null, min: null, maxIncreaseOverBaseline: null };
  const problems: string[] = [];
  for (const field of ['max', 'min', 'maxIncreaseOverBaseline'] as const) {
    const v = readLimit(kind, field, metric[field]);
    if (v !== null && typeof v === 'object') problems.push(v.error);
    else out[field] = v;
  }
  if (problems.length > 0) return { error: `metric ${metric.name}: ${problems.join('; ')}` };
  if (out.max === null && out.min === null && out.maxIncreaseOverBaseline === null) {
    return { error: `metric ${metric.name} has no limit: set max, min or maxIncreaseOverBaseline` };
  }
  if (out.max !== null && out.min !== null && out.min > out.max) {
    return { error: `metric ${metric.name}: min ${String(metric.min)} is above max ${String(metric.max)}` };
  }
  if (out.maxIncreaseOverBaseline !== null && out.maxIncreaseOverBaseline < 0) {
    return { error: `metric ${metric.name}: maxIncreaseOverBaseline must not be negative` };
  }
  return out;
}

/**
 * Problems with a metric's configuration that would make every measurement of it an error: an unknown
 * router metric, a limit in the wrong unit, no limit at all, a Prometheus metric without a query. For
 * preflight (`meridian validate`) and for the judge; an empty list means the metric can be judged.
 */
export function metricProblems(metric: Metric, opts: { prometheusUrl?: string } = {}): string[] {
  const kind = metricKind(metric);
  if ('error' in kind) return [kind.error];
  const problems: string[] = [];
  const limits = metricLimits(metric, kind);
  if ('error' in limits) problems.push(limits.error);
  if (metric.source === 'prometheus') {
    if (!metric.query) problems.push(`metric ${metric.name}: source prometheus needs a query`);
    if (!metric.url && !opts.prometheusUrl) problems.push(`metric ${metric.name}: source prometheus needs a url (the Prometheus server)`);
    if (metric.query && metric.maxIncreaseOverBaseline !== undefined && !metric.query.includes('$version')) {
      problems.push(
        `metric ${metric.name}: a comparison with the baseline needs $version in the query, so it can be asked for each version`,
      );
    }
  } else if (metric.query !== undefined || metric.url !== undefined) {
    problems.push(`metric ${metric.name}: query and url are for source: prometheus; the router's metrics are built in`);
  }
  return problems;
}
