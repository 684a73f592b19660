/**
 * The traffic shares of the routing view (`GET /api/v1/routing`, the `routing` event): per service and
 * client region, which cluster and version gets what share, from the revision and what is in force.
 */
import type { Revision } from '../render/render.js';
import { trafficTable } from '../routing/traffic-table.js';
import type { RoutingShare, RoutingView } from '../routing/view.js';

/** The shares of every service for every client region; none when the revision cannot be routed. */
export function sharesOf(
  rev: Revision,
  drained: readonly string[],
  canary: RoutingView['canary'],
  ramp: RoutingView['ramp'],
): RoutingView['services'] {
  let tt;
  try {
    tt = trafficTable(rev, { drained, canary, ramp });
  } catch {
    return {};
  }
  const out: Record<string, Record<string, RoutingShare[]>> = {};
  for (const [svc, byClient] of Object.entries(tt.services)) {
    const rows: Record<string, RoutingShare[]> = {};
    for (const [client, traffic] of Object.entries(byClient)) {
      const list: RoutingShare[] = [];
      for (const [cluster, v] of Object.entries(traffic.clusters)) {
        const round = (x: number): number => Math.round(x * 1e6) / 1e6;
        const stable = rev.clusters[cluster]?.services[svc]?.version ?? 'unknown';
        if (v.stable > 0) list.push({ cluster, version: stable, share: round(v.stable) });
        if (v.canary > 0) list.push({ cluster, version: canary[svc]?.[cluster]?.version ?? 'canary', share: round(v.canary) });
      }
      rows[client] = list;
    }
    out[svc] = rows;
  }
  return out;
}
