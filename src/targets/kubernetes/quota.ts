/**
 * Whether what an apply adds to a namespace fits its ResourceQuotas — the arithmetic the API server's
 * quota admission does for each pod and object, done before anything is written, so that a canary that
 * would exceed a quota is refused at once with the quota's name and numbers instead of leaving a
 * Deployment whose pods are never created. Pure. Only quotas without scopes are checked (a scoped quota
 * is left to the API server, whose refusal is still a typed error).
 */
import { TargetError } from '../errors.js';

/** The parts of a ResourceQuota this reads. */
export interface QuotaLike {
  readonly metadata: { readonly name: string };
  readonly spec?: { readonly scopes?: readonly string[]; readonly scopeSelector?: unknown };
  readonly status?: { readonly hard?: Readonly<Record<string, string>>; readonly used?: Readonly<Record<string, string>> };
}

/** What an apply would add: pods (with the CPU cores and memory bytes each requests) and objects by quota name. */
export interface QuotaAsk {
  /** One entry per new pod: its CPU (cores) and memory (bytes) requests, undefined when it sets none. */
  readonly pods: readonly { readonly cpu?: number | undefined; readonly memory?: number | undefined }[];
  /** New objects by kind: `Deployment`, `ConfigMap`, `Service`. */
  readonly objects: Readonly<Record<string, number>>;
}

/** One resource of one quota that the ask would exceed. */
export interface QuotaShortfall {
  readonly quota: string;
  readonly resource: string;
  /** What the ask adds (in the quota's unit: cores, bytes or a count). */
  readonly requested: number;
  readonly used: number;
  readonly hard: number;
  /** Set when the quota needs a value the pods do not give (a quota on requests.cpu and pods without a cpu request). */
  readonly unspecified?: boolean;
}

const SUFFIX: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity (`50m`, `1.5`, `32Mi`, `1e3`) as a number; NaN when it is not one. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$/.exec(q.trim());
  const factor = m ? SUFFIX[m[2] ?? ''] : undefined;
  return m && factor !== undefined ? Number(m[1]) * factor : Number.NaN;
}

/** The quota resources a pod counts towards, and which of its requests each takes. */
const POD_RESOURCES: readonly [RegExp, 'count' | 'cpu' | 'memory'][] = [
  [/^(pods|count\/pods)$/, 'count'],
  [/^(cpu|requests\.cpu|limits\.cpu)$/, 'cpu'],
  [/^(memory|requests\.memory|limits\.memory)$/, 'memory'],
];
const OBJECT_RESOURCES: Readonly<Record<string, string>> = {
  'count/deployments.apps': 'Deployment',
  configmaps: 'ConfigMap',
  'count/configmaps': 'ConfigMap',
  services: 'Service',
  'count/services': 'Service',
};

/** Every quota resource the ask would take past its hard limit (empty: it fits). */
export function quotaShortfalls(quotas: readonly QuotaLike[], ask: QuotaAsk): QuotaShortfall[] {
  const out: QuotaShortfall[] = [];
  for (const q of quotas) {
    if ((q.spec?.scopes?.length ?? 0) > 0 || q.spec?.scopeSelector !== undefined) continue;
    for (const [resource, hardText] of Object.entries(q.status?.hard ?? {})) {
      const hard = parseQuantity(hardText);
      const used = parseQuantity(q.status?.used?.[resource] ?? '0');
      if (Number.isNaN(hard) || Number.isNaN(used)) continue;
      const kind = POD_RESOURCES.find(([re]) => re.test(resource))?.[1];
      let requested = 0;
      let unspecified = false;
      if (kind === 'count') requested = ask.pods.length;
      else if (kind !== undefined) {
        for (const p of ask.pods) {
          const v = p[kind];
          if (v === undefined) unspecified = true;
          else requested += v;
        }
      } else if (OBJECT_RESOURCES[resource] !== undefined) {
        requested = ask.objects[OBJECT_RESOURCES[resource]] ?? 0;
      }
      if (unspecified || (requested > 0 && used + requested > hard * (1 + 1e-9))) {
        out.push({ quota: q.metadata.name, resource, requested, used, hard, ...(unspecified ? { unspecified } : {}) });
      }
    }
  }
  return out;
}

