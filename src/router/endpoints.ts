/**
 * Where the router sends traffic: the endpoints (replicas) of each service track in each cluster, from
 * an {@link EndpointSource} — a deployment target (`LocalTarget` fits as is), a control-plane stream, or
 * a static file (`meridian router --endpoints FILE.json`).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Revision } from '../render/render.js';
import { TRACKS, type RoutingEndpoint } from '../routing/view.js';
import { RouterError } from './errors.js';

/**
 * One replica the router may send requests to: a {@link RoutingEndpoint} (the routing view's), where a
 * source without health checks or replica identities (a static file) may leave `healthy` (then healthy)
 * and `replica` out.
 */
export type RouterEndpoint = Omit<RoutingEndpoint, 'healthy' | 'replica'> & Partial<Pick<RoutingEndpoint, 'healthy' | 'replica'>>;

/** A change the source reports; `replica-exited`/`replica-stopped`/`replica-unhealthy` take the replica out at once. */
export interface EndpointEvent {
  readonly type: string;
  readonly cluster: string;
  readonly service?: string;
  readonly track?: string;
  readonly replica?: string;
}

/** Endpoints of one cluster. */
export type EndpointLister = (cluster: string) => readonly RouterEndpoint[];

/** A function, or an object with `endpoints(cluster)` and optionally `subscribe(listener)` (as `Target`). */
export type EndpointSource =
  | EndpointLister
  | {
      endpoints(cluster: string): readonly RouterEndpoint[];
      subscribe?(listener: (event: EndpointEvent) => void): () => void;
    };

/**
 * Events after which an endpoint must not receive new requests, before the source lists endpoints again.
 * `replica-draining` comes before a planned stop: requests in flight finish, no new one is sent.
 */
export const ENDPOINT_GONE_EVENTS: ReadonlySet<string> = new Set([
  'replica-draining',
  'replica-exited',
  'replica-stopped',
  'replica-unhealthy',
  'replica-restarting',
]);

const Endpoint = z.strictObject({
  cluster: z.string().min(1),
  service: z.string().min(1),
  track: z.enum(TRACKS).default('stable'),
  version: z.string().min(1).optional(),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(1).max(65535),
  healthy: z.boolean().optional(),
  replica: z.string().optional(),
});

const Canary = z.strictObject({ weight: z.number().min(0).max(100), version: z.string().min(1) });

const EndpointList = z.array(Endpoint);
const EndpointsObject = z.strictObject({
  endpoints: EndpointList,
  canary: z.record(z.string(), z.record(z.string(), Canary)).optional(),
  drained: z.array(z.string()).optional(),
});

/** The `--endpoints` file: the endpoints, and optionally canary weights and drained clusters or regions (or just the list). */
export const EndpointsFile = z.union([EndpointList, EndpointsObject]);

/** A parsed endpoints file; `version` may be absent (the revision's version for the cluster is used). */
export interface EndpointsDocument {
  readonly endpoints: readonly (Omit<RouterEndpoint, 'version'> & { readonly version?: string })[];
  readonly canary: Readonly<Record<string, Readonly<Record<string, { readonly weight: number; readonly version: string }>>>>;
  readonly drained: readonly string[];
}

/** Parses the endpoints file's content. @throws RouterError with every problem and its path */
export function parseEndpointsFile(text: string, file = 'endpoints file'): EndpointsDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new RouterError('MERIDIAN_E_ROUTER_ENDPOINTS', `${file} is not JSON: ${(cause as Error).message}`, {
      cause,
      hint: 'see docs/router.md for the format: {"endpoints": [{"cluster", "service", "port", …}]}',
    });
  }
  const r = Array.isArray(json) ? EndpointList.safeParse(json) : EndpointsObject.safeParse(json);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top)'}: ${i.message}`).join('; ');
    throw new RouterError('MERIDIAN_E_ROUTER_ENDPOINTS', `${file}: ${problems}`, {
      hint: 'see docs/router.md for the format: {"endpoints": [{"cluster", "service", "port", …}]}',
    });
  }
  const doc = Array.isArray(r.data) ? { endpoints: r.data } : r.data;
  return {
    endpoints: doc.endpoints.map((e) => {
      const { version, healthy, replica, ...rest } = e;
      return {
        ...rest,
        ...(version !== undefined ? { version } : {}),
        ...(healthy !== undefined ? { healthy } : {}),
        ...(replica !== undefined ? { replica } : {}),
      };
    }),
    canary: 'canary' in doc ? (doc.canary ?? {}) : {},
    drained: 'drained' in doc ? (doc.drained ?? []) : [],
  };
}

