/**
 * Live traffic from the router's counters: two scrapes of `meridian_router_requests_total` and
 * `meridian_router_request_duration_seconds` a few seconds apart give, per client region, cluster and
 * version, the request rate, the error rate (5xx and routing rejections) and the p99 latency the clients
 * of that region saw. Pure.
 */
import { parseExposition, type ExpositionSample } from '../rollout/analysis/exposition.js';

/** One flow of live traffic. */
export interface TrafficFlow {
  readonly service: string;
  readonly clientRegion: string;
  readonly cluster: string;
  readonly region: string;
  readonly version: string;
  readonly rps: number;
  readonly errorRate: number;
  /** p99 latency of this flow's requests (client region, cluster and version), or null. */
  readonly p99Ms: number | null;
}

/** What `GET /api/v1/traffic` answers and the `traffic` event carries. */
export interface TrafficView {
  readonly at: string;
  readonly windowSeconds: number;
  readonly flows: readonly TrafficFlow[];
}

/** Counters of one scrape. */
export interface TrafficSample {
  readonly at: number;
  /** `service|client|cluster|version` → [requests, errors]. */
  readonly requests: ReadonlyMap<string, readonly [number, number]>;
  /** `service|client|cluster|version` (as `requests`) → le → cumulative count. */
  readonly buckets: ReadonlyMap<string, ReadonlyMap<number, number>>;
}

/** Takes the counters out of the router's metrics text. */
export function sampleOf(text: string, at: number): TrafficSample {
  const requests = new Map<string, [number, number]>();
  const buckets = new Map<string, Map<number, number>>();
  let samples: ExpositionSample[];
  try {
    samples = parseExposition(text);
  } catch {
    samples = [];
  }
  for (const s of samples) {
    const l = s.labels;
    if (s.name === 'meridian_router_requests_total') {
      const key = [l['service'] ?? '', l['client_region'] || '(unknown)', l['cluster'] || 'none', l['version'] || 'none'].join('|');
      const v = requests.get(key) ?? [0, 0];
      v[0] += s.value;
      // 5xx from a cluster, or an answer of the router itself (residency-reject, no-healthy, no-route)
      if (l['code'] === '5xx' || l['cluster'] === 'none') v[1] += s.value;
      requests.set(key, v);
    } else if (s.name === 'meridian_router_request_duration_seconds_bucket') {
      const key = [l['service'] ?? '', l['client_region'] || '(unknown)', l['cluster'] || 'none', l['version'] || 'none'].join('|');
      const le = l['le'] === '+Inf' ? Infinity : Number(l['le']);
      const m = buckets.get(key) ?? new Map<number, number>();
      m.set(le, (m.get(le) ?? 0) + s.value);
      buckets.set(key, m);
    }
  }
  return { at, requests, buckets };
}

function p99(before: ReadonlyMap<number, number> | undefined, after: ReadonlyMap<number, number> | undefined): number | null {
  if (!after) return null;
  const les = [...after.keys()].sort((a, b) => a - b);
  const delta = les.map((le) => (after.get(le) ?? 0) - (before?.get(le) ?? 0));
  const total = delta[delta.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = 0.99 * total;
  for (let i = 0; i < les.length; i++) {
    if ((delta[i] ?? 0) >= rank) {
      const le = les[i] ?? Infinity;
      if (le === Infinity) return Number.isFinite(les[i - 1] ?? NaN) ? (les[i - 1] as number) * 1000 : null;
      // linear inside the bucket, as Prometheus' histogram_quantile does
      const lo = i === 0 ? 0 : (les[i - 1] ?? 0);
      const below = i === 0 ? 0 : (delta[i - 1] ?? 0);
      const inBucket = (delta[i] ?? 0) - below;
      const frac = inBucket > 0 ? (rank - below) / inBucket : 1;
      return (lo + (le - lo) * frac) * 1000;
    }
  }
  return null;
}

/** The flows between two samples of the same router; `regionOf` maps a cluster to its region. */
export function trafficBetween(before: TrafficSample, after: TrafficSample, regionOf: (cluster: string) => string): TrafficView {
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  const flows: TrafficFlow[] = [];
  for (const [key, [n, err]] of after.requests) {
    const [b0, b1] = before.requests.get(key) ?? [0, 0];
    const dn = n - b0;
    if (dn <= 0) continue;
    const [service = '', clientRegion = '', cluster = '', version = ''] = key.split('|');
    flows.push({
      service,
      clientRegion,
      cluster,
      region: regionOf(cluster),
      version,
      rps: Math.round((dn / seconds) * 100) / 100,
      errorRate: Math.round(((err - b1) / dn) * 10000) / 10000,
      p99Ms: ((x) => (x === null ? null : Math.round(x * 10) / 10))(p99(before.buckets.get(key), after.buckets.get(key))),
    });
  }
  flows.sort((a, b) => b.rps - a.rps);
  return { at: new Date(after.at).toISOString(), windowSeconds: Math.round(seconds * 10) / 10, flows };
}
