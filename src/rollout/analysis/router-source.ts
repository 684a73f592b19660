/**
 * The router as a metric source. The router counts requests by service, cluster, version and status class
 * and keeps latency histograms by service, cluster and version; a measurement is the difference between
 * two snapshots of those counters (the window's start and end), summed over the wave's clusters.
 */
import type { Metric } from '../../spec/schema.js';
import { metricKind } from './metric-kind.js';
import { type ExpositionSample, parseExposition } from './exposition.js';
import { type Bucket, type MetricSample, type Observation, SAMPLE_ERROR_CODES } from './observation.js';
import { type MetricSource, type SampleContext, failedSample } from './sources.js';

/** The counters of one service's version in one cluster, since the router started. */
export interface RouterSeries {
  readonly service: string;
  readonly cluster: string;
  readonly version: string;
  /** Requests answered by this version (every status class; requests the client aborted are left out). */
  readonly requests: number;
  /** Of those, answered with a 5xx status. */
  readonly errors: number;
  /** Latency histogram: cumulative buckets (`le` in ms, ascending), total count and sum in ms. */
  readonly latency: { readonly count: number; readonly sumMs: number; readonly buckets: readonly Bucket[] };
}

/** A snapshot of the router's counters, taken at `at` (ISO 8601). */
export interface RouterCounters {
  readonly at: string;
  readonly series: readonly RouterSeries[];
}

const REQUESTS = 'meridian_router_requests_total';
const DURATION = 'meridian_router_request_duration_seconds';

const keyOf = (s: { service: string; cluster: string; version: string }) => `${s.service}\u0000${s.cluster}\u0000${s.version}`;

interface MutableSeries {
  service: string;
  cluster: string;
  version: string;
  requests: number;
  errors: number;
  latency: { count: number; sumMs: number; buckets: Map<number, number> };
}

/** Seconds to milliseconds without binary noise (0.3 s → 300, not 300.00000000000006). */
const toMs = (s: number) => Math.round(s * 1e6) / 1e3;

/**
 * Builds a snapshot from the router's samples, by metric name as exposed (`…_requests_total`,
 * `…_request_duration_seconds_bucket|_count|_sum`). Requests the router answered itself (cluster `none`)
 * belong to no version and are left out, as are requests the client aborted.
 */
