/**
 * The router as a metric source. The router counts every upstream attempt by service, cluster, version
 * and outcome, with an attempt-latency histogram, and — what clients saw — every request by the version
 * that finally answered it. A measurement is the difference between two snapshots of those counters (the
 * window's start and end), summed over the wave's clusters: judged on the attempts (a failure retried
 * elsewhere still counts against the version that failed), with the clients' numbers beside them.
 */
import type { Metric } from '../../spec/schema.js';
import { metricKind } from '../../spec/metric-kind.js';
import { type ExpositionSample, parseExposition } from './exposition.js';
import { type Bucket, type ClientView, type MetricSample, type Observation, SAMPLE_ERROR_CODES, latencyQuantile } from './observation.js';
import type { CanarySignals } from './canary-signals.js';
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
  readonly latency: Histogram;
  /** Upstream attempts sent to this version (every outcome but `aborted`: the client went away). Absent in older snapshots. */
  readonly attempts?: number;
  /** Of those, failed: 5xx, reset, timeout, refused. */
  readonly failedAttempts?: number;
  /** Attempt latency histogram. */
  readonly attemptLatency?: Histogram;
  /** Times an endpoint of this version was taken out of rotation, by cause (ejected, unhealthy, unreachable). */
  readonly takenOut?: Readonly<Record<string, number>>;
}

/** A latency histogram: cumulative buckets (`le` in ms, ascending), total count and sum in ms. */
export interface Histogram {
  readonly count: number;
  readonly sumMs: number;
  readonly buckets: readonly Bucket[];
}

/** A snapshot of the router's counters, taken at `at` (ISO 8601). */
export interface RouterCounters {
  readonly at: string;
  readonly series: readonly RouterSeries[];
}

const REQUESTS = 'meridian_router_requests_total';
const DURATION = 'meridian_router_request_duration_seconds';
const ATTEMPTS = 'meridian_router_upstream_attempts_total';
const ATTEMPT_DURATION = 'meridian_router_upstream_attempt_duration_seconds';
const TAKEN_OUT = 'meridian_router_endpoints_taken_out_total';
/** Attempt outcomes that are the endpoint's failure (`aborted` is the client's doing, 4xx the client's error). */
const FAILED_ATTEMPT = new Set(['5xx', 'reset', 'timeout', 'refused']);

const keyOf = (s: { service: string; cluster: string; version: string }) => `${s.service}\u0000${s.cluster}\u0000${s.version}`;

interface MutableHistogram {
  count: number;
  sumMs: number;
  buckets: Map<number, number>;
}
interface MutableSeries {
  service: string;
  cluster: string;
  version: string;
  requests: number;
  errors: number;
  latency: MutableHistogram;
  attempts: number;
  failedAttempts: number;
  attemptLatency: MutableHistogram;
  takenOut: Record<string, number>;
}

const newHistogram = (): MutableHistogram => ({ count: 0, sumMs: 0, buckets: new Map() });

/** Adds one exposed histogram sample (`…_bucket`, `…_count`, `…_sum` of `name`) to `h`. */
function addHistogramSample(h: MutableHistogram, suffix: string, le: string | undefined, value: number): void {
  if (suffix === '_bucket') {
    if (le === undefined || le === '+Inf') return;
    const ms = toMs(Number(le));
    if (Number.isFinite(ms)) h.buckets.set(ms, (h.buckets.get(ms) ?? 0) + value);
  } else if (suffix === '_count') h.count += value;
  else if (suffix === '_sum') h.sumMs += value * 1000;
}