/** A quantity for people: `0.05` cores as `50m`, bytes as `32Mi`, counts as they are. */
export function formatQuantity(resource: string, v: number): string {
  if (/cpu/.test(resource)) return Number.isInteger(v) ? String(v) : `${Math.round(v * 1000)}m`;
  if (/memory/.test(resource)) {
    for (const [s, f] of [
      ['Gi', 2 ** 30],
      ['Mi', 2 ** 20],
      ['Ki', 2 ** 10],
    ] as const) {
      if (v >= f && Number.isInteger(v / f)) return `${v / f}${s}`;
    }
  }
  return String(Math.round(v * 1000) / 1000);
}

/** One shortfall as a sentence: `ResourceQuota "tight" allows pods: 2, 2 are in use, this needs 1 more`. */
export function describeShortfall(s: QuotaShortfall): string {
  if (s.unspecified)
    return `ResourceQuota "${s.quota}" limits ${s.resource}, and the pods do not set ${s.resource.replace(/^(requests|limits)\./, '')} (give the service resources)`;
  const f = (v: number): string => formatQuantity(s.resource, v);
  return `ResourceQuota "${s.quota}" allows ${s.resource}: ${f(s.hard)}, ${f(s.used)} in use, this needs ${f(s.requested)} more`;
}

/** The parts of a Deployment the ask reads. */
interface DeploymentShape {
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Readonly<Record<string, string>> };
  readonly [k: string]: unknown;
}

/** One pod's requests in a Deployment's template. */
export function podRequests(d: DeploymentShape): { cpu?: number; memory?: number } {
  const spec = d['spec'] as { template?: { spec?: { containers?: { resources?: { requests?: Record<string, string> } }[] } } } | undefined;
  let cpu: number | undefined;
  let memory: number | undefined;
  for (const c of spec?.template?.spec?.containers ?? []) {
    const r = c.resources?.requests ?? {};
    if (r['cpu'] !== undefined) cpu = (cpu ?? 0) + parseQuantity(r['cpu']);
    if (r['memory'] !== undefined) memory = (memory ?? 0) + parseQuantity(r['memory']);
  }
  return { ...(cpu === undefined ? {} : { cpu }), ...(memory === undefined ? {} : { memory }) };
}

/**
 * What writing `changed` (objects to apply) adds to the namespace, given what is `live`: new objects, the
 * pods of a new Deployment (its replicas, 1 when the manifest leaves them out), the replicas an existing
 * one gains, and the one extra pod a rolling update of a changed pod template starts (maxSurge 1).
 */
export function quotaAsk(changed: readonly DeploymentShape[], live: readonly DeploymentShape[], specHashLabel: string): QuotaAsk {
  const pods: { cpu?: number; memory?: number }[] = [];
  const objects: Record<string, number> = {};
  for (const o of changed) {
    const was = live.find((l) => l.kind === o.kind && l.metadata.name === o.metadata.name);
    if (!was) objects[o.kind] = (objects[o.kind] ?? 0) + 1;
    if (o.kind !== 'Deployment') continue;
    const per = podRequests(o);
    const want = (o['spec'] as { replicas?: number } | undefined)?.replicas;
    const had = (was?.['spec'] as { replicas?: number } | undefined)?.replicas;
    let n = 0;
    if (!was) n = want ?? 1;
    else {
      n = Math.max(0, (want ?? had ?? 1) - (had ?? 1));
      if (was.metadata.labels?.[specHashLabel] !== o.metadata.labels?.[specHashLabel]) n += 1;
    }
    for (let i = 0; i < n; i++) pods.push(per);
  }
  return { pods, objects };
}

/** The typed refusal: the cluster, what was asked, each quota with its numbers, and the fix. */
export function quotaError(cluster: string, namespace: string, what: string, short: readonly QuotaShortfall[]): TargetError {
  const names = [...new Set(short.map((s) => s.quota))];
  return new TargetError(
    'MERIDIAN_E_TARGET_K8S_QUOTA',
    `cluster ${cluster}: ${what} would exceed the quota of namespace ${namespace}: ${short.map(describeShortfall).join('; ')}; nothing of it was applied`,
    {
      hint: `lower replicas or resources of the service for cluster ${cluster} (an override), or raise the quota (kubectl describe resourcequota ${names.join(' ')} -n ${namespace})`,
    },
  );
}
