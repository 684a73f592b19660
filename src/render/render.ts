/**
 * Rendering: the fleet and its overrides become the desired state of every cluster — pure and
 * deterministic. Every rendered value remembers where it came from (the service, or an override).
 * The revision id is the hash of the rendered content.
 */
import { type SourceLocation, type Finding, formatPath } from '../findings/finding.js';
import type { LoadedFleet } from '../spec/load.js';
import type { Cluster, Flag, Routing, Service, ServiceParams } from '../spec/schema.js';
import type { SourceMap } from '../spec/source-map.js';
import { canonicalJson, canonicalJsonOnce, contentHash } from './canonical.js';
import { interpolate, type Vars } from './interpolate.js';
import { type ClusterFacts, matches, placed } from './selector.js';
import { closest } from '../spec/schema-walk.js';

/** One service as it should run on one cluster. */
export interface RenderedService {
  readonly image: string;
  /** `sha256:…` when the image is pinned by digest, else null. */
  readonly digest: string | null;
  readonly version: string;
  readonly port: number;
  readonly replicas: number;
  readonly resources: { readonly cpu?: string | number; readonly memory?: string | number };
  readonly health: { readonly path: string; readonly port?: number } | null;
  readonly requires: Readonly<Record<string, string>>;
  readonly env: Readonly<Record<string, string>>;
  readonly config: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, { readonly ref: string }>>;
  readonly ingress: { readonly host: string; readonly tls: boolean; readonly path?: string } | null;
  readonly local: { readonly command: readonly string[]; readonly cwd?: string } | null;
}

/** The desired state of one cluster. */
export interface RenderedCluster {
  readonly region: string;
  readonly jurisdiction: string;
  readonly driver: Cluster['driver'];
  readonly target: Readonly<Record<string, unknown>> | null;
  readonly capacity: { readonly rps: number };
  readonly weight: number;
  readonly priority: number | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly services: Readonly<Record<string, RenderedService>>;
  /** The cluster's ingress for data planes outside it (`clusters.<name>.ingress`); absent when not declared. */
  readonly ingress?: { readonly address: string; readonly healthPath?: string | undefined };
  /** Hash of this cluster's rendered content. */
  readonly hash: string;
}

export interface RenderedRegion {
  readonly jurisdiction: string;
  readonly location: { readonly lat: number; readonly lon: number };
  readonly countries: readonly string[];
  readonly trafficRps: number | null;
}

/** An immutable snapshot of the whole desired state; `id` is the hash of the rest. */
export interface Revision {
  readonly id: string;
  readonly fleet: string;
  readonly regions: Readonly<Record<string, RenderedRegion>>;
  readonly clusters: Readonly<Record<string, RenderedCluster>>;
  readonly routing: Readonly<Record<string, Routing>>;
  readonly flags: Readonly<Record<string, Flag>>;
}

/** Where a rendered value came from. */
export interface Provenance {
  /** `service` (the service's own definition), `override[i]`, or `default` (the schema's default). */
  readonly source: string;
  /** The path in the fleet description that set it. */
  readonly path: string;
  readonly location?: SourceLocation;
}

/** Leaf sources of one rendered service: leaf key (`env.LOG_LEVEL`) → -1 service, i override, -2 default. */
type Sources = Record<string, number>;

export interface RenderResult {
  readonly revision: Revision;
  /** Unresolved placeholders and other render-time problems. */
  readonly findings: readonly Finding[];
  /** Explains where a rendered value (`web.replicas`, `web.env.LOG_LEVEL`) on a cluster came from. */
  explain(cluster: string, path: string): Provenance | undefined;
}

const MAP_FIELDS = ['env', 'config', 'secrets', 'requires', 'resources', 'ingress'] as const;
const SCALAR_FIELDS = ['image', 'version', 'port', 'replicas', 'health', 'local'] as const;
const DIGEST = /@(sha256:[a-f0-9]{64})$/;

/** The image digest of a reference like `ghcr.io/acme/web:2.4.0@sha256:…`, or null when it is not pinned. */
export function imageDigest(image: string): string | null {
  return DIGEST.exec(image)?.[1] ?? null;
}

function clusterVars(c: ClusterFacts): Map<string, string> {
  const vars = new Map<string, string>([
    ['region.name', c.regionName],
    ['region.jurisdiction', c.region.jurisdiction],
    ['cluster.name', c.name],
  ]);
  for (const [k, v] of Object.entries(c.region.params ?? {})) vars.set(`region.params.${k}`, String(v));
  for (const [k, v] of Object.entries(c.cluster.params ?? {})) vars.set(`cluster.params.${k}`, String(v));
  for (const [k, v] of Object.entries(c.cluster.labels ?? {})) vars.set(`cluster.labels.${k}`, v);
  return vars;
}

