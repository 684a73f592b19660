/**
 * Where each client region's traffic goes, per cluster and version, computed exactly from a routing
 * table (the same arrays `decide` reads, not by sampling). Backs `meridian route simulate`, the
 * dashboard's traffic view and the planner's blast radius.
 */
import type { Revision } from '../render/render.js';
import { BUCKETS } from './hash.js';
import type { RoutingState } from './state.js';
import { routingProjection, type RoutingProjection, UNKNOWN_CLIENT } from './projection.js';
import { buildRoutingTable, type RoutingTable, type RoutingTableOptions } from './table.js';

export { UNKNOWN_CLIENT };

/** Shares of one client region's traffic that one cluster serves, per version. */
export interface VersionShare {
  readonly stable: number;
  readonly canary: number;
}

/** One client region's traffic for one service. Cluster shares plus `rejected` sum to 1. */
export interface ClientTraffic {
  /** Clusters with a non-zero share only. */
  readonly clusters: Readonly<Record<string, VersionShare>>;
  /** Share answered with an error: `residency-reject` or `no-healthy`. */
  readonly rejected: number;
  /** The rejected share by reason (present only when something is rejected). */
  readonly rejectedBy?: Readonly<Partial<Record<'residency-reject' | 'no-healthy', number>>>;
}

export interface TrafficTable {
  /** The routing table's id (`v<version>-<hash>`). */
  readonly table: string;
  readonly revision: string;
  /** service → client region (or {@link UNKNOWN_CLIENT}) → traffic. */
  readonly services: Readonly<Record<string, Readonly<Record<string, ClientTraffic>>>>;
  /** service → the clusters that run it (columns for display). */
  readonly serving: Readonly<Record<string, readonly string[]>>;
}

/** Computes the traffic table of an existing routing table (through its {@link routingProjection}). */
export function trafficFromTable(t: RoutingTable): TrafficTable {
  return trafficFromProjection(routingProjection(t));
}

/** Computes the traffic table a routing projection describes: per client region, each cluster's share by version. */
export function trafficFromProjection(p: RoutingProjection): TrafficTable {
  const services: Record<string, Record<string, ClientTraffic>> = {};
  const serving: Record<string, string[]> = {};
  for (const [service, sp] of Object.entries(p.services)) {
    serving[service] = [...sp.serving];
    const byClient: Record<string, ClientTraffic> = {};
    for (const [client, row] of Object.entries(sp.clients)) {
      const stable = new Map<string, number>();
      const canary = new Map<string, number>();
      const rejectedBy = { 'residency-reject': 0, 'no-healthy': 0 };
      for (const variant of row.variants) {
        const frac = variant.users;
        if (variant.outcome !== 'ok') {
          rejectedBy[variant.outcome] += frac;
          continue;
        }
        for (const level of variant.levels) {
          if (level.share <= 0) continue;
          for (const e of level.clusters) {
            if (e.share <= 0) continue;
            const share = frac * level.share * e.share;
            const w = sp.versions[e.cluster]?.canary?.weight ?? 0;
            const bp = Math.round(w * (BUCKETS / 100));
            canary.set(e.cluster, (canary.get(e.cluster) ?? 0) + (share * bp) / BUCKETS);
            stable.set(e.cluster, (stable.get(e.cluster) ?? 0) + (share * (BUCKETS - bp)) / BUCKETS);
          }
        }
      }
      const clusters: Record<string, VersionShare> = {};
      for (const c of Object.keys(p.clusters)) {
        const st = stable.get(c) ?? 0;
        const ca = canary.get(c) ?? 0;
        if (st > 0 || ca > 0) clusters[c] = { stable: st, canary: ca };
      }
      const rejected = rejectedBy['residency-reject'] + rejectedBy['no-healthy'];
      const reasons: Partial<Record<'residency-reject' | 'no-healthy', number>> = {};
      if (rejectedBy['residency-reject'] > 0) reasons['residency-reject'] = rejectedBy['residency-reject'];
      if (rejectedBy['no-healthy'] > 0) reasons['no-healthy'] = rejectedBy['no-healthy'];
      byClient[client] = rejected > 0 ? { clusters, rejected, rejectedBy: reasons } : { clusters, rejected };
    }
    services[service] = byClient;
  }
  return { table: p.table, revision: p.revision, services, serving };
}

