/**
 * The plan: what a rollout from the recorded state to a new revision would change, in which waves and
 * steps, and with what blast radius. It carries its own hash (approvals bind to it). Pure.
 */
import { PlanError } from '../errors.js';
import { contentHash } from '../render/canonical.js';
import type { Revision } from '../render/render.js';
import type { FleetSource } from '../spec/fleet-source.js';
import type { Fleet } from '../spec/schema.js';
import { blastRadius, type BlastRadius, type TrafficShares } from './blast-radius.js';
import { type ClusterDiff, diffClusters, diffFlags, diffRouting, type PolicyChange, type RecordedCluster } from './diff.js';
import { wavesOf } from './waves.js';

export const PLAN_API_VERSION = 'meridian/plan/v1';

/** A wave as planned. */
export interface PlanWave {
  readonly name: string;
  /** Index in `rollout.waves`, or -1 for the implicit last wave. */
  readonly index: number;
  /** Member clusters, sorted. */
  readonly clusters: readonly string[];
  /** The members that change (create or update), sorted. */
  readonly changed: readonly string[];
  readonly steps: readonly { readonly weight: number; readonly pause: string | null }[];
  readonly approvals: { readonly count: number; readonly roles: readonly string[] } | null;
  readonly maxParallel: number;
  readonly bake: string | null;
}

export interface PlanSummary {
  readonly clusters: number;
  readonly create: number;
  readonly update: number;
  readonly unchanged: number;
  readonly remove: number;
  /** Changed fields over all clusters. */
  readonly changes: number;
  readonly routingChanges: number;
  readonly flagChanges: number;
  readonly waves: number;
}

/** A saved plan (`meridian plan --out plan.json`). */
export interface Plan {
  readonly apiVersion: typeof PLAN_API_VERSION;
  readonly fleet: string;
  /** The revision the plan moves to. */
  readonly revision: string;
  /** The revision routing and flags are compared with (what the fleet runs now), or null. */
  readonly previous: string | null;
  /** Cluster → the revision it runs now (null: nothing recorded). */
  readonly from: Readonly<Record<string, string | null>>;
  readonly clusters: Readonly<Record<string, ClusterDiff>>;
  readonly routingChanges: readonly PolicyChange[];
  readonly flagChanges: readonly PolicyChange[];
  readonly waves: readonly PlanWave[];
  readonly blastRadius: BlastRadius;
  readonly summary: PlanSummary;
  /** When it was made; not part of the hash. */
  readonly createdAt?: string;
  /**
   * The fleet it was made from: where (`meridian rollout --plan` loads it from there when no fleet is
   * named) and a hash of its files (a mismatch is refused). Not part of the hash: the same change planned
   * in two checkouts is the same plan; the revision, which is, binds the rendered content.
   */
  readonly source?: FleetSource;
  /** contentHash of everything else except `createdAt`. */
  readonly hash: string;
}

export interface PlanInput {
  readonly fleet: Pick<Fleet, 'fleet' | 'rollout' | 'clusters' | 'regions'>;
  readonly revision: Revision;
  /** The revision the fleet runs now, for the routing and flag diff (see {@link baselineRevisionId}). */
  readonly previous?: Revision | undefined;
  /** What each cluster runs, from the store. */
  readonly recorded: Readonly<Record<string, RecordedCluster | undefined>>;
  /** Each client region's traffic share per cluster in the healthy state (from the routing engine). */
  readonly shares: TrafficShares;
  /** Stamped into `createdAt`; does not change the hash. */
  readonly now?: Date | undefined;
  /** Stamped into `source`; does not change the hash. */
  readonly source?: FleetSource | undefined;
}

/** Makes the plan. The same input gives the same plan, byte for byte, and the same hash. */
export function makePlan(input: PlanInput): Plan {
  const { fleet, revision, previous, recorded, shares } = input;
  const clusters = diffClusters(recorded, revision);
  const changed = Object.keys(clusters).filter((c) => clusters[c]?.action === 'create' || clusters[c]?.action === 'update');
  const changedSet = new Set(changed);
  const waves: PlanWave[] = wavesOf(fleet, revision).map((w) => ({
    name: w.name,
    index: w.index,
    clusters: [...w.clusters],
    changed: w.clusters.filter((c) => changedSet.has(c)),
    steps: w.steps.map((s) => ({ weight: s.weight, pause: s.pause ?? null })),
    approvals: w.approvals ? { count: w.approvals.count, roles: [...w.approvals.roles] } : null,
    maxParallel: w.maxParallel,
    bake: w.bake,
  }));
  const from: Record<string, string | null> = {};
  for (const name of Object.keys(clusters)) from[name] = recorded[name]?.revisionId ?? null;
  const routingChanges = diffRouting(previous, revision);
  const flagChanges = diffFlags(previous, revision);
  const diffs = Object.values(clusters);
  const count = (a: ClusterDiff['action']): number => diffs.filter((d) => d.action === a).length;
  const body: Omit<Plan, 'hash' | 'createdAt'> = {
    apiVersion: PLAN_API_VERSION,
    fleet: fleet.fleet,
    revision: revision.id,
    previous: previous?.id ?? null,
    from,
    clusters,
    routingChanges,
    flagChanges,
    waves,
    blastRadius: blastRadius(waves, changed, shares),
    summary: {
      clusters: diffs.length,
      create: count('create'),
      update: count('update'),
      unchanged: count('unchanged'),
      remove: count('remove'),
      changes: diffs.reduce((n, d) => n + d.changes.length, 0),
      routingChanges: routingChanges.length,
      flagChanges: flagChanges.length,
      waves: waves.length,
    },
  };
  return {
    ...body,
    ...(input.now ? { createdAt: input.now.toISOString() } : {}),
    ...(input.source ? { source: input.source } : {}),
    hash: planHash(body),
  };
}

