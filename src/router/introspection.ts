/**
 * What the router tells about itself — every endpoint's state per service and cluster (`stats`), how a
 * request would be routed now (`GET /_meridian/debug/route`), its endpoints by state at each scrape — and
 * how its listeners close. Read-only over
 * a snapshot.
 */
import type { Server } from 'node:http';
import { explain } from '../routing/index.js';
import type { RouteQuery } from './admin.js';
import { clientFromForwardedFor } from './forward-headers.js';
import type { GeoIp } from './geoip.js';
import type { ServiceStats } from './router-options.js';
import type { RouterMetrics } from './router-metrics.js';
import type { Snapshot } from './snapshot.js';
import type { EndpointSet } from './upstream.js';

/** Each routed service's table, requests and retries in flight, and endpoints per cluster. */
export function serviceStats(snap: Snapshot, now: number): Record<string, ServiceStats> {
  const services: Record<string, ServiceStats> = {};
  for (const [name, svc] of snap.services) {
    const clusters: Record<string, { endpoints: number; usable: number; detail: unknown[] }> = {};
    svc.table.clusters.forEach((c, i) => {
      const set = svc.sets[i];
      if (!set || set.size === 0) return;
      clusters[c] = { endpoints: set.size, usable: set.usableCount(), detail: set.all().map((u) => u.describe(now)) };
    });
    services[name] = { table: svc.table.id, active: svc.counters.active, retries: svc.counters.retries, clusters };
  }
  return services;
}

/** How a request would be routed in `snap`; null when no service matches. */
export function explainRoute(snap: Snapshot, geoip: GeoIp, now: number, q: RouteQuery): unknown {
  const svc = q.service !== undefined ? snap.services.get(q.service) : snap.matcher.match(q.host, q.path ?? '/');
  if (!svc) return null;
  let country = q.country ?? '';
  let countrySource = q.country !== undefined ? 'query' : 'none';
  if (country === '' && q.ip !== undefined) {
    const ip = clientFromForwardedFor(q.ip, () => false) ?? q.ip;
    country = geoip.country(ip) ?? '';
    countrySource = country === '' ? 'geoip: not found' : 'geoip';
  }
  const e = explain(svc.table, svc.name, country, q.user === '' ? undefined : q.user);
  const endpoints: Record<string, unknown[]> = {};
  svc.table.clusters.forEach((c, i) => {
    const set = svc.sets[i];
    if (set && set.size > 0) endpoints[c] = set.all().map((u) => u.describe(now));
  });
  return {
    snapshot: { version: snap.version, builtAt: snap.builtAt },
    service: svc.name,
    ...e,
    client: { ...e.client, country: country || null, countrySource, user: q.user ?? null },
    endpoints,
  };
}

/**
 * Stops a listener: no new connections; keep-alive connections are closed as they become idle (their last
 * response ended), and whatever is left is cut after `graceMs`.
 */
export function closeGracefully(s: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const sweep = setInterval(() => s.closeIdleConnections(), 50);
    const cut = setTimeout(() => s.closeAllConnections(), graceMs);
    s.close(() => {
      clearInterval(sweep);
      clearTimeout(cut);
      resolve();
    });
    s.closeIdleConnections();
  });
}

/** Sets the in-flight gauge and the number of endpoints in each state per service and cluster (at each scrape). */
export function countEndpoints(m: RouterMetrics, sets: Iterable<EndpointSet>, inFlight: number): void {
  m.inFlight.set(0, inFlight);
  const counts = new Map<string, number>();
  for (const set of sets) {
    for (const state of ['healthy', 'ejected', 'unreachable', 'unhealthy', 'source-unhealthy'] as const) {
      counts.set(`${set.service}\u0000${set.cluster}\u0000${state}`, 0);
    }
    for (const u of set.all()) {
      if (u.gone) continue;
      const k = `${set.service}\u0000${set.cluster}\u0000${u.state}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  for (const [k, v] of counts) m.endpoints.set(m.endpoints.series(k.split('\u0000')), v);
}
