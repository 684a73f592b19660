/**
 * Metrics for hot paths: counters and histograms whose series are resolved to an integer once and then
 * updated in typed arrays (no label hashing, no allocation per update). They plug into a prom-client
 * `Registry` like its own metrics (`name`, `help`, `type`, `get()`), so scraping, the text format and
 * cluster aggregation (`AggregatorRegistry`) work unchanged.
 */
import { Registry } from 'prom-client';

/** What prom-client's registry reads from a metric. */
interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}
interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram' | 'gauge';
  values: MetricValue[];
  aggregator: 'sum';
}

/** Request latency buckets in seconds: 0.5 ms … 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Prometheus metric and label names (https://prometheus.io/docs/practices/naming/). */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export interface VecOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Registries to register with (none by default). */
  readonly registers?: readonly Registry[];
  /** Most distinct series before new label sets share one overflow series (default 10,000). */
  readonly maxSeries?: number;
}

/** Shared part of the vectors: the label sets, interned to series numbers. */
abstract class SeriesVec {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum' as const;
  protected readonly labelSets: Record<string, string>[] = [];
  readonly #index = new Map<string, number>();
  readonly #maxSeries: number;
  #overflow = -1;

  constructor(opts: VecOptions) {
    if (!METRIC_NAME.test(opts.name)) throw new TypeError(`invalid metric name ${opts.name}`);
    for (const l of opts.labelNames) if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new TypeError(`invalid label name ${l}`);
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.#maxSeries = opts.maxSeries ?? 10_000;
    for (const r of opts.registers ?? []) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /**
   * The series number for these label values (in `labelNames` order). Allocates the first time a label
   * set is seen; callers cache the number. Past `maxSeries`, every new label set maps to one series
   * whose labels all say `overflow`, so a label bug cannot grow memory without bound.
   */
  series(values: readonly string[]): number {
    const key = values.join('\u0000');
    const known = this.#index.get(key);
    if (known !== undefined) return known;
    if (this.labelSets.length >= this.#maxSeries) {
      if (this.#overflow < 0) this.#overflow = this.add(Object.fromEntries(this.labelNames.map((l) => [l, 'overflow'])));
      return this.#overflow;
    }
    const labels: Record<string, string> = {};
    this.labelNames.forEach((l, i) => (labels[l] = values[i] ?? ''));
    const n = this.add(labels);
    this.#index.set(key, n);
    return n;
  }

  /** Number of series so far. */
  get size(): number {
    return this.labelSets.length;
  }

  protected add(labels: Record<string, string>): number {
    this.labelSets.push(labels);
    this.grow(this.labelSets.length);
    return this.labelSets.length - 1;
  }

  protected abstract grow(n: number): void;
}

function grown(a: Float64Array, n: number): Float64Array {
  if (n <= a.length) return a;
  const b = new Float64Array(Math.max(n, a.length * 2, 16));
  b.set(a);
  return b;
}

/** A counter vector: `inc(series)` is an array increment. */
export class CounterVec extends SeriesVec {
  readonly type = 'counter' as const;
  #values: Float64Array = new Float64Array(16);

  inc(series: number, by = 1): void {
    this.#values[series] = (this.#values[series] as number) + by;
  }

  /** The current value of a series (tests, stats). */
  value(series: number): number {
    return this.#values[series] ?? 0;
  }

  /** Sum over the series whose labels match every given label. */
  sum(match: Readonly<Record<string, string>> = {}): number {
    let s = 0;
    this.labelSets.forEach((labels, i) => {
      for (const [k, v] of Object.entries(match)) if (labels[k] !== v) return;
      s += this.#values[i] ?? 0;
    });
    return s;
  }

  protected grow(n: number): void {
    this.#values = grown(this.#values, n);
  }

  get(): Promise<MetricSnapshot> {
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.labelSets.map((labels, i) => ({ value: this.#values[i] ?? 0, labels })),
    });
  }
}

/** A gauge vector set from values (typically in a collect hook). */
export class GaugeVec extends SeriesVec {
  readonly type = 'gauge' as const;
  #values: Float64Array = new Float64Array(16);
  readonly #collect: (() => void) | undefined;

  constructor(opts: VecOptions & { collect?: () => void }) {
    super(opts);
    this.#collect = opts.collect;
  }

  set(series: number, value: number): void {
    this.#values[series] = value;
  }

  value(series: number): number {
    return this.#values[series] ?? 0;
  }

  protected grow(n: number): void {
    this.#values = grown(this.#values, n);
  }

  get(): Promise<MetricSnapshot> {
    this.#collect?.();
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.labelSets.map((labels, i) => ({ value: this.#values[i] ?? 0, labels })),
    });
  }
}

/** A histogram vector with fixed buckets: `observe(series, v)` is a bucket search and three array writes. */
export class HistogramVec extends SeriesVec {
  readonly type = 'histogram' as const;
  readonly buckets: Float64Array;
  #counts: Float64Array = new Float64Array(0);
  #sums: Float64Array = new Float64Array(16);
  #totals: Float64Array = new Float64Array(16);

  constructor(opts: VecOptions & { buckets?: readonly number[] }) {
    super(opts);
    if (opts.labelNames.includes('le')) throw new TypeError('a histogram cannot have a label named le');
    this.buckets = new Float64Array([...(opts.buckets ?? LATENCY_BUCKETS)].sort((a, b) => a - b));
    this.#counts = new Float64Array(16 * this.buckets.length);
  }

  observe(series: number, value: number): void {
    const b = this.buckets;
    const n = b.length;
    let i = 0;
    while (i < n && value > (b[i] as number)) i++;
    if (i < n) {
      const k = series * n + i;
      this.#counts[k] = (this.#counts[k] as number) + 1;
    }
    this.#sums[series] = (this.#sums[series] as number) + value;
    this.#totals[series] = (this.#totals[series] as number) + 1;
  }

  /** Observations of a series so far. */
  count(series: number): number {
    return this.#totals[series] ?? 0;
  }

  protected grow(n: number): void {
    this.#sums = grown(this.#sums, n);
    this.#totals = grown(this.#totals, n);
    const need = this.#sums.length * this.buckets.length;
    if (need > this.#counts.length) {
      const c = new Float64Array(need);
      c.set(this.#counts);
      this.#counts = c;
    }
  }

  get(): Promise<MetricSnapshot> {
    const values: MetricValue[] = [];
    const n = this.buckets.length;
    this.labelSets.forEach((labels, s) => {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        acc += this.#counts[s * n + i] ?? 0;
        values.push({ value: acc, labels: { ...labels, le: this.buckets[i] as number }, metricName: `${this.name}_bucket` });
      }
      const total = this.#totals[s] ?? 0;
      values.push({ value: total, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: this.#sums[s] ?? 0, labels, metricName: `${this.name}_sum` });
      values.push({ value: total, labels, metricName: `${this.name}_count` });
    });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

/** A new, empty registry (never the process-global one, so that several routers can live in one process). */
export function createRegistry(): Registry {
  return new Registry();
}

/** Maps strings to small integers, for composing cache keys from label values without allocating. */
export class Interner {
  readonly #ids = new Map<string, number>();
  readonly #names: string[] = [];

  id(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) {
      id = this.#names.length;
      this.#names.push(name);
      this.#ids.set(name, id);
    }
    return id;
  }

  name(id: number): string {
    return this.#names[id] ?? '';
  }
}
