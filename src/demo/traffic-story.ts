/**
 * The demo's traffic, told: the first time, where each client country was routed (the routing at a
 * glance); afterwards one line per period — requests, errors, and which versions answered.
 */
import type { CountryStats, TrafficReport } from '../traffic/report.js';

function shares(counts: Record<string, number>, total: number, max = 3): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, max)
    .map(([k, n]) => `${k} ${Math.round((100 * n) / Math.max(1, total))}%`)
    .join(', ');
}

function merged(r: TrafficReport): CountryStats {
  const all: CountryStats = { sent: 0, statuses: {}, clusters: {}, versions: {}, reasons: {}, latenciesMs: [] };
  for (const c of Object.values(r.countries)) {
    all.sent += c.sent;
    for (const key of ['statuses', 'clusters', 'versions'] as const)
      for (const [k, n] of Object.entries(c[key])) all[key][k] = (all[key][k] ?? 0) + n;
  }
  return all;
}

/** The lines for one period of traffic; with `routing`, one line per country saying where it went. */
export function trafficLine(r: TrafficReport, routing: boolean): string[] {
  const all = merged(r);
  const errors = Object.entries(all.statuses)
    .filter(([k]) => !/^[23]\d\d$/.test(k))
    .reduce((n, [, v]) => n + v, 0);
  const secs = r.durationMs / 1000;
  const failed = Object.fromEntries(Object.entries(all.statuses).filter(([k]) => !/^[23]\d\d$/.test(k)));
  const out = [
    `traffic: ${all.sent} requests in ${secs.toFixed(0)} s, ${((100 * errors) / Math.max(1, all.sent)).toFixed(1)}% errors${errors > 0 ? ` (${shares(failed, errors)})` : ''}; versions ${shares(all.versions, all.sent)}`,
  ];
  if (routing) {
    for (const [country, c] of Object.entries(r.countries).sort((a, b) => b[1].sent - a[1].sent))
      out.push(`  ${country.padEnd(3)} → ${shares(c.clusters, c.sent)}`);
  }
  return out;
}
