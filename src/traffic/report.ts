/** What synthetic traffic saw, per client country: clusters, versions, statuses and latency percentiles. */

/** Counts and latencies for one country. */
export interface CountryStats {
  sent: number;
  /** HTTP status (or `error` for a failed connection) → count. */
  statuses: Record<string, number>;
  clusters: Record<string, number>;
  versions: Record<string, number>;
  /** 503 reasons from `x-meridian-reason` → count. */
  reasons: Record<string, number>;
  latenciesMs: number[];
}

export interface TrafficReport {
  readonly url: string;
  readonly durationMs: number;
  readonly countries: Record<string, CountryStats>;
}

export function emptyStats(): CountryStats {
  return { sent: 0, statuses: {}, clusters: {}, versions: {}, reasons: {}, latenciesMs: [] };
}

/** The q-quantile (0..1) of a list, by the nearest-rank method; NaN for an empty list. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

function top(counts: Record<string, number>, total: number): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, n]) => `${k} ${((100 * n) / Math.max(1, total)).toFixed(1)}%`)
    .join(', ');
}

/** A JSON-friendly summary (latencies as percentiles, not raw lists). */
export function summarizeReport(r: TrafficReport): Record<string, unknown> {
  const countries: Record<string, unknown> = {};
  for (const [c, s] of Object.entries(r.countries)) {
    countries[c] = {
      sent: s.sent,
      statuses: s.statuses,
      clusters: s.clusters,
      versions: s.versions,
      reasons: s.reasons,
      latencyMs: { p50: quantile(s.latenciesMs, 0.5), p95: quantile(s.latenciesMs, 0.95), p99: quantile(s.latenciesMs, 0.99) },
    };
  }
  return { url: r.url, durationMs: r.durationMs, countries };
}

/** A table for people: one block per country. */
export function formatReport(r: TrafficReport): string {
  const lines: string[] = [];
  const total = Object.values(r.countries).reduce((s, c) => s + c.sent, 0);
  lines.push(
    `${total} requests to ${r.url} in ${(r.durationMs / 1000).toFixed(1)} s (${((total * 1000) / Math.max(1, r.durationMs)).toFixed(0)} req/s)`,
  );
  for (const c of Object.keys(r.countries).sort()) {
    const s = r.countries[c];
    if (!s) continue;
    const p = (q: number): string => `${quantile(s.latenciesMs, q).toFixed(1)}`;
    lines.push('');
    lines.push(`${c}  ${s.sent} requests   latency ms p50 ${p(0.5)}  p95 ${p(0.95)}  p99 ${p(0.99)}`);
    lines.push(`  status    ${top(s.statuses, s.sent)}`);
    if (Object.keys(s.clusters).length) lines.push(`  clusters  ${top(s.clusters, s.sent)}`);
    if (Object.keys(s.versions).length) lines.push(`  versions  ${top(s.versions, s.sent)}`);
    if (Object.keys(s.reasons).length) lines.push(`  refused   ${top(s.reasons, s.sent)}`);
  }
  return `${lines.join('\n')}\n`;
}