const frozen = (h: MutableHistogram): Histogram => ({
  count: h.count,
  sumMs: h.sumMs,
  buckets: [...h.buckets.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
});

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
      s = {
        service,
        cluster,
        version,
        requests: 0,
        errors: 0,
        latency: newHistogram(),
        attempts: 0,
        failedAttempts: 0,
        attemptLatency: newHistogram(),
        takenOut: {},
      };
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
    } else if (x.name === ATTEMPTS) {
      const outcome = x.labels['outcome'] ?? '';
      if (outcome === 'aborted') continue;
      const s = get(x.labels);
      if (!s) continue;
      s.attempts += x.value;
      if (FAILED_ATTEMPT.has(outcome)) s.failedAttempts += x.value;
    } else if (x.name === TAKEN_OUT) {
      const s = get(x.labels);
      const cause = x.labels['cause'];
      if (s && cause) s.takenOut[cause] = (s.takenOut[cause] ?? 0) + x.value;
    } else if (x.name.startsWith(DURATION)) {
      const s = get(x.labels);
      if (s) addHistogramSample(s.latency, x.name.slice(DURATION.length), x.labels['le'], x.value);
    } else if (x.name.startsWith(ATTEMPT_DURATION)) {
      const s = get(x.labels);
      if (s) addHistogramSample(s.attemptLatency, x.name.slice(ATTEMPT_DURATION.length), x.labels['le'], x.value);
    }
  }
  return {
    at,
    series: [...series.values()].map((s) => ({ ...s, latency: frozen(s.latency), attemptLatency: frozen(s.attemptLatency) })),
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

/** Whether histogram `end` cannot have grown from `start` (fewer observations, other buckets): a reset. */
function histogramReset(end: Histogram, start: Histogram): boolean {
  return (
    end.count < start.count ||
    end.buckets.length !== start.buckets.length ||
    end.buckets.some((b, i) => b.le !== start.buckets[i]?.le || b.count < (start.buckets[i]?.count ?? 0))
  );
}

function histogramDelta(end: Histogram, start: Histogram): Histogram {
  return {
    count: end.count - start.count,
    sumMs: end.sumMs - start.sumMs,
    buckets: end.buckets.map((b, i) => ({ le: b.le, count: b.count - (start.buckets[i]?.count ?? 0) })),
  };
}

const EMPTY: Histogram = { count: 0, sumMs: 0, buckets: [] };

/** One series' growth between two snapshots; a counter that went down (the router restarted) counts from zero. */
function delta(end: RouterSeries, start: RouterSeries | undefined): RouterSeries {
  if (!start) return end;
  const endAttemptLatency = end.attemptLatency ?? EMPTY;
  const startAttemptLatency = start.attemptLatency ?? (endAttemptLatency.count > 0 ? EMPTY : endAttemptLatency);
  const takenOut = { ...(end.takenOut ?? {}) };
  const reset =
    end.requests < start.requests ||
    end.errors < start.errors ||
    (end.attempts ?? 0) < (start.attempts ?? 0) ||
    (end.failedAttempts ?? 0) < (start.failedAttempts ?? 0) ||
    Object.entries(start.takenOut ?? {}).some(([k, n]) => (takenOut[k] ?? 0) < n) ||
    histogramReset(end.latency, start.latency) ||
    (startAttemptLatency.buckets.length > 0 && histogramReset(endAttemptLatency, startAttemptLatency));
  if (reset) return end;
  for (const [k, n] of Object.entries(start.takenOut ?? {})) takenOut[k] = (takenOut[k] ?? 0) - n;
  return {
    ...end,
    requests: end.requests - start.requests,
    errors: end.errors - start.errors,
    latency: histogramDelta(end.latency, start.latency),
    attempts: (end.attempts ?? 0) - (start.attempts ?? 0),
    failedAttempts: (end.failedAttempts ?? 0) - (start.failedAttempts ?? 0),
    attemptLatency: startAttemptLatency.buckets.length > 0 ? histogramDelta(endAttemptLatency, startAttemptLatency) : endAttemptLatency,
    takenOut,
  };
}

/** What happened between two snapshots, series by series. */
export function diffCounters(start: RouterCounters, end: RouterCounters): RouterSeries[] {
  const before = new Map(start.series.map((s) => [keyOf(s), s]));
  return end.series.map((s) => delta(s, before.get(keyOf(s))));
}

function sumHistograms(hs: readonly Histogram[]): { count: number; buckets: Bucket[] } {
  const buckets = new Map<number, number>();
  for (const h of hs) for (const b of h.buckets) buckets.set(b.le, (buckets.get(b.le) ?? 0) + b.count);
  return {
    count: hs.reduce((a, h) => a + h.count, 0),
    buckets: [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
  };
}

/**
 * Sums one version's series over the clusters into the observation a metric kind needs: on the attempts
 * (error rate = failed attempts ÷ attempts; latency = attempt latency), with what clients saw beside it.
 * A router that counts no attempts (older than them: requests but no attempts) is measured on requests.
 */
function observe(
  kind: { readonly kind: 'error-rate' } | { readonly kind: 'latency'; readonly quantile: number },
  series: readonly RouterSeries[],
  service: string,
  clusters: ReadonlySet<string>,
  version: string,
): Observation {
  const mine = series.filter((s) => s.service === service && s.version === version && clusters.has(s.cluster));
  const requests = mine.reduce((a, s) => a + s.requests, 0);
  const errors = mine.reduce((a, s) => a + s.errors, 0);
  const attempts = mine.reduce((a, s) => a + (s.attempts ?? 0), 0);
  const onAttempts = attempts > 0 || requests === 0;
  const clientLatency = sumHistograms(mine.map((s) => s.latency));
  const clients: ClientView = { requests, errors };
  if (kind.kind === 'error-rate') {
    if (!onAttempts) return { kind: 'error-rate', requests, errors, basis: 'requests' };
    return {
      kind: 'error-rate',
      requests: attempts,
      errors: mine.reduce((a, s) => a + (s.failedAttempts ?? 0), 0),
      basis: 'attempts',
      clients,
    };
  }
  if (!onAttempts) return { kind: 'latency', ...clientLatency, basis: 'requests' };
  const q = latencyQuantile({ kind: 'latency', ...clientLatency }, kind.quantile);
  return {
    kind: 'latency',
    ...sumHistograms(mine.map((s) => s.attemptLatency ?? EMPTY)),
    basis: 'attempts',
    clients: { ...clients, latencyMs: q.value },
  };
}

/** How a router measurement is described in the record (the router's "query"). */
export function routerQuery(metric: Metric, ctx: SampleContext, version: string): string {
  const what =
    metric.name === 'error-rate'
      ? 'failed upstream attempts (5xx, reset, timeout, refused) / attempts (retries included; client aborts left out)'
      : `${metric.name.replace(/-latency$/, '')} of the upstream attempt duration histogram`;
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
    canary: observe(kind, series, ctx.service, clusters, ctx.canaryVersion),
    baseline: ctx.baselineVersion === null ? null : observe(kind, series, ctx.service, clusters, ctx.baselineVersion),
    error: null,
    notes,
  };
}

/**
 * What the router saw of the canary's endpoints between two snapshots (pure): canary endpoints taken out
 * of rotation, by cluster and cause, and the canary's share of the attempts to canary and baseline in the
 * wave's clusters, against its `weight` (percent).
 */
export function routerSignals(ctx: SampleContext, start: RouterCounters, end: RouterCounters, weight: number): CanarySignals {
  const clusters = new Set(ctx.clusters);
  const series = diffCounters(start, end).filter((s) => s.service === ctx.service && clusters.has(s.cluster));
  const takenOut: { cluster: string; cause: string; count: number }[] = [];
  for (const s of series) {
    if (s.version !== ctx.canaryVersion) continue;
    for (const [cause, count] of Object.entries(s.takenOut ?? {})) if (count > 0) takenOut.push({ cluster: s.cluster, cause, count });
  }
  const attemptsOf = (v: string) => series.filter((s) => s.version === v).reduce((a, s) => a + (s.attempts ?? 0), 0);
  const canary = attemptsOf(ctx.canaryVersion);
  const share =
    ctx.baselineVersion === null || ctx.baselineVersion === ctx.canaryVersion
      ? null
      : { canary, total: canary + attemptsOf(ctx.baselineVersion), weight };
  return { takenOut: takenOut.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.cause.localeCompare(b.cause)), share };
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