/**
 * Refuses an endpoints document that names a cluster, a service, or a drained cluster or region that the
 * revision does not have: a typo would otherwise silently remove capacity.
 * @throws RouterError listing every unknown name
 */
export function checkEndpointsDocument(doc: EndpointsDocument, revision: Revision, file = 'endpoints file'): void {
  const clusters = new Set(Object.keys(revision.clusters));
  const services = new Set(Object.values(revision.clusters).flatMap((c) => Object.keys(c.services)));
  const regions = new Set(Object.keys(revision.regions));
  const problems = new Set<string>();
  doc.endpoints.forEach((e, i) => {
    if (!clusters.has(e.cluster)) problems.add(`endpoints.${i}: cluster ${e.cluster} is not in the fleet`);
    if (!services.has(e.service)) problems.add(`endpoints.${i}: service ${e.service} is not in the fleet`);
  });
  for (const [svc, byCluster] of Object.entries(doc.canary)) {
    if (!services.has(svc)) problems.add(`canary.${svc}: service ${svc} is not in the fleet`);
    for (const c of Object.keys(byCluster)) if (!clusters.has(c)) problems.add(`canary.${svc}.${c}: cluster ${c} is not in the fleet`);
  }
  for (const d of doc.drained)
    if (!clusters.has(d) && !regions.has(d)) problems.add(`drained: ${d} is neither a cluster nor a region of the fleet`);
  if (problems.size === 0) return;
  throw new RouterError('MERIDIAN_E_ROUTER_ENDPOINTS', `${file}: ${[...problems].join('; ')}`, {
    hint: `name the fleet's clusters (${[...clusters].join(', ')}) and services (${[...services].join(', ')})`,
  });
}

/** Reads and parses an endpoints file. */
export function readEndpointsFile(path: string): EndpointsDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new RouterError('MERIDIAN_E_ROUTER_ENDPOINTS', `cannot read the endpoints file ${path}`, { cause });
  }
  return parseEndpointsFile(text, path);
}

/**
 * A fixed list of endpoints that can be replaced as a whole (a file reloaded on SIGHUP, a test).
 * Endpoints without a version get `versionOf(cluster, service)`.
 */
export class StaticEndpoints {
  #byCluster = new Map<string, RouterEndpoint[]>();
  readonly #listeners = new Set<(e: EndpointEvent) => void>();

  constructor(
    list: EndpointsDocument['endpoints'] = [],
    private readonly versionOf: (cluster: string, service: string) => string = () => 'unknown',
  ) {
    this.replace(list);
  }

  endpoints(cluster: string): readonly RouterEndpoint[] {
    return this.#byCluster.get(cluster) ?? [];
  }

  subscribe(listener: (event: EndpointEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Replaces every endpoint and tells subscribers. */
  replace(list: EndpointsDocument['endpoints']): void {
    const next = new Map<string, RouterEndpoint[]>();
    for (const e of list) {
      const full: RouterEndpoint = { ...e, version: e.version ?? this.versionOf(e.cluster, e.service) };
      next.set(e.cluster, [...(next.get(e.cluster) ?? []), full]);
    }
    const clusters = new Set([...this.#byCluster.keys(), ...next.keys()]);
    this.#byCluster = next;
    for (const cluster of clusters) for (const l of this.#listeners) l({ type: 'endpoints-replaced', cluster });
  }
}

/** The lister of a source. */
export function listerOf(source: EndpointSource): EndpointLister {
  return typeof source === 'function' ? source : (cluster) => source.endpoints(cluster);
}
