/**
 * What a metric source measured for one version over one window (an observation), the pair of them for
 * canary and baseline (a sample), and the arithmetic on latency histograms. Shapes are zod schemas so a
 * recorded sample or verdict can be read back from the store and checked.
 */
import { z } from 'zod';
import { tiedGroups } from './stats.js';

/** A time window, ISO 8601 instants; the end is when the measurement was taken. */
export const Window = z.strictObject({ start: z.string(), end: z.string() });
export type Window = z.output<typeof Window>;

/**
 * What a measurement counted: `attempts` (every upstream attempt sent to the version, retries included —
 * what the router's judge reads), or `requests` (what clients saw: each request once, by the version that
 * finally answered it). Absent: requests (older records, other sources).
 */
export const Basis = z.enum(['attempts', 'requests']);

/** What the clients saw of a version over the window, recorded beside a measurement made on attempts. */
export const ClientView = z.strictObject({
  requests: z.number().nonnegative(),
  errors: z.number().nonnegative(),
  /** The quantile of the request duration, ms (latency metrics). */
  latencyMs: z.number().nullable().optional(),
});
export type ClientView = z.output<typeof ClientView>;

/** Requests (or attempts, see `basis`) and how many of them were errors (5xx, or a failed attempt), over the window. */
export const ErrorRateObservation = z.strictObject({
  kind: z.literal('error-rate'),
  requests: z.number().nonnegative(),
  errors: z.number().nonnegative(),
  basis: Basis.optional(),
  clients: ClientView.optional(),
});

/** One cumulative histogram bucket: `count` observations took at most `le` milliseconds. */
export const Bucket = z.strictObject({ le: z.number().nonnegative(), count: z.number().nonnegative() });
export type Bucket = z.output<typeof Bucket>;

/**
 * Latencies over the window: `count` requests, and either cumulative histogram buckets (ascending `le`
 * in ms; what lies above the last bucket is `count` minus its count), or raw latencies in ms, or only a
 * quantile computed elsewhere (`value`, ms).
 */
export const LatencyObservation = z.strictObject({
  kind: z.literal('latency'),
  count: z.number().nonnegative(),
  buckets: z.array(Bucket).optional(),
  samples: z.array(z.number()).optional(),
  value: z.number().nullable().optional(),
  basis: Basis.optional(),
  clients: ClientView.optional(),
});

/** A single number from a query (Prometheus), and how many samples it stands for when known. */
export const ValueObservation = z.strictObject({
  kind: z.literal('value'),
  value: z.number().nullable(),
  samples: z.number().nonnegative().nullable(),
});

export const Observation = z.discriminatedUnion('kind', [ErrorRateObservation, LatencyObservation, ValueObservation]);
export type ErrorRateObservation = z.output<typeof ErrorRateObservation>;
export type LatencyObservation = z.output<typeof LatencyObservation>;
export type ValueObservation = z.output<typeof ValueObservation>;
export type Observation = z.output<typeof Observation>;

/** Stable codes of measurement failures; a code is never reused for something else. */
export const SAMPLE_ERROR_CODES = {
  /** The metric source could not be reached, or answered with an HTTP error. */
  http: 'MERIDIAN_E_ANALYSIS_HTTP',
  /** The metric source did not answer in time. */
  timeout: 'MERIDIAN_E_ANALYSIS_TIMEOUT',
  /** Prometheus answered `status: error` (a bad query, a timeout of its own, …). */
  query: 'MERIDIAN_E_ANALYSIS_QUERY',
  /** The answer cannot be judged: several series, a range vector, +Inf, an unexpected shape. */
  result: 'MERIDIAN_E_ANALYSIS_RESULT',
  /** The router has no snapshot of its counters at the window's start. */
  snapshot: 'MERIDIAN_E_ANALYSIS_SNAPSHOT',
  /** The metric cannot be measured as configured. */
  config: 'MERIDIAN_E_ANALYSIS_CONFIG',
} as const;

export const SampleError = z.strictObject({ code: z.string(), message: z.string() });
export type SampleError = z.output<typeof SampleError>;

/**
 * One measurement of one metric: the canary's observation and the baseline's (the stable version in the
 * same clusters over the same window), with the query that produced them. A failed measurement has
 * `error` set and no observations; a missing baseline (no stable traffic, or no data for it) is `null`.
 */
