/**
 * The demo's traffic, told: the first time, where each client country was routed (the routing at a
 * glance); afterwards one line per period — requests, errors, and which versions answered. And when the
 * traffic is answered well enough for the first rollout to start.
 */
import type { CountryStats, TrafficReport } from '../traffic/report.js';

function shares(counts: Record<string, number>, total: number, max = 3): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, max)
    .map(([k, n]) => `${k} ${Math.round((100 * n) / Math.max(1, total))}%`)
    .join(', ');
}

/**
 * The demo's traffic periods: the first is short, so that the routing shows (and the first rollout can
 * start) a few seconds after the fleet is up; the next ones are told every `reportMs`. The first rollout
 * starts after the first period whose requests were answered with less than `answered` errors — a fleet
 * still warming up (timeouts while its processes start) would fail a good canary's gate — or after
 * `patience` periods whatever their errors, so that the story goes on and says so.
 */
export const DEMO_TRAFFIC = { firstReportMs: 3000, reportMs: 10_000, answered: 0.05, patience: 2 } as const;

function merged(r: TrafficReport): CountryStats {
  const all: CountryStats = { sent: 0, statuses: {}, clusters: {}, versions: {}, reasons: {}, latenciesMs: [] };
  for (const c of Object.values(r.countries)) {
    all.sent += c.sent;
    for (const key of ['statuses', 'clusters', 'versions'] as const)
      for (const [k, n] of Object.entries(c[key])) all[key][k] = (all[key][k] ?? 0) + n;
  }
  return all;
}

/** The share of a period's requests that got no 2xx or 3xx answer (timeouts included); 0 when none was sent. */
export function errorShare(r: TrafficReport): number {
  const all = merged(r);
  const errors = Object.entries(all.statuses)
    .filter(([k]) => !/^[23]\d\d$/.test(k))
    .reduce((n, [, v]) => n + v, 0);
  return all.sent === 0 ? 0 : errors / all.sent;
}

/**
 * Whether the first rollout may start after `period` (1 for the first) reported `r`: `answered` when its
 * requests were answered well, `patience` when the periods to wait for that have run out, else `wait`.
 */
export function rolloutReadiness(r: TrafficReport, period: number, t = DEMO_TRAFFIC): 'answered' | 'patience' | 'wait' {
  const sent = Object.values(r.countries).reduce((n, c) => n + c.sent, 0);
  if (sent > 0 && errorShare(r) < t.answered) return 'answered';
  return period >= t.patience ? 'patience' : 'wait';
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
