/**
 * `meridian rollback`: a deterministic return of every cluster to a known-good revision, run by the same
 * engine as a rollout (so it is persisted, locked, verified and audited the same way), as one wave
 * without canary. Known-good comes from the audit log: the revisions each cluster was recorded running
 * healthy. Rolling back a rollback returns to where it started, as long as that ran healthy. Pure.
 */
import { contentHash } from '../render/canonical.js';
import type { Revision } from '../render/render.js';
import type { AuditEntry, ClusterRecord } from '../store/store.js';
import { ROLLOUT_SPEC_VERSION, type RolloutSpec } from './rollout-spec.js';

/** Statuses that say a cluster ran a revision healthy (`meridian up` records `running` once healthy). */
export const KNOWN_GOOD_STATUSES: readonly string[] = ['healthy', 'running'];

/** Per revision, when it was last recorded healthy, and on which clusters. */
export interface KnownGood {
  readonly revision: string;
  readonly lastAt: string;
  readonly clusters: ReadonlySet<string>;
}

/** Reads the audit log's `cluster.state` entries into known-good revisions, most recently healthy first. */
export function knownGood(audit: readonly AuditEntry[]): KnownGood[] {
  const by = new Map<string, { lastAt: string; seq: number; clusters: Set<string> }>();
  for (const e of audit) {
    if (e.action !== 'cluster.state') continue;
    const d = e.data as { revision?: unknown; status?: unknown } | null;
    if (!d || typeof d.revision !== 'string' || !KNOWN_GOOD_STATUSES.includes(String(d.status))) continue;
    const k = by.get(d.revision) ?? { lastAt: e.at, seq: e.seq, clusters: new Set<string>() };
    k.clusters.add(e.subject);
    if (e.seq >= k.seq) {
      k.seq = e.seq;
      k.lastAt = e.at;
    }
    by.set(d.revision, k);
  }
  return [...by.entries()]
    .sort((a, b) => b[1].seq - a[1].seq)
    .map(([revision, k]) => ({ revision, lastAt: k.lastAt, clusters: k.clusters }));
}

/**
 * The default target: the most recently healthy revision that every cluster ran healthy, other than the
 * one the fleet runs now. When the clusters run different revisions (a wave was rolled back, a rollout
 * stopped half-way), the revision most of them run counts too: the rollback makes the fleet whole on it.
 * Null when there is none.
 */
export function defaultTarget(history: readonly KnownGood[], current: Readonly<Record<string, string>>): string | null {
  const clusters = Object.keys(current);
  const revisions = new Set(Object.values(current));
  const uniform = revisions.size === 1 ? [...revisions][0] : undefined;
  for (const k of history) {
    if (k.revision === uniform) continue;
    if (clusters.every((c) => k.clusters.has(c))) return k.revision;
  }
  return null;
}

/** The spec of a rollback to `target`: every cluster of it whose recorded revision differs, in one wave, no canary. */
export function rollbackSpec(opts: {
  readonly target: Revision;
  readonly current: Readonly<Record<string, ClusterRecord>>;
  readonly baseline: string | null;
  readonly authors: readonly string[];
  readonly healthyChecks?: number;
}): RolloutSpec {
  const from: Record<string, string | null> = {};
  const to: Record<string, string> = {};
  const services = new Set<string>();
  for (const [cluster, state] of Object.entries(opts.target.clusters)) {
    for (const s of Object.keys(state.services)) services.add(s);
    const now = opts.current[cluster];
    for (const s of Object.keys(now?.state.services ?? {})) services.add(s);
    if (now?.revisionId === opts.target.id) continue;
    from[cluster] = now?.revisionId ?? null;
    to[cluster] = opts.target.id;
  }
  const clusters = Object.keys(to).sort();
  return {
    apiVersion: ROLLOUT_SPEC_VERSION,
    kind: 'rollback',
    fleet: opts.target.fleet,
    planHash: contentHash({ kind: 'rollback', from, to }),
    revision: opts.target.id,
    previous: opts.baseline,
    from,
    to,
    config: {
      waves: [{ name: 'rollback', batches: clusters.length ? [clusters] : [], steps: [], approvals: null, bakeMs: 0, canary: false }],
      onFailure: 'fail',
      analysisIntervalMs: 0,
    },
    services: [...services].sort(),
    authors: [...opts.authors],
    healthyChecks: opts.healthyChecks ?? 2,
  };
}