export const MetricSample = z.strictObject({
  metric: z.string(),
  query: z.string(),
  baselineQuery: z.string().nullable(),
  window: Window,
  canary: Observation.nullable(),
  baseline: Observation.nullable(),
  error: SampleError.nullable(),
  notes: z.array(z.string()),
});
export type MetricSample = z.output<typeof MetricSample>;

/** How a quantile was obtained: exactly from raw samples, interpolated in a bucket, only a lower bound, or given. */
export type QuantileBound = 'exact' | 'interpolated' | 'at-least' | 'given';

/** How many observations a sample stands for (`null` when the source cannot say). */
export function sampleCount(o: Observation): number | null {
  switch (o.kind) {
    case 'error-rate':
      return o.requests;
    case 'latency':
      return o.count;
    case 'value':
      return o.samples;
  }
}

/**
 * The q-quantile of a latency observation, in ms. Raw samples: the nearest rank (the smallest latency with
 * at least q of the requests at or below it). Buckets: linear interpolation inside the bucket, as
 * Prometheus's `histogram_quantile` does; when it falls above the last bucket the answer is that bucket's
 * bound and only a lower bound (`at-least`).
 */
export function latencyQuantile(o: LatencyObservation, q: number): { value: number | null; bound: QuantileBound } {
  if (o.count <= 0) return { value: null, bound: 'exact' };
  if (o.samples && o.samples.length > 0) {
    const sorted = [...o.samples].sort((a, b) => a - b);
    const rank = Math.max(1, Math.ceil(q * sorted.length));
    return { value: sorted[rank - 1] as number, bound: 'exact' };
  }
  if (o.buckets && o.buckets.length > 0) {
    const rank = q * o.count;
    let lo = 0;
    let cLo = 0;
    for (const b of o.buckets) {
      if (b.count >= rank && b.count > cLo) {
        return { value: lo + ((b.le - lo) * (rank - cLo)) / (b.count - cLo), bound: 'interpolated' };
      }
      lo = b.le;
      cLo = b.count;
    }
    return { value: lo, bound: 'at-least' };
  }
  return { value: o.value ?? null, bound: 'given' };
}

/**
 * How many observations took longer than `t` ms. Raw samples: counted. Buckets: the cumulative count
 * interpolated linearly at `t` (the same assumption as the quantile), so that "the quantile is above t"
 * and "more than (1 − q) of the requests are above t" agree. `known` is false when `t` lies above the last
 * bucket (nothing can be said) or there is neither samples nor buckets.
 */
export function countAbove(o: LatencyObservation, t: number): { count: number; known: boolean } {
  if (o.samples && o.samples.length > 0) return { count: o.samples.filter((x) => x > t).length, known: true };
  if (!o.buckets || o.buckets.length === 0) return { count: 0, known: false };
  let lo = 0;
  let cLo = 0;
  for (const b of o.buckets) {
    if (t <= b.le) {
      const atOrBelow = b.le === lo ? b.count : cLo + ((b.count - cLo) * (t - lo)) / (b.le - lo);
      return { count: o.count - atOrBelow, known: true };
    }
    lo = b.le;
    cLo = b.count;
  }
  return { count: o.count - cLo, known: false };
}

/** How many observations took less than `t` ms (see {@link countAbove}). */
export function countBelow(o: LatencyObservation, t: number): { count: number; known: boolean } {
  if (o.samples && o.samples.length > 0) return { count: o.samples.filter((x) => x < t).length, known: true };
  const above = countAbove(o, t);
  return { count: o.count - above.count, known: above.known };
}

/**
 * The tied groups of two latency observations for Mann–Whitney U: raw samples when both have them, else
 * the buckets (and the overflow above the last) when both use the same bounds; `null` when neither works.
 */
export function latencyGroups(a: LatencyObservation, b: LatencyObservation): (readonly [number, number])[] | null {
  if (a.samples && b.samples && a.samples.length > 0 && b.samples.length > 0) {
    return tiedGroups(a.samples, b.samples);
  }
  const ab = a.buckets;
  const bb = b.buckets;
  if (!ab || !bb || ab.length === 0 || ab.length !== bb.length || ab.some((x, i) => x.le !== bb[i]?.le)) return null;
  const groups: [number, number][] = [];
  let pa = 0;
  let pb = 0;
  ab.forEach((x, i) => {
    const y = bb[i] as Bucket;
    groups.push([x.count - pa, y.count - pb]);
    pa = x.count;
    pb = y.count;
  });
  groups.push([a.count - pa, b.count - pb]);
  return groups;
}