interface Merged {
  params: Record<string, unknown>;
  sources: Sources;
}

/**
 * Applies the overrides that match, in order (later wins), to a service's own parameters. With `track`,
 * also records which one set each leaf (for explanations; skipped on the hot path of rendering).
 */
function merge(svc: Service, c: ClusterFacts, track = false): Merged {
  const params: Record<string, unknown> = {};
  const sources: Sources = {};
  const apply = (set: ServiceParams | Service, src: number): void => {
    for (const f of SCALAR_FIELDS) {
      const v = set[f];
      if (v !== undefined) {
        params[f] = v;
        if (track) sources[f] = src;
      }
    }
    for (const f of MAP_FIELDS) {
      const v = set[f] as Record<string, unknown> | undefined;
      if (v === undefined) continue;
      const target = (params[f] ??= {}) as Record<string, unknown>;
      for (const [k, x] of Object.entries(v)) {
        target[k] = x;
        if (track) sources[`${f}.${k}`] = src;
      }
    }
  };
  apply(svc, -1);
  svc.overrides?.forEach((o, i) => {
    if (matches(o.match, c)) apply(o.set, i);
  });
  return { params, sources };
}

function sourcePath(service: string, src: number, leaf: string): PropertyKey[] {
  const parts = leaf.split('.');
  return src < 0 ? ['services', service, ...parts] : ['services', service, 'overrides', src, 'set', ...parts];
}

/** Renders every cluster of a loaded fleet. Pure: the same fleet gives the same bytes. */
export function render(loaded: Pick<LoadedFleet, 'fleet' | 'sources'>): RenderResult {
  const { fleet, sources: map } = loaded;
  const findings = new Map<string, Finding>();
  const clusters: Record<string, RenderedCluster> = {};

  for (const name of Object.keys(fleet.clusters).sort()) {
    const cluster = fleet.clusters[name] as Cluster;
    const region = fleet.regions[cluster.region];
    if (!region) continue; // reported by the reference check
    const facts: ClusterFacts = { name, cluster, regionName: cluster.region, region };
    const baseVars = clusterVars(facts);
    const services: Record<string, RenderedService> = {};
    for (const svcName of Object.keys(fleet.services).sort()) {
      const svc = fleet.services[svcName] as Service;
      if (!placed(svc.placement, facts)) continue;
      const { params } = merge(svc, facts);
      const sources = (): Sources => merge(svc, facts, true).sources; // only when a value must be located
      const vars = new Map(baseVars);
      vars.set('service.name', svcName);
      vars.set('service.version', String(params['version']));
      const rendered = finish(svcName, params, sources, vars, map, name, findings);
      services[svcName] = rendered;
    }
    const body = {
      region: cluster.region,
      jurisdiction: region.jurisdiction,
      driver: cluster.driver,
      target: cluster.target ?? null,
      capacity: cluster.capacity,
      weight: cluster.weight,
      priority: cluster.priority ?? null,
      labels: cluster.labels ?? {},
      services,
      ...(cluster.ingress ? { ingress: cluster.ingress } : {}),
    };
    canonicalJsonOnce(services, { sortedByConstruction: true }); // the bulk of the cluster: serialised once, reused for the id and the store
    clusters[name] = { ...body, hash: contentHash(body) };
  }

  const regions: Record<string, RenderedRegion> = {};
  for (const name of Object.keys(fleet.regions).sort()) {
    const r = fleet.regions[name];
    if (!r) continue;
    regions[name] = { jurisdiction: r.jurisdiction, location: r.location, countries: r.countries, trafficRps: r.traffic?.rps ?? null };
  }
  const content = { fleet: fleet.fleet, regions, clusters, routing: fleet.routing, flags: fleet.flags };
  const id = contentHash({ ...content, clusters: Object.fromEntries(Object.entries(clusters).map(([k, c]) => [k, c.hash])) }).slice(0, 16);
  const revision: Revision = { id, ...content };

  return {
    revision,
    findings: [...findings.values()],
    explain(clusterName: string, path: string): Provenance | undefined {
      const [svcName, ...rest] = path.split('.');
      const leaf = rest.join('.');
      const svc = fleet.services[svcName ?? ''];
      const c = fleet.clusters[clusterName];
      const r = c ? fleet.regions[c.region] : undefined;
      if (!svcName || !svc || !c || !r) return undefined;
      const facts: ClusterFacts = { name: clusterName, cluster: c, regionName: c.region, region: r };
      if (!placed(svc.placement, facts)) return undefined;
      const svcSources = merge(svc, facts, true).sources;
      let src = svcSources[leaf];
      let leafKey = leaf;
      if (src === undefined) {
        // a whole map (`web.env`) or a value under a scalar (`web.health.path`): use the closest leaf
        const prefix = Object.keys(svcSources).find((k) => leaf.startsWith(`${k}.`));
        if (prefix !== undefined) {
          src = svcSources[prefix];
          leafKey = prefix;
        }
      }
      if (src === undefined) {
        return undefined;
      }
      const p = sourcePath(svcName, src, leafKey);
      if (src < 0 && !map.exists(p)) return { source: 'default', path: `${formatPath(p)} (not set; the schema's default applies)` };
      const location = map.locate(p);
      return { source: src < 0 ? 'service' : `override[${src}]`, path: formatPath(p), ...(location ? { location } : {}) };
    },
  };
}