/** Builds a routing table for the revision and state and returns its traffic table. */
export function trafficTable(revision: Revision, state: RoutingState = {}, opts: RoutingTableOptions = {}): TrafficTable {
  return trafficFromTable(buildRoutingTable(revision, state, opts));
}

/**
 * Client region → cluster → share of that region's traffic, in the healthy state (no drains, no
 * canaries). For one service, or — without `service` — the mean over every service in the revision
 * (each service weighted equally). Includes the {@link UNKNOWN_CLIENT} row. Used for blast radius.
 */
export function clusterShares(revision: Revision, service?: string | readonly string[]): Record<string, Record<string, number>> {
  const tt = trafficTable(revision); // one routing table, whatever the number of services asked for
  const names = service === undefined ? Object.keys(tt.services) : typeof service === 'string' ? [service] : service;
  const out: Record<string, Record<string, number>> = {};
  for (const name of names) {
    for (const [client, traffic] of Object.entries(tt.services[name] ?? {})) {
      const row = (out[client] ??= {});
      for (const [cluster, v] of Object.entries(traffic.clusters))
        row[cluster] = (row[cluster] ?? 0) + (v.stable + v.canary) / names.length;
    }
  }
  return out;
}

/**
 * {@link clusterShares} over the services that take client traffic (those with a routing policy that
 * run somewhere), or over every service when none is routed: internal services would otherwise skew
 * where clients' requests land. What the planner's blast radius uses.
 */
export function clientShares(revision: Revision): Record<string, Record<string, number>> {
  const routed = Object.keys(revision.routing).filter((s) => Object.values(revision.clusters).some((c) => c.services[s]));
  return clusterShares(revision, routed.length > 0 ? routed : undefined);
}

export interface FormatOptions {
  /** `text` (default): one table per service; `json`: the traffic table, shares rounded to 1e-9. */
  readonly format?: 'text' | 'json';
  /** Only this service. */
  readonly service?: string;
}

const round9 = (x: number): number => Math.round(x * 1e9) / 1e9;

function pct(x: number): string {
  if (x <= 0) return '-';
  if (x < 0.0005) return '<0.1%';
  return `${(x * 100).toFixed(1)}%`;
}

/**
 * Renders a traffic table for `meridian route simulate`: per service, rows are client regions,
 * columns the clusters that run the service (percent of that client region's traffic), then the
 * canary share and the rejected share.
 */
export function formatTrafficTable(tt: TrafficTable, opts: FormatOptions = {}): string {
  const names = opts.service === undefined ? Object.keys(tt.services) : [opts.service].filter((s) => s in tt.services);
  if (opts.format === 'json') {
    const services: Record<string, Record<string, unknown>> = {};
    for (const name of names) {
      const byClient: Record<string, unknown> = {};
      for (const [client, traffic] of Object.entries(tt.services[name] ?? {})) {
        const clusters: Record<string, VersionShare> = {};
        for (const [c, v] of Object.entries(traffic.clusters)) clusters[c] = { stable: round9(v.stable), canary: round9(v.canary) };
        const rejectedBy: Record<string, number> = {};
        for (const [k, v] of Object.entries(traffic.rejectedBy ?? {})) rejectedBy[k] = round9(v);
        byClient[client] =
          traffic.rejected > 0
            ? { clusters, rejected: round9(traffic.rejected), rejectedBy }
            : { clusters, rejected: round9(traffic.rejected) };
      }
      services[name] = byClient;
    }
    return `${JSON.stringify({ table: tt.table, revision: tt.revision, services }, null, 2)}\n`;
  }
  const blocks: string[] = [];
  for (const name of names) {
    const byClient = tt.services[name] ?? {};
    const columns = [...(tt.serving[name] ?? [])];
    const header = ['client', ...columns, 'canary', 'rejected'];
    const rows = Object.entries(byClient).map(([client, traffic]) => {
      let canary = 0;
      const cells = columns.map((c) => {
        const v = traffic.clusters[c];
        canary += v?.canary ?? 0;
        return pct((v?.stable ?? 0) + (v?.canary ?? 0));
      });
      return [client, ...cells, pct(canary), pct(traffic.rejected)];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (cells: readonly string[]): string =>
      cells
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  ')
        .trimEnd();
    blocks.push([`${name}  (routing table ${tt.table}, revision ${tt.revision})`, line(header), ...rows.map(line)].join('\n'));
  }
  return `${blocks.join('\n\n')}\n`;
}