export function routerCountersFromSamples(samples: readonly ExpositionSample[], at: string): RouterCounters {
  const series = new Map<string, MutableSeries>();
  const get = (l: Readonly<Record<string, string>>): MutableSeries | undefined => {
    const service = l['service'];
    const cluster = l['cluster'];
    const version = l['version'];
    if (!service || !cluster || !version || cluster === 'none') return undefined;
    const k = keyOf({ service, cluster, version });
    let s = series.get(k);
    if (!s) {
      s = { service, cluster, version, requests: 0, errors: 0, latency: { count: 0, sumMs: 0, buckets: new Map() } };
      series.set(k, s);
    }
    return s;
  };
  for (const x of samples) {
    if (!Number.isFinite(x.value)) continue;
    if (x.name === REQUESTS) {
      const code = x.labels['code'];
      if (code === 'aborted') continue;
      const s = get(x.labels);
      if (!s) continue;
      s.requests += x.value;
      if (code === '5xx') s.errors += x.value;
    } else if (x.name === `${DURATION}_bucket`) {
      const le = x.labels['le'];
      const s = get(x.labels);
      if (!s || le === undefined || le === '+Inf') continue;
      const ms = toMs(Number(le));
      if (Number.isFinite(ms)) s.latency.buckets.set(ms, (s.latency.buckets.get(ms) ?? 0) + x.value);
    } else if (x.name === `${DURATION}_count`) {
      const s = get(x.labels);
      if (s) s.latency.count += x.value;
    } else if (x.name === `${DURATION}_sum`) {
      const s = get(x.labels);
      if (s) s.latency.sumMs += x.value * 1000;
    }
  }
  return {
    at,
    series: [...series.values()].map((s) => ({
      ...s,
      latency: {
        count: s.latency.count,
        sumMs: s.latency.sumMs,
        buckets: [...s.latency.buckets.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
      },
    })),
  };
}

/** A snapshot from the router's metrics in the Prometheus text format (`GET /_meridian/metrics`). */
export function routerCountersFromText(text: string, at: string): RouterCounters {
  return routerCountersFromSamples(parseExposition(text), at);
}

/**
 * A snapshot from prom-client's JSON form of a registry (`await registry.getMetricsAsJSON()`), which is
 * what a router in the same process provides. Anything that is not that shape is ignored.
 */
export function routerCountersFromMetricsJson(metrics: unknown, at: string): RouterCounters {
  const samples: ExpositionSample[] = [];
  if (Array.isArray(metrics)) {
    for (const m of metrics as unknown[]) {
      if (typeof m !== 'object' || m === null) continue;
      const { name, values } = m as { name?: unknown; values?: unknown };
      if (typeof name !== 'string' || !Array.isArray(values)) continue;
      for (const v of values as unknown[]) {
        if (typeof v !== 'object' || v === null) continue;
        const { value, labels, metricName } = v as { value?: unknown; labels?: unknown; metricName?: unknown };
        if (typeof value !== 'number') continue;
        const l: Record<string, string> = {};
        if (typeof labels === 'object' && labels !== null) {
          for (const [k, x] of Object.entries(labels)) if (typeof x === 'string' || typeof x === 'number') l[k] = String(x);
        }
        samples.push({ name: typeof metricName === 'string' ? metricName : name, labels: l, value });
      }
    }
  }
  return routerCountersFromSamples(samples, at);
}

/** One series' growth between two snapshots; a counter that went down (the router restarted) counts from zero. */
function delta(end: RouterSeries, start: RouterSeries | undefined): RouterSeries {
  if (!start) return end;
  const reset =
    end.requests < start.requests ||
    end.errors < start.errors ||
    end.latency.count < start.latency.count ||
    end.latency.buckets.length !== start.latency.buckets.length ||
    end.latency.buckets.some((b, i) => b.le !== start.latency.buckets[i]?.le || b.count < (start.latency.buckets[i]?.count ?? 0));
  if (reset) return end;
  return {
    ...end,
    requests: end.requests - start.requests,
    errors: end.errors - start.errors,
    latency: {
      count: end.latency.count - start.latency.count,
      sumMs: end.latency.sumMs - start.latency.sumMs,
      buckets: end.latency.buckets.map((b, i) => ({ le: b.le, count: b.count - (start.latency.buckets[i]?.count ?? 0) })),
    },
  };
}

/** What happened between two snapshots, series by series. */
export function diffCounters(start: RouterCounters, end: RouterCounters): RouterSeries[] {
  const before = new Map(start.series.map((s) => [keyOf(s), s]));
  return end.series.map((s) => delta(s, before.get(keyOf(s))));
}

/** Sums one version's series over the clusters into the observation a metric kind needs. */
function observe(
  kind: 'error-rate' | 'latency',
  series: readonly RouterSeries[],
  service: string,
  clusters: ReadonlySet<string>,
  version: string,
): Observation {
  const mine = series.filter((s) => s.service === service && s.version === version && clusters.has(s.cluster));
  if (kind === 'error-rate') {
    return { kind, requests: mine.reduce((a, s) => a + s.requests, 0), errors: mine.reduce((a, s) => a + s.errors, 0) };
  }
  const buckets = new Map<number, number>();
  for (const s of mine) for (const b of s.latency.buckets) buckets.set(b.le, (buckets.get(b.le) ?? 0) + b.count);
  return {
    kind,
    count: mine.reduce((a, s) => a + s.latency.count, 0),
    buckets: [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
  };
}

/** How a router measurement is described in the record (the router's "query"). */
export function routerQuery(metric: Metric, ctx: SampleContext, version: string): string {
  const what =
    metric.name === 'error-rate'
      ? '5xx responses / answered requests (client aborts left out)'
      : `${metric.name.replace(/-latency$/, '')} of the request duration histogram`;
  return `router ${metric.name}: ${what} of ${ctx.service} ${version} in ${ctx.clusters.join(', ')}`;
}

/**
 * The sample for one metric between two snapshots. Pure: the window recorded is the snapshots' own times.
 */
export function routerSample(metric: Metric, ctx: SampleContext, start: RouterCounters, end: RouterCounters): MetricSample {
  const window = { start: start.at, end: end.at };
  const query = routerQuery(metric, ctx, ctx.canaryVersion);
  const baselineQuery = ctx.baselineVersion === null ? null : routerQuery(metric, ctx, ctx.baselineVersion);
  const kind = metricKind(metric);
  if ('error' in kind || kind.kind === 'value') {
    return failedSample(metric, query, window, {
      code: SAMPLE_ERROR_CODES.config,
      message: 'error' in kind ? kind.error : 'not a router metric',
    });
  }
  const series = diffCounters(start, end);
  const clusters = new Set(ctx.clusters);
  const notes: string[] = [];
  if (Date.parse(end.at) < Date.parse(start.at)) notes.push('the end snapshot is older than the start snapshot');
  return {
    metric: metric.name,
    query,
    baselineQuery,
    window,
    canary: observe(kind.kind, series, ctx.service, clusters, ctx.canaryVersion),
    baseline: ctx.baselineVersion === null ? null : observe(kind.kind, series, ctx.service, clusters, ctx.baselineVersion),
    error: null,
    notes,
  };
}

/** How the router source reads the counters: in process, or from a router's admin endpoint. */
export type CounterReader = () => RouterCounters | Promise<RouterCounters>;

/**
 * The router's counters as a metric source. Call {@link RouterSource.mark} when a step's weight is set and
 * use the snapshot's `at` as the window's start; every `sample` then reads the counters afresh for the
 * window's end. Snapshots are kept (the newest `keep`) so that any kept instant can start a window.
 */
export class RouterSource implements MetricSource {
  readonly #read: CounterReader;
  readonly #keep: number;
  readonly #snapshots: RouterCounters[] = [];

  constructor(opts: { read: CounterReader; keep?: number }) {
    this.#read = opts.read;
    this.#keep = opts.keep ?? 256;
  }

  /** Reads and keeps a snapshot now. */
  async mark(): Promise<RouterCounters> {
    const s = await this.#read();
    this.#snapshots.push(s);
    this.#snapshots.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    while (this.#snapshots.length > this.#keep) this.#snapshots.shift();
    return s;
  }

  /** The newest kept snapshot taken at or before `at`. */
  snapshotAt(at: string): RouterCounters | undefined {
    const t = Date.parse(at);
    let best: RouterCounters | undefined;
    for (const s of this.#snapshots) if (Date.parse(s.at) <= t) best = s;
    return best;
  }

  async sample(metric: Metric, ctx: SampleContext): Promise<MetricSample> {
    const start = this.snapshotAt(ctx.window.start);
    if (!start) {
      return failedSample(metric, routerQuery(metric, ctx, ctx.canaryVersion), ctx.window, {
        code: SAMPLE_ERROR_CODES.snapshot,
        message: `no snapshot of the router's counters at or before ${ctx.window.start}; call mark() when the step starts and use its time as the window's start`,
      });
    }
    let end: RouterCounters;
    try {
      end = await this.mark();
    } catch (err) {
      return failedSample(metric, routerQuery(metric, ctx, ctx.canaryVersion), ctx.window, {
        code: SAMPLE_ERROR_CODES.http,
        message: `could not read the router's counters: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
    return routerSample(metric, ctx, start, end);
  }
}
