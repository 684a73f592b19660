/**
 * What a service becomes in a Kubernetes namespace — pure and deterministic, so that `meridian render
 * --format kubernetes` writes exactly what the driver applies: per track a Deployment (`<service>` on
 * stable, `<service>-canary` on canary) and a ConfigMap of its config; per service a Service over both
 * tracks (the replica-ratio canary); with a Gateway, a Service per track and an HTTPRoute whose weights
 * the rollout's steps set. Secrets are only referenced (`k8s:` references), never copied.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../render/canonical.js';
import type { RenderedCluster, RenderedService } from '../../render/render.js';
import { SecretResolutionError } from '../errors.js';
import type { Track } from '../target.js';

/** Environment names Meridian sets itself; the fleet's `env` cannot override them (as in the local driver). */
const RESERVED_ENV = /^(PORT|MERIDIAN_.*)$/;
/** A Kubernetes object as the driver writes it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export const FIELD_MANAGER = 'meridian';
/** Labels and annotations Meridian writes (besides `app.kubernetes.io/*`). */
export const LABEL = {
  cluster: 'meridian.dev/cluster',
  service: 'meridian.dev/service',
  track: 'meridian.dev/track',
  revision: 'meridian.dev/revision',
  specHash: 'meridian.dev/spec-hash',
  partOf: 'applyset.kubernetes.io/part-of',
  name: 'app.kubernetes.io/name',
  version: 'app.kubernetes.io/version',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;
export const ANNOTATION = {
  /** Hash of everything Meridian applies in the object: equal hash, nothing to write. */
  objectHash: 'meridian.dev/object-hash',
  version: 'meridian.dev/version',
  /** `{specHash: revisionId}` of the specs this Deployment ran, so old pods keep their own revision. */
  specRevisions: 'meridian.dev/spec-revisions',
} as const;

/** Where the objects go and how canary traffic is split. */
export interface ManifestContext {
  readonly cluster: string;
  readonly namespace: string;
  readonly applySetId: string;
  /** The Gateway that carries canary weights; null: replica-ratio canary. */
  readonly gateway: { readonly name: string; readonly namespace?: string | undefined } | null;
}

const sha = (v: unknown): string => createHash('sha256').update(canonicalJson(v)).digest('hex');

/** A label value from free text (versions like `1.2.3+build` are not valid label values as they are). */
export function labelValue(v: string): string {
  const s = v.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 63);
  return s.replace(/^[^A-Za-z0-9]+/, '').replace(/[^A-Za-z0-9]+$/, '');
}

/** The Deployment (and ConfigMap) name of a service's track. */
export function workloadName(service: string, track: Track): string {
  return track === 'stable' ? service : `${service}-canary`;
}

/** The hash of what a track of a service runs: its rendered spec. Equal hash: nothing restarts. */
export function specHash(svc: RenderedService, track: Track): string {
  return sha({ svc: { ...svc, local: null }, track }).slice(0, 16);
}

/** `k8s:ns/name#key` or `k8s:name#key` → the Secret and key; anything else is refused. */
export function secretKeyRef(service: string, env: string, ref: string, namespace: string): { name: string; key: string } {
  const m = /^k8s:(?:([a-z0-9-]+)\/)?([a-z0-9.-]+)#(.+)$/.exec(ref);
  if (!m) {
    throw new SecretResolutionError(
      'MERIDIAN_E_TARGET_SECRET_PROVIDER',
      ref,
      `service ${service}: secret ${env} is ${ref.split(':')[0]}:…, but the kubernetes driver only references Secrets that exist in the cluster`,
      { hint: `give it as k8s:${namespace}/SECRET#KEY (an override for kubernetes clusters), and create that Secret in the cluster` },
    );
  }
  if (m[1] !== undefined && m[1] !== namespace) {
    throw new SecretResolutionError(
      'MERIDIAN_E_TARGET_SECRET_NAMESPACE',
      ref,
      `service ${service}: secret ${env} lives in namespace ${m[1]}, but pods of this cluster run in ${namespace}`,
      { hint: `copy the Secret into namespace ${namespace}, or write the reference as k8s:${namespace}/${m[2]}#${m[3]}` },
    );
  }
  return { name: m[2] as string, key: m[3] as string };
}

function withHash(o: KubeObject): KubeObject {
  const annotations = { ...o.metadata.annotations };
  delete annotations[ANNOTATION.objectHash];
  const body = { ...o, metadata: { ...o.metadata, annotations } };
  return { ...o, metadata: { ...o.metadata, annotations: { ...annotations, [ANNOTATION.objectHash]: sha(body).slice(0, 16) } } };
}

