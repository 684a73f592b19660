/**
 * Desired against recorded state: what changes on each cluster (per service and field), and what changes
 * in routing and flags between two revisions. Pure and deterministic.
 */
import { canonicalJson } from '../render/canonical.js';
import type { RenderedCluster, RenderedService, Revision } from '../render/render.js';
import type { ClusterRecord } from '../store/store.js';

/** A value in a change: whatever the rendered state holds there, or null when absent. */
export type ChangeValue = string | number | boolean | null | readonly unknown[] | { readonly [key: string]: unknown };

/** One changed field. `service` is null for a field of the cluster itself (`cluster.weight`). */
export interface Change {
  readonly service: string | null;
  /** `image`, `version`, `replicas`, `port`, `env.X`, `config.X`, `secrets.X`, `resources.X`, `requires.X`, `ingress`, `health`, `local`, `service` (added or removed), `cluster.X`. */
  readonly field: string;
  readonly from: ChangeValue;
  readonly to: ChangeValue;
}

export type ClusterAction = 'create' | 'update' | 'unchanged' | 'remove';

/** What happens to one cluster. */
export interface ClusterDiff {
  readonly action: ClusterAction;
  /** The revision the cluster runs now (null when nothing is recorded). */
  readonly from: string | null;
  /** The revision it will run (null when it is removed). */
  readonly to: string | null;
  readonly changes: readonly Change[];
}

/** A change of a service's routing policy (`service` is the routed service) or of a flag (`service` is the flag). */
export interface PolicyChange {
  readonly service: string;
  /** `routing` / `flag` when the whole entry is added or removed, else its key (`steering`, `residency.EU`, `regions.eu-west`). */
  readonly field: string;
  readonly from: ChangeValue;
  readonly to: ChangeValue;
}

/** What the plan needs of a recorded cluster. */
export type RecordedCluster = Pick<ClusterRecord, 'revisionId' | 'state'>;

/** Fields shown first, in this order; any other field follows in name order. */
const SERVICE_ORDER = [
  'image',
  'version',
  'replicas',
  'port',
  'resources',
  'env',
  'config',
  'secrets',
  'requires',
  'ingress',
  'health',
  'local',
];
/** Map-valued fields: diffed key by key (`env.LOG_LEVEL`). */
const SERVICE_MAPS = new Set(['resources', 'env', 'config', 'secrets', 'requires']);
/** Derived from another field (the digest is part of the image). */
const SERVICE_SKIP = new Set(['digest']);
const CLUSTER_MAPS = new Set(['labels']);
const CLUSTER_SKIP = new Set(['services', 'hash']);
const ROUTING_MAPS = new Set(['residency', 'failover', 'bias']);
const FLAG_MAPS = new Set(['regions']);

/**
 * The diff of every cluster: those in the revision (create or update or unchanged) and those recorded
 * but no longer in it (remove). Keys sorted by cluster name.
 */
export function diffClusters(
  recorded: Readonly<Record<string, RecordedCluster | undefined>>,
  revision: Revision,
): Record<string, ClusterDiff> {
  const names = new Set([...Object.keys(revision.clusters), ...Object.keys(recorded).filter((k) => recorded[k] !== undefined)]);
  const out: Record<string, ClusterDiff> = {};
  for (const name of [...names].sort()) {
    const before = recorded[name];
    const after = revision.clusters[name];
    if (!before && after) {
      out[name] = { action: 'create', from: null, to: revision.id, changes: serviceSetChanges({}, after.services) };
    } else if (before && !after) {
      out[name] = { action: 'remove', from: before.revisionId, to: null, changes: serviceSetChanges(before.state.services, {}) };
    } else if (before && after) {
      const changes = [...clusterFieldChanges(before.state, after), ...serviceSetChanges(before.state.services, after.services)];
      const same = changes.length === 0 && before.state.hash === after.hash;
      out[name] = { action: same ? 'unchanged' : 'update', from: before.revisionId, to: revision.id, changes };
    }
  }
  return out;
}

/** Routing changes between the previous revision (undefined: none, so every route is new) and the next. */
export function diffRouting(previous: Revision | undefined, next: Revision): PolicyChange[] {
  return diffEntries(previous?.routing ?? {}, next.routing, 'routing', ROUTING_MAPS);
}

/** Flag changes between the previous revision and the next. */
export function diffFlags(previous: Revision | undefined, next: Revision): PolicyChange[] {
  return diffEntries(previous?.flags ?? {}, next.flags, 'flag', FLAG_MAPS);
}

function serviceSetChanges(before: Readonly<Record<string, RenderedService>>, after: Readonly<Record<string, RenderedService>>): Change[] {
  const out: Change[] = [];
  for (const service of union(before, after)) {
    const a = before[service];
    const b = after[service];
    if (!a && b) out.push({ service, field: 'service', from: null, to: b.version });
    else if (a && !b) out.push({ service, field: 'service', from: a.version, to: null });
    else if (a && b)
      out.push(...fieldChanges(service, a as unknown as Fields, b as unknown as Fields, SERVICE_ORDER, SERVICE_MAPS, SERVICE_SKIP, ''));
  }
  return out;
}

function clusterFieldChanges(before: RenderedCluster, after: RenderedCluster): Change[] {
  return fieldChanges(null, before as unknown as Fields, after as unknown as Fields, [], CLUSTER_MAPS, CLUSTER_SKIP, 'cluster.');
}

type Fields = Readonly<Record<string, unknown>>;

function fieldChanges(
  service: string | null,
  a: Fields,
  b: Fields,
  order: readonly string[],
  maps: ReadonlySet<string>,
  skip: ReadonlySet<string>,
  prefix: string,
): Change[] {
  const rest = union(a, b).filter((k) => !order.includes(k) && !skip.has(k));
  const out: Change[] = [];
  for (const key of [...order, ...rest]) {
    const x = a[key];
    const y = b[key];
    if (x === undefined && y === undefined) continue;
    if (maps.has(key) && isMap(x ?? {}) && isMap(y ?? {})) {
      const xm = (x ?? {}) as Fields;
      const ym = (y ?? {}) as Fields;
      for (const sub of union(xm, ym)) {
        const from = leaf(xm[sub]);
        const to = leaf(ym[sub]);
        if (!same(from, to)) out.push({ service, field: `${prefix}${key}.${sub}`, from, to });
      }
    } else if (!same(x, y)) {
      out.push({ service, field: `${prefix}${key}`, from: value(x), to: value(y) });
    }
  }
  return out;
}

function diffEntries(
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
  whole: string,
  maps: ReadonlySet<string>,
): PolicyChange[] {
  const out: PolicyChange[] = [];
  for (const service of union(before, after)) {
    const a = before[service];
    const b = after[service];
    if (a === undefined || b === undefined) {
      out.push({ service, field: whole, from: value(a), to: value(b) });
      continue;
    }
    for (const c of fieldChanges(service, a as Fields, b as Fields, [], maps, new Set(), ''))
      out.push({ service, field: c.field, from: c.from, to: c.to });
  }
  return out;
}

/** A secret reference is shown as its `ref` string; anything else as it is. */
function leaf(v: unknown): ChangeValue {
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { ref?: unknown }).ref === 'string') {
    return (v as { ref: string }).ref;
  }
  return value(v);
}

function value(v: unknown): ChangeValue {
  return v === undefined ? null : (v as ChangeValue);
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

function isMap(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function union(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}
