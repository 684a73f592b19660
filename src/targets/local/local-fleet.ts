/**
 * The local fleet: every cluster of a revision applied through one driver (the local one for `meridian
 * up`), waited on until every service reports that revision healthy.
 */
import type { Revision } from '../../render/render.js';
import { isHealthyAt, waitForStatus, type Target } from '../target.js';

/** Applies every cluster's desired state (stable track) and resolves once all are healthy at that revision. */
export async function startClusters(
  target: Target,
  clusters: Readonly<Record<string, { readonly revisionId: string; readonly state: Revision['clusters'][string] }>>,
  opts: { timeoutMs?: number; onClusterReady?: (cluster: string, ms: number) => void } = {},
): Promise<void> {
  const t0 = Date.now();
  await Promise.all(
    Object.entries(clusters).map(async ([cluster, { revisionId, state }]) => {
      await target.apply({ cluster, revisionId, state, track: 'stable' });
      await waitForStatus(target, cluster, (s) => Object.keys(state.services).every((svc) => isHealthyAt(s, svc, 'stable', revisionId)), {
        timeoutMs: opts.timeoutMs ?? 60_000,
        intervalMs: 100,
      });
      opts.onClusterReady?.(cluster, Date.now() - t0);
    }),
  );
}