/** The hash of a plan: contentHash of everything except `hash`, `createdAt` and `source`. */
export function planHash(
  plan: Omit<Plan, 'hash' | 'createdAt' | 'source'> & { hash?: unknown; createdAt?: unknown; source?: unknown },
): string {
  const { hash: _hash, createdAt: _createdAt, source: _source, ...body } = plan;
  return contentHash(body);
}

/**
 * Checks a plan read from a file: its shape, and that its content still matches its hash
 * (MERIDIAN_E_PLAN_TAMPERED otherwise). With `expect`, also that it plans that fleet and revision
 * (MERIDIAN_E_PLAN_MISMATCH). Returns the plan, typed.
 */
export function verifyPlan(plan: unknown, expect: { readonly fleet?: string; readonly revision?: string } = {}): Plan {
  if (!plan || typeof plan !== 'object' || Array.isArray(plan)) {
    throw new PlanError('MERIDIAN_E_PLAN_INVALID', 'the plan is not a JSON object', 'pass the file that `meridian plan --out FILE` wrote');
  }
  const p = plan as Record<string, unknown>;
  if (p['apiVersion'] !== PLAN_API_VERSION) {
    throw new PlanError(
      'MERIDIAN_E_PLAN_INVALID',
      `the plan's apiVersion is ${JSON.stringify(p['apiVersion'])}, not ${PLAN_API_VERSION}`,
      'make the plan again with this version of meridian (`meridian plan --out FILE`)',
    );
  }
  const shape: [string, (v: unknown) => boolean][] = [
    ['fleet', (v) => typeof v === 'string'],
    ['revision', (v) => typeof v === 'string'],
    ['hash', (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)],
    ['from', isObject],
    ['clusters', isObject],
    ['routingChanges', Array.isArray],
    ['flagChanges', Array.isArray],
    ['waves', Array.isArray],
    ['blastRadius', isObject],
    ['summary', isObject],
    ['source', (v) => v === undefined || (isObject(v) && typeof v['path'] === 'string' && /^[0-9a-f]{64}$/.test(String(v['contentHash'])))],
  ];
  const bad = shape.filter(([k, ok]) => !ok(p[k])).map(([k]) => k);
  if (bad.length > 0) {
    throw new PlanError(
      'MERIDIAN_E_PLAN_INVALID',
      `the plan lacks or has a malformed ${bad.join(', ')}`,
      'make the plan again with `meridian plan --out FILE`',
    );
  }
  const typed = plan as Plan;
  const actual = planHash(typed);
  if (actual !== typed.hash) {
    throw new PlanError(
      'MERIDIAN_E_PLAN_TAMPERED',
      `the plan was changed after it was made: it says its hash is ${typed.hash.slice(0, 12)}…, but its content hashes to ${actual.slice(0, 12)}…`,
      'make the plan again with `meridian plan --out FILE`; approvals given for the old hash do not carry over',
    );
  }
  if (expect.fleet !== undefined && typed.fleet !== expect.fleet) {
    throw new PlanError(
      'MERIDIAN_E_PLAN_MISMATCH',
      `the plan is for fleet ${typed.fleet}, not ${expect.fleet}`,
      'use the plan made for this fleet',
    );
  }
  if (expect.revision !== undefined && typed.revision !== expect.revision) {
    throw new PlanError(
      'MERIDIAN_E_PLAN_MISMATCH',
      `the plan moves to revision ${typed.revision}, but the fleet now renders revision ${expect.revision}`,
      'the fleet changed since the plan was made: make the plan again with `meridian plan --out FILE`',
    );
  }
  return typed;
}

/**
 * The revision the fleet runs now: the one most recorded clusters run (ties: the most recently updated,
 * then the larger id), or null when nothing is recorded. Use it as `previous` for {@link makePlan}.
 */
export function baselineRevisionId(
  recorded: Readonly<Record<string, (RecordedCluster & { readonly updatedAt?: string }) | undefined>>,
): string | null {
  const tally = new Map<string, { n: number; last: string }>();
  for (const r of Object.values(recorded)) {
    if (!r) continue;
    const t = tally.get(r.revisionId) ?? { n: 0, last: '' };
    tally.set(r.revisionId, { n: t.n + 1, last: (r.updatedAt ?? '') > t.last ? (r.updatedAt ?? '') : t.last });
  }
  let best: [string, { n: number; last: string }] | undefined;
  for (const entry of tally) {
    if (!best) best = entry;
    else {
      const [id, t] = entry;
      const [bid, b] = best;
      if (t.n > b.n || (t.n === b.n && (t.last > b.last || (t.last === b.last && id > bid)))) best = entry;
    }
  }
  return best?.[0] ?? null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
