/**
 * Builds an exporter's input from a revision: the routing projection of the fleet as written (every
 * cluster healthy), the levels a widened `prefer` row falls back to, the clusters ramping back after a
 * restore, and the settings.
 */
import type { Revision } from '../render/render.js';
import { routingProjection, type ProjectedLevel } from '../routing/projection.js';
import { simulatedState, type RoutingState } from '../routing/state.js';
import { buildRoutingTable } from '../routing/table.js';
import { DEFAULT_SETTINGS, type ClusterAddresses, type ExportInput, type ExportSettings } from './contract.js';

/** The levels each `prefer` row widens to: computed from a table where every allowed cluster is down. */
function widenedLevels(revision: Revision, projection: ExportInput['projection']): ExportInput['widened'] {
  const out: Record<string, Record<string, readonly ProjectedLevel[]>> = {};
  const byAllow = new Map<string, ExportInput['projection']>();
  for (const [service, sp] of Object.entries(projection.services)) {
    for (const [client, row] of Object.entries(sp.clients)) {
      const rule = row.residency;
      if (rule === null || rule.mode !== 'prefer') continue;
      const allow = [...rule.allow].sort();
      const key = allow.join(',');
      let p = byAllow.get(key);
      if (!p) {
        const down = Object.entries(projection.clusters)
          .filter(([, c]) => allow.includes(c.jurisdiction))
          .map(([name]) => name);
        p = routingProjection(buildRoutingTable(revision, simulatedState({ down })));
        byAllow.set(key, p);
      }
      const widened = p.services[service]?.clients[client]?.variants[0];
      if (!widened?.widened) continue;
      const levels = widened.levels
        .map((l) => ({ ...l, clusters: l.clusters.filter((c) => !allow.includes(projection.clusters[c.cluster]?.jurisdiction ?? '')) }))
        .filter((l) => l.clusters.length > 0)
        .map((l, i) => ({ ...l, priority: i }));
      if (levels.length > 0) (out[service] ??= {})[client] = levels;
    }
  }
  return out;
}

/** The clusters that take less than their full share while a place ramps back (a cluster, or its region, under 100 %). */
function rampingClusters(revision: Revision, ramp: RoutingState['ramp']): string[] {
  const under = (place: string): boolean => (ramp?.[place] ?? 100) < 100;
  return Object.entries(revision.clusters)
    .filter(([name, c]) => under(name) || under(c.region))
    .map(([name]) => name)
    .sort();
}

/**
 * The input every exporter reads, for a revision as written; `state` may add canary weights and restore
 * ramps (a data plane exported during a rollout or a restore). Health in the state is ignored by the data
 * planes, which check for themselves.
 */
export function exportInput(
  revision: Revision,
  addresses: ClusterAddresses,
  settings: Partial<ExportSettings> = {},
  state: RoutingState = {},
): ExportInput {
  const projection = routingProjection(buildRoutingTable(revision, state));
  return {
    projection,
    widened: widenedLevels(revision, projection),
    revision,
    addresses,
    settings: { ...DEFAULT_SETTINGS, ...settings },
    ramping: rampingClusters(revision, state.ramp),
  };
}
