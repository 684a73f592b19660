/**
 * HAProxy as a metric source, when HAProxy is the data plane (`meridian export haproxy`): its built-in
 * Prometheus exporter counts responses per server and status class; the export's `servers.json` says
 * which service, cluster and version each `backend/server` is. A measurement is the difference between
 * two snapshots, as for the router (router-source.ts, whose snapshot and sampling it reuses). HAProxy 2.6
 * keeps no latency histogram per server, so latency metrics are a configuration error here.
 */
import type { Metric } from '../../spec/schema.js';
import { parseExposition } from './exposition.js';
import { metricKind } from '../../spec/metric-kind.js';
import { type MetricSample, SAMPLE_ERROR_CODES } from './observation.js';
import { type RouterCounters, RouterSource } from './router-source.js';
import { type MetricSource, type SampleContext, failedSample } from './sources.js';

/** What one `backend/server` of the export serves (an entry of `servers.json`). */
export interface HaproxyServerIndexEntry {
  readonly backend: string;
  readonly server: string;
  readonly service: string;
  readonly cluster: string;
  readonly version: string | null;
}

const RESPONSES = 'haproxy_server_http_responses_total';

/**
 * A snapshot of HAProxy's per-server response counters, summed by service, cluster and version. Servers
 * the index does not know (or whose version is unknown) are left out; `other` responses are not requests
 * a version answered and are left out too.
 */
export function haproxyCounters(text: string, at: string, index: readonly HaproxyServerIndexEntry[]): RouterCounters {
  const byName = new Map(index.map((e) => [`${e.backend}/${e.server}`, e]));
  const series = new Map<string, { service: string; cluster: string; version: string; requests: number; errors: number }>();
  for (const x of parseExposition(text)) {
    if (x.name !== RESPONSES || !Number.isFinite(x.value)) continue;
    const e = byName.get(`${x.labels['proxy'] ?? ''}/${x.labels['server'] ?? ''}`);
    const code = x.labels['code'] ?? '';
    if (!e || e.version === null || code === 'other') continue;
    const key = `${e.service}\u0000${e.cluster}\u0000${e.version}`;
    let s = series.get(key);
    if (!s) series.set(key, (s = { service: e.service, cluster: e.cluster, version: e.version, requests: 0, errors: 0 }));
    s.requests += x.value;
    if (code === '5xx') s.errors += x.value;
  }
  return { at, series: [...series.values()].map((s) => ({ ...s, latency: { count: 0, sumMs: 0, buckets: [] } })) };
}

/**
 * The judge's source over HAProxy's Prometheus exporter. `read` returns the exporter's text (GET
 * http://<metrics listen>/metrics); call {@link HaproxySource.mark} when a step's weight is set.
 */
export class HaproxySource implements MetricSource {
  readonly #inner: RouterSource;

  constructor(opts: { read: () => Promise<string>; index: readonly HaproxyServerIndexEntry[]; now?: () => Date }) {
    const now = opts.now ?? (() => new Date());
    this.#inner = new RouterSource({ read: async () => haproxyCounters(await opts.read(), now().toISOString(), opts.index) });
  }

  /** Reads and keeps a snapshot now (the start of a step's window). */
  mark(): Promise<RouterCounters> {
    return this.#inner.mark();
  }

  sample(metric: Metric, ctx: SampleContext): Promise<MetricSample> {
    const kind = metricKind(metric);
    if (!('error' in kind) && kind.kind === 'latency') {
      return Promise.resolve(
        failedSample(metric, `haproxy ${metric.name} of ${ctx.service} ${ctx.canaryVersion}`, ctx.window, {
          code: SAMPLE_ERROR_CODES.config,
          message: 'HAProxy 2.6 exports no latency histogram per server; judge latency from Prometheus (source: prometheus) instead',
        }),
      );
    }
    return this.#inner.sample(metric, ctx);
  }
}