/**
 * The objects of one service's track: Deployment and ConfigMap, and — on stable, or on canary when the
 * service has no stable — the Service; with a Gateway, the track's own Service (the HTTPRoute is
 * written by the traffic control, which owns its weights).
 */
export function trackObjects(
  ctx: ManifestContext,
  state: RenderedCluster,
  service: string,
  track: Track,
  revisionId: string,
  opts: { specRevisions?: Readonly<Record<string, string>>; canaryWeight?: number } = {},
): KubeObject[] {
  const svc = state.services[service];
  if (!svc) return [];
  const name = workloadName(service, track);
  const hash = specHash(svc, track);
  const common = {
    [LABEL.name]: service,
    [LABEL.managedBy]: 'meridian',
    [LABEL.cluster]: ctx.cluster,
    [LABEL.service]: service,
    [LABEL.partOf]: ctx.applySetId,
  };
  const trackLabels = {
    ...common,
    [LABEL.track]: track,
    [LABEL.revision]: labelValue(revisionId),
    [LABEL.version]: labelValue(svc.version),
  };
  const selector = { [LABEL.cluster]: ctx.cluster, [LABEL.service]: service, [LABEL.track]: track };
  const env = [
    ...Object.entries({
      PORT: String(svc.port),
      MERIDIAN_SERVICE: service,
      MERIDIAN_VERSION: svc.version,
      MERIDIAN_CLUSTER: ctx.cluster,
      MERIDIAN_REGION: state.region,
      MERIDIAN_TRACK: track,
    }).map(([k, value]) => ({ name: k, value })),
    ...Object.entries(svc.env)
      .filter(([k]) => !RESERVED_ENV.test(k))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, value]) => ({ name: k, value })),
    ...Object.entries(svc.secrets)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, s]) => ({ name: k, valueFrom: { secretKeyRef: secretKeyRef(service, k, s.ref, ctx.namespace) } })),
  ];
  const configMap: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `${name}-config`, namespace: ctx.namespace, labels: trackLabels },
    data: Object.fromEntries(Object.entries(svc.config).sort(([a], [b]) => a.localeCompare(b))),
  };
  const resources: Record<string, string> = {};
  if (svc.resources.cpu !== undefined) resources['cpu'] = String(svc.resources.cpu);
  if (svc.resources.memory !== undefined) resources['memory'] = String(svc.resources.memory);
  const probePort = svc.health?.port ?? svc.port;
  const container: Record<string, unknown> = {
    name: service,
    image: svc.image,
    ports: [{ name: 'http', containerPort: svc.port, protocol: 'TCP' }],
    env,
    envFrom: [{ configMapRef: { name: `${name}-config` } }],
    ...(Object.keys(resources).length > 0 ? { resources: { requests: resources, limits: resources } } : {}),
    readinessProbe: svc.health
      ? { httpGet: { path: svc.health.path, port: probePort }, periodSeconds: 5, failureThreshold: 3 }
      : { tcpSocket: { port: probePort }, periodSeconds: 5 },
  };
  const specRevisions = { ...opts.specRevisions, [hash]: revisionId };
  const recent = Object.fromEntries(Object.entries(specRevisions).slice(-4));
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: ctx.namespace,
      labels: { ...trackLabels, [LABEL.specHash]: hash },
      annotations: { [ANNOTATION.version]: svc.version, [ANNOTATION.specRevisions]: JSON.stringify(recent) },
    },
    spec: {
      // a replica-ratio canary's size is its traffic weight, set by the traffic control (its own field manager)
      ...(track === 'canary' && !ctx.gateway ? {} : { replicas: svc.replicas }),
      selector: { matchLabels: selector },
      progressDeadlineSeconds: 600,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...common, ...selector, [LABEL.specHash]: hash } },
        spec: {
          containers: [container],
          // kwok's simulated nodes carry this taint; on real nodes the toleration does nothing
          tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
        },
      },
    },
  };
  const out = [withHash(configMap), withHash(deployment)];
  const ports = [{ name: 'http', port: svc.port, targetPort: 'http', protocol: 'TCP' }];
  if (track === 'stable') {
    out.push(
      withHash({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: service, namespace: ctx.namespace, labels: { ...common, [LABEL.track]: 'stable' } },
        spec: { selector: { [LABEL.cluster]: ctx.cluster, [LABEL.service]: service }, ports },
      }),
    );
  }
  if (ctx.gateway) {
    out.push(
      withHash({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `${service}-${track}`, namespace: ctx.namespace, labels: { ...common, [LABEL.track]: track } },
        spec: { selector, ports },
      }),
    );
    // the route belongs to the stable track; an apply keeps the canary weight the traffic control set
    if (track === 'stable') out.push(httpRoute(ctx, service, svc.port, opts.canaryWeight ?? 0));
  }
  return out;
}