function finish(
  svcName: string,
  params: Record<string, unknown>,
  sources: () => Sources,
  vars: Vars,
  map: SourceMap,
  cluster: string,
  findings: Map<string, Finding>,
): RenderedService {
  const str = (leaf: string, value: string): string => {
    const r = interpolate(value, vars);
    for (const name of r.unresolved) {
      const src = sources()[leaf] ?? -1;
      const p = sourcePath(svcName, src, leaf);
      const key = `${formatPath(p)}|${name}`;
      if (findings.has(key)) continue;
      const location = map.locate(p);
      findings.set(key, {
        code: 'MERIDIAN_E_UNRESOLVED_PLACEHOLDER',
        severity: 'error',
        message: `\${${name}} does not resolve (first seen rendering ${svcName} for cluster ${cluster})`,
        path: formatPath(p),
        ...(location ? { location } : {}),
        fix:
          suggestion(name, vars) ??
          'use one of ${region.name}, ${region.jurisdiction}, ${region.params.X}, ${cluster.name}, ${cluster.labels.X}, ${cluster.params.X}, ${service.name}, ${service.version}, and define the parameter X for every region or cluster that runs the service',
        target: { service: svcName, cluster },
      });
    }
    return r.text;
  };
  const strMap = (field: string): Record<string, string> => {
    const out: Record<string, string> = {};
    const v = (params[field] ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(v).sort()) out[k] = str(`${field}.${k}`, String(v[k]));
    return out;
  };
  const secretsIn = (params['secrets'] ?? {}) as Record<string, { ref: string }>;
  const secrets: Record<string, { ref: string }> = {};
  for (const k of Object.keys(secretsIn).sort()) secrets[k] = { ref: str(`secrets.${k}`, secretsIn[k]?.ref ?? '') };
  const image = str('image', String(params['image']));
  const ingressIn = params['ingress'] as { host: string; tls?: boolean; path?: string } | undefined;
  const localIn = params['local'] as { command: string[]; cwd?: string } | undefined;
  const healthIn = params['health'] as { path: string; port?: number } | undefined;
  const resources = (params['resources'] ?? {}) as { cpu?: string | number; memory?: string | number };
  return {
    // keys in sorted order, at every level: the object's JSON is then its canonical JSON (see canonicalJsonOnce)
    config: strMap('config'),
    digest: imageDigest(image),
    env: strMap('env'),
    health: healthIn ? { path: healthIn.path, ...(healthIn.port !== undefined ? { port: healthIn.port } : {}) } : null,
    image,
    ingress: ingressIn
      ? {
          host: str('ingress.host', ingressIn.host),
          ...(ingressIn.path !== undefined ? { path: ingressIn.path } : {}),
          tls: ingressIn.tls ?? false,
        }
      : null,
    local: localIn
      ? { command: localIn.command.map((c) => str('local', c)), ...(localIn.cwd !== undefined ? { cwd: localIn.cwd } : {}) }
      : null,
    port: Number(params['port']),
    replicas: Number(params['replicas'] ?? 1),
    requires: strMap('requires'),
    resources: {
      ...(resources.cpu !== undefined ? { cpu: resources.cpu } : {}),
      ...(resources.memory !== undefined ? { memory: resources.memory } : {}),
    },
    secrets,
    version: String(params['version']),
  };
}

function suggestion(name: string, vars: Vars): string | undefined {
  const guess = closest(name, [...vars.keys()]);
  return guess ? `did you mean \${${guess}}? (it is ${JSON.stringify(vars.get(guess))} here)` : undefined;
}

/** The rendered revision as canonical JSON (what the id hashes, and what the store keeps). */
export function revisionJson(revision: Revision): string {
  return canonicalJson(revision);
}
