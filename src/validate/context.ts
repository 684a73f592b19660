/**
 * The shared, read-only context every preflight check receives: the fleet, its rendered revision, the
 * recorded state, wave membership, and helpers that turn a rendered value back into the YAML node
 * that set it.
 */
import { type SourceLocation, formatPath } from '../findings/finding.js';
import { type WaveMembers, wavesOf } from '../plan/waves.js';
import type { RenderedCluster, RenderResult, Revision } from '../render/render.js';
import type { ClusterFacts } from '../render/selector.js';
import type { LoadedFleet } from '../spec/load.js';
import { BUILTIN_RULES, type BuiltinRule, type Fleet } from '../spec/schema.js';

/** Where a rendered value came from: the path (as segments and dotted) and its file:line:col. */
export interface Origin {
  readonly segments: readonly PropertyKey[];
  readonly path: string;
  readonly location?: SourceLocation;
}

export interface CheckContext {
  readonly loaded: LoadedFleet;
  readonly fleet: Fleet;
  readonly rendered: RenderResult;
  readonly revision: Revision;
  /** The time the run is for (waiver expiry). */
  readonly now: Date;
  /** What each cluster runs now; undefined on a first rollout. */
  readonly recorded: Readonly<Record<string, RenderedCluster>> | undefined;
  /** Wave membership of the new revision, in rollout order. */
  readonly waves: readonly WaveMembers[];
  /** The built-in policy rules in force. */
  readonly rules: ReadonlySet<BuiltinRule>;
  /** `{ location }` of a path in the fleet files, or `{}` when it cannot be found. */
  at(path: readonly PropertyKey[], opts?: { key?: boolean }): { location?: SourceLocation };
  /**
   * The node that set a rendered value of a service on a cluster (`leaf` like `replicas`,
   * `env.LOG_LEVEL`): the override that set it, else the service's own value, else the service's key.
   */
  origin(cluster: string, service: string, leaf: string): Origin;
  /** Whether the node at `path` is written in the fleet files (a schema default is not). */
  written(path: readonly PropertyKey[]): boolean;
  /** The facts selectors match against, for a cluster of the fleet. */
  facts(cluster: string): ClusterFacts | undefined;
}

/** The built-in rules in force: those `policies.rules` names, or every one when it is absent. */
export function enabledRules(fleet: Fleet): ReadonlySet<BuiltinRule> {
  return new Set(fleet.policies?.rules ?? BUILTIN_RULES);
}

/** Parses a path written by {@link formatPath} back into segments. */
export function parsePath(path: string): PropertyKey[] {
  const out: PropertyKey[] = [];
  const re = /\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([A-Za-z_][\w-]*)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path)) !== null) {
    if (m[1] !== undefined) out.push(Number(m[1]));
    else if (m[2] !== undefined) out.push(JSON.parse(m[2]) as string);
    else if (m[3] !== undefined) out.push(m[3]);
    if (re.lastIndex >= path.length) break;
  }
  return out;
}

export function createContext(input: {
  loaded: LoadedFleet;
  rendered: RenderResult;
  now: Date;
  recorded?: Readonly<Record<string, RenderedCluster>> | undefined;
}): CheckContext {
  const { loaded, rendered } = input;
  const fleet = loaded.fleet;
  const at = (path: readonly PropertyKey[], opts: { key?: boolean } = {}): { location?: SourceLocation } => {
    const l = loaded.sources.locate(path, opts);
    return l ? { location: l } : {};
  };
  const origins = new Map<string, Origin>();
  return {
    loaded,
    fleet,
    rendered,
    revision: rendered.revision,
    now: input.now,
    recorded: input.recorded,
    waves: wavesOf(fleet, rendered.revision),
    rules: enabledRules(fleet),
    at,
    origin(cluster, service, leaf) {
      const cacheKey = `${cluster}\u0000${service}\u0000${leaf}`;
      const cached = origins.get(cacheKey);
      if (cached) return cached;
      const p = rendered.explain(cluster, `${service}.${leaf}`);
      let o: Origin;
      if (p && p.source !== 'default') {
        const segments = parsePath(p.path);
        o = { segments, path: p.path, ...(p.location ? { location: p.location } : at(segments)) };
      } else {
        const segments = ['services', service];
        o = { segments, path: formatPath(segments), ...at(segments, { key: true }) };
      }
      origins.set(cacheKey, o);
      return o;
    },
    written(path) {
      if (path.length === 0) return true;
      const here = loaded.sources.locate(path);
      const parent = loaded.sources.locate(path.slice(0, -1));
      return !!here && !(parent && here.file === parent.file && here.line === parent.line && here.col === parent.col);
    },
    facts(cluster) {
      const c = fleet.clusters[cluster];
      const region = c ? fleet.regions[c.region] : undefined;
      return c && region ? { name: cluster, cluster: c, regionName: c.region, region } : undefined;
    },
  };
}

/** The value at a path of the fleet, for messages that quote what the user wrote. */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[String(seg)];
  }
  return v;
}

/** Names a few items and the count: `a, b, c and 297 more`. */
export function fewOf(items: readonly string[], show = 3): string {
  if (items.length <= show + 1) return items.join(', ');
  return `${items.slice(0, show).join(', ')} and ${items.length - show} more`;
}