/**
 * The HTTPRoute that splits a service's traffic between its stable and canary Services by weight (0–100),
 * attached to the cluster's Gateway. Part of the stable track: applied with the service, its weights set
 * by the rollout's steps (the traffic control), 0 % canary when no canary runs.
 */
export function httpRoute(ctx: ManifestContext, service: string, port: number, canaryWeight: number): KubeObject {
  if (!ctx.gateway) throw new Error('httpRoute needs a gateway');
  const w = Math.max(0, Math.min(100, Math.round(canaryWeight)));
  return withHash({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: {
      name: service,
      namespace: ctx.namespace,
      labels: {
        [LABEL.name]: service,
        [LABEL.managedBy]: 'meridian',
        [LABEL.cluster]: ctx.cluster,
        [LABEL.service]: service,
        [LABEL.track]: 'stable',
        [LABEL.partOf]: ctx.applySetId,
      },
    },
    spec: {
      parentRefs: [{ name: ctx.gateway.name, ...(ctx.gateway.namespace ? { namespace: ctx.gateway.namespace } : {}) }],
      rules: [
        {
          // no canary backend at 0 %: the canary Service exists only while a canary runs
          backendRefs: [
            { name: `${service}-stable`, port, weight: 100 - w },
            ...(w > 0 ? [{ name: `${service}-canary`, port, weight: w }] : []),
          ],
        },
      ],
    },
  });
}

/** The canary weight (0–100) a live HTTPRoute of `service` carries, or undefined when it has none. */
export function routeCanaryWeight(route: KubeObject | undefined, service: string): number | undefined {
  const rules = (route?.['spec'] as { rules?: { backendRefs?: { name?: string; weight?: number }[] }[] } | undefined)?.rules;
  const w = rules?.[0]?.backendRefs?.find((b) => b.name === `${service}-canary`)?.weight;
  return typeof w === 'number' ? w : undefined;
}

/** The ApplySet id (KEP-3659) of a parent ConfigMap: `applyset-<base64url(sha256(name.namespace.kind.group))>-v1`. */
export function applySetId(parentName: string, namespace: string): string {
  const digest = createHash('sha256').update(`${parentName}.${namespace}.ConfigMap.`).digest('base64url');
  return `applyset-${digest}-v1`;
}

/** The ApplySet parent: a ConfigMap that names the set and the kinds in it. */
export function applySetParent(ctx: ManifestContext, parentName: string): KubeObject {
  const kinds = ['ConfigMap', 'Deployment.apps', 'Service', ...(ctx.gateway ? ['HTTPRoute.gateway.networking.k8s.io'] : [])];
  return withHash({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: parentName,
      namespace: ctx.namespace,
      labels: { 'applyset.kubernetes.io/id': ctx.applySetId, [LABEL.managedBy]: 'meridian', [LABEL.cluster]: ctx.cluster },
      annotations: {
        'applyset.kubernetes.io/tooling': 'meridian/v1',
        'applyset.kubernetes.io/contains-group-kinds': kinds.sort().join(','),
      },
    },
  });
}

/** Markers by which other tools claim an object; Meridian never prunes an object that carries one. */
export const FOREIGN_OWNERS: readonly { readonly tool: string; readonly label?: string; readonly annotation?: string }[] = [
  { tool: 'Argo CD', annotation: 'argocd.argoproj.io/tracking-id' },
  { tool: 'Argo CD', label: 'argocd.argoproj.io/instance' },
  { tool: 'Flux', label: 'kustomize.toolkit.fluxcd.io/name' },
  { tool: 'Flux', label: 'helm.toolkit.fluxcd.io/name' },
  { tool: 'cli-utils/kpt', annotation: 'config.k8s.io/owning-inventory' },
  { tool: 'Helm', annotation: 'meta.helm.sh/release-name' },
];

/** The other tool that claims an object, or null when none does. */
export function foreignOwner(o: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } }): string | null {
  const labels = o.metadata?.labels ?? {};
  const annotations = o.metadata?.annotations ?? {};
  for (const f of FOREIGN_OWNERS) {
    if (f.label !== undefined && labels[f.label] !== undefined) return f.tool;
    if (f.annotation !== undefined && annotations[f.annotation] !== undefined) return f.tool;
  }
  if (labels[LABEL.managedBy] !== undefined && labels[LABEL.managedBy] !== 'meridian') return labels[LABEL.managedBy] ?? null;
  return null;
}
