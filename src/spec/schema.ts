/**
 * The fleet description's schema (docs/fleet.md), in zod. It is the one definition of the shape: types are
 * inferred from it and `meridian schema` exports it as JSON Schema for editors.
 */
import { z } from 'zod';
import { DURATION_PATTERN } from '../units/duration.js';
import { CPU_PATTERN, MEMORY_PATTERN, RATIO_PATTERN } from '../units/quantity.js';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const nameHint = 'lowercase letters, digits and dashes, starting and ending with a letter or digit';

/** A name of a region, cluster, service, flag or wave. */
export const Name = z.string().regex(NAME, { error: `a name: ${nameHint}` });
/** A jurisdiction: an upper-case legal area such as EU, US or APAC. */
export const Jurisdiction = z.string().regex(/^[A-Z][A-Z0-9_-]*$/, { error: 'a jurisdiction in upper case, like EU, US or APAC' });
/** An ISO 3166-1 alpha-2 country code. */
export const Country = z.string().regex(/^[A-Z]{2}$/, { error: 'an ISO 3166-1 alpha-2 country code in upper case, like DE' });
export const Duration = z.string().regex(new RegExp(DURATION_PATTERN), { error: 'a duration like 250ms, 10s, 2m or 1h' });
export const Cpu = z.union([z.number().nonnegative(), z.string().regex(new RegExp(CPU_PATTERN))], {
  error: 'CPU like 250m (millicores) or 2 (cores)',
});
export const Memory = z.union([z.number().nonnegative(), z.string().regex(new RegExp(MEMORY_PATTERN))], {
  error: 'memory like 256Mi or 4Gi',
});
export const Ratio = z.union([z.number().min(0).max(1), z.string().regex(new RegExp(RATIO_PATTERN))], {
  error: 'a ratio like 1% or 0.01',
});
const Scalar = z.union([z.string(), z.number(), z.boolean()]);
/** Free parameters and env/config maps: names to scalars. */
export const ScalarMap = z.record(z.string(), Scalar);
const Labels = z.record(z.string(), z.string());
const OneOrMany = z.union([z.string(), z.array(z.string())]);

/** The one selector syntax used by placement, overrides, waves and custom policies. */
export const Selector = z.strictObject({
  region: OneOrMany.optional(),
  cluster: OneOrMany.optional(),
  jurisdiction: OneOrMany.optional(),
  labels: Labels.optional(),
});

export const Region = z.strictObject({
  jurisdiction: Jurisdiction,
  location: z.strictObject({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }),
  countries: z.array(Country).default([]),
  quota: z.strictObject({ cpu: Cpu.optional(), memory: Memory.optional() }).optional(),
  traffic: z.strictObject({ rps: z.number().nonnegative() }).optional(),
  params: ScalarMap.optional(),
});

export const Driver = z.enum(['local', 'kubernetes', 'gitops']);

/**
 * Where a data plane outside the cluster (HAProxy, nginx, DNS: `meridian export`) reaches the cluster's
 * ingress: `host:port` (an IPv4 address, `[IPv6]` or a DNS name). Local clusters may leave it out: their
 * replicas' endpoints are used.
 */
export const ClusterIngress = z.strictObject({
  address: z
    .string()
    .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):([1-9][0-9]{0,4})$/, {
      error: 'an address as host:port, like 10.0.1.5:443, [2001:db8::5]:443 or ingress.eu-west-1.example.com:443',
    })
    .refine((v) => Number(/:(\d+)$/.exec(v)?.[1] ?? 0) <= 65535, { error: 'an address whose port is in 1..65535' }),
  /** The path a data plane checks (default: the service's health path). */
  healthPath: z.string().startsWith('/').optional(),
});

/** A secret is only ever a reference: `provider:path#key`. */
export const SecretRef = z.strictObject({
  ref: z.string().regex(/^(env|file|vault|k8s):[^#\s]+(#[^#\s]+)?$/, {
    error: 'a secret reference like vault:kv/web/db#password, file:secrets/x.env#KEY, env:NAME or k8s:ns/name#key',
  }),
});

/**
 * Where a `driver: kubernetes` cluster is and how to reach it (docs/kubernetes.md): a kubeconfig file
 * (and context), or the API server's URL with its CA and a bearer token given as a secret reference; the
 * namespace Meridian owns objects in; optionally the Gateway whose HTTPRoutes carry canary weights.
 */
export const KubernetesTargetSpec = z.strictObject({
  kubeconfig: z.string().min(1).optional(),
  context: z.string().min(1).optional(),
  server: z.string().url().optional(),
  /** PEM file of the API server's CA, relative to the fleet directory. */
  caFile: z.string().min(1).optional(),
  token: SecretRef.optional(),
  insecureSkipTlsVerify: z.boolean().optional(),
  namespace: z.string().regex(NAME, { error: `a namespace: ${nameHint}` }),
  gateway: z.strictObject({ name: z.string().min(1), namespace: z.string().min(1).optional() }).optional(),
});
export type KubernetesTargetSpec = z.output<typeof KubernetesTargetSpec>;

const ClusterFields = {
  region: Name,
  capacity: z.strictObject({ rps: z.number().nonnegative() }),
  weight: z.number().nonnegative().default(1),
  priority: z.number().int().optional(),
  labels: Labels.optional(),
  params: ScalarMap.optional(),
  ingress: ClusterIngress.optional(),
};

/** A cluster; its `target` section is the one its `driver` reads. */
export const Cluster = z.discriminatedUnion(
  'driver',
  [
    z.strictObject({ ...ClusterFields, driver: z.literal('local'), target: z.strictObject({}).optional() }),
    z.strictObject({
      ...ClusterFields,
      driver: z.literal('kubernetes'),
      target: KubernetesTargetSpec.refine((t) => t.kubeconfig !== undefined || t.server !== undefined, {
        error: 'a kubernetes target needs `kubeconfig` (a file, optionally with `context`) or `server` (with `caFile` and `token`)',
      }),
    }),
    z.strictObject({ ...ClusterFields, driver: z.literal('gitops'), target: z.record(z.string(), z.unknown()).optional() }),
  ],
  { error: 'driver must be one of local, kubernetes, gitops' },
);

const Resources = z.strictObject({ cpu: Cpu.optional(), memory: Memory.optional() });
const Ingress = z.strictObject({ host: z.string(), tls: z.boolean().default(false), path: z.string().optional() });
const Health = z.strictObject({ path: z.string().startsWith('/'), port: z.number().int().optional() });
const Local = z.strictObject({ command: z.array(z.string()).min(1), cwd: z.string().optional() });

/** The parameters of a service that an override may set. */
export const ServiceParams = z.strictObject({
  image: z.string().optional(),
  version: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  health: Health.optional(),
  replicas: z.number().int().nonnegative().optional(),
  resources: Resources.optional(),
  requires: z.record(Name, z.string()).optional(),
  env: ScalarMap.optional(),
  config: ScalarMap.optional(),
  secrets: z.record(z.string(), SecretRef).optional(),
  ingress: Ingress.optional(),
  local: Local.optional(),
});

export const Override = z.strictObject({ match: Selector, set: ServiceParams });

/** A command: a string run by `/bin/sh -c`, or a program and its arguments. */
const MigrationCommand = z.union([z.string().min(1), z.array(z.string()).min(1)], {
  error: 'a command: a string for /bin/sh -c, or a list like [psql, -f, up.sql]',
});

/**
 * A reversible data migration of a service (docs/migrations.md): `up` and `down` run once per region,
 * against that region's database, with the service's environment there. `expand` runs before a wave's
 * canary, `contract` after the last wave; a rollback runs `down` for what ran.
 */
export const DataMigration = z.strictObject({
  name: Name,
  phase: z.enum(['expand', 'contract'], { error: 'phase expand (before the canary) or contract (after the last wave)' }),
  up: MigrationCommand,
  down: MigrationCommand,
  /** How long one run of `up` or `down` may take (default 5m). */
  timeout: Duration.optional(),
});

export const Service = z.strictObject({
  image: z.string(),
  version: z.string(),
  port: z.number().int().min(1).max(65535),
  health: Health.optional(),
  replicas: z.number().int().nonnegative().default(1),
  resources: Resources.optional(),
  requires: z.record(Name, z.string()).optional(),
  env: ScalarMap.optional(),
  config: ScalarMap.optional(),
  secrets: z.record(z.string(), SecretRef).optional(),
  ingress: Ingress.optional(),
  local: Local.optional(),
  placement: z.strictObject({ match: Selector.optional(), exclude: Selector.optional() }).optional(),
  overrides: z.array(Override).optional(),
  migrations: z
    .array(DataMigration)
    .refine((ms) => new Set(ms.map((m) => m.name)).size === ms.length, { error: 'migration names must be unique within a service' })
    .optional(),
});

export const ResidencyRule = z.strictObject({
  allow: z.array(Jurisdiction).min(1),
  mode: z.enum(['lock', 'prefer']).default('prefer'),
});

export const Routing = z.strictObject({
  match: z.strictObject({ hosts: z.array(z.string()).optional(), pathPrefix: z.string().optional() }).optional(),
  residency: z.record(z.string(), ResidencyRule).optional(),
  clientCountryHeader: z.string().optional(),
  trustedSources: z.array(z.string()).optional(),
  steering: z.enum(['proximity', 'latency', 'weighted']).default('proximity'),
  failover: z.record(Name, z.array(Name)).optional(),
  bias: z.record(Name, z.number().int().min(-99).max(99)).optional(),
  healthCheck: z
    .strictObject({
      path: z.string().startsWith('/').optional(),
      interval: Duration.optional(),
      timeout: Duration.optional(),
      unhealthyThreshold: z.number().int().min(1).optional(),
      healthyThreshold: z.number().int().min(1).optional(),
    })
    .optional(),
  outlierDetection: z
    .strictObject({
      consecutive5xx: z.number().int().min(1).optional(),
      interval: Duration.optional(),
      baseEjectionTime: Duration.optional(),
      maxEjectionPercent: z.number().min(0).max(100).optional(),
    })
    .optional(),
  overprovisioningFactor: z.number().min(1).default(1.4),
  panicThreshold: Ratio.default('50%'),
  stickiness: z.union([z.strictObject({ cookie: z.string() }), z.strictObject({ header: z.string() })]).optional(),
  retries: z
    .strictObject({ attempts: z.number().int().min(0).max(5), budget: Ratio.default('20%'), perTryTimeout: Duration.optional() })
    .optional(),
  timeout: Duration.optional(),
  flag: Name.optional(),
  exposeHeaders: z.boolean().default(true),
});

export const Step = z.strictObject({ weight: z.number().min(0).max(100), pause: Duration.optional() });

export const Wave = z.strictObject({
  name: Name,
  clusters: Selector.optional(),
  steps: z.array(Step).optional(),
  approvals: z.strictObject({ count: z.number().int().min(1), roles: z.array(z.string()).min(1) }).optional(),
  maxParallel: z.number().int().min(1).optional(),
  bake: Duration.optional(),
});

export const Metric = z.strictObject({
  name: Name,
  source: z.enum(['router', 'prometheus']).default('router'),
  query: z.string().optional(),
  url: z.string().url().optional(),
  max: z.union([Ratio, Duration, z.number()]).optional(),
  min: z.union([Ratio, Duration, z.number()]).optional(),
  maxIncreaseOverBaseline: z.union([Ratio, Duration, z.number()]).optional(),
  onNoData: z.enum(['pass', 'fail', 'inconclusive']).default('inconclusive'),
});

export const Rollout = z.strictObject({
  waves: z.array(Wave).default([]),
  analysis: z
    .strictObject({
      interval: Duration.default('10s'),
      minSamples: z.number().int().min(0).default(100),
      metrics: z.array(Metric).default([]),
      failureLimit: z.number().int().min(1).default(1),
      /** Past a step's end, how long it keeps measuring while it is short of minSamples (default: twice the step's pause). */
      sampleWait: Duration.optional(),
      /**
       * A new canary's warm-up: after a batch's canary is deployed and its first step's weight set, how long its
       * traffic runs before that step's window (and pause) starts, so that cold processes are not judged (default 0s).
       */
      warmup: Duration.optional(),
    })
    .optional(),
  onFailure: z.enum(['pause', 'rollback-wave', 'rollback-all']).default('rollback-wave'),
});

export const Flag = z.strictObject({
  default: z.boolean().default(false),
  description: z.string().optional(),
  regions: z.record(Name, z.strictObject({ enabled: z.boolean(), percent: z.number().min(0).max(100).default(100) })).optional(),
});

export const BUILTIN_RULES = ['digest-pinned', 'no-literal-secrets', 'resources-required', 'min-replicas', 'tls-ingress'] as const;

export const Policies = z.strictObject({
  rules: z.array(z.enum(BUILTIN_RULES, { error: `one of the built-in rules: ${BUILTIN_RULES.join(', ')}` })).optional(),
  settings: z.strictObject({ minReplicas: z.number().int().min(1).default(2) }).optional(),
  custom: z
    .array(
      z.strictObject({
        name: Name,
        match: Selector.optional(),
        cel: z.string().min(1),
        message: z.string(),
        severity: z.enum(['error', 'warning']).default('error'),
      }),
    )
    .optional(),
  waivers: z
    .array(
      z.strictObject({
        rule: z.string(),
        target: z.strictObject({ service: Name.optional(), cluster: Name.optional(), region: Name.optional() }),
        reason: z.string().min(1),
        expires: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'a date like 2027-01-31' }),
        approvedBy: z.string().min(1),
      }),
    )
    .optional(),
});

/** Who must agree before something happens: N distinct approvers of the given roles, never the one who asked. */
export const Approvals = z.strictObject({ count: z.number().int().min(1), roles: z.array(z.string()).min(1) });

/**
 * How incidents are classified, who may declare a disaster, the recovery time each service or region
 * may take, and the safety rules every evacuation is checked against (docs/recovery.md).
 */
export const Recovery = z.strictObject({
  incidents: z
    .array(
      z.strictObject({
        name: Name,
        description: z.string().optional(),
        /** Declaring an incident of this class is declaring a disaster: it needs `disaster.approvals`. */
        disaster: z.boolean().default(false),
      }),
    )
    .default([]),
  disaster: z.strictObject({ approvals: Approvals }).optional(),
  rto: z
    .strictObject({
      default: Duration.optional(),
      services: z.record(Name, Duration).optional(),
      regions: z.record(Name, Duration).optional(),
    })
    .optional(),
  safety: z
    .strictObject({
      /** The share of each service's expected traffic that must stay servable after an evacuation. */
      capacityFloor: Ratio.default('100%'),
      /** How long after an evacuation or a restore the same place may not be changed back. */
      holdDown: Duration.default('5m'),
      /** The master switch: evacuations started by automation (not a person) are refused while false. */
      automatedEvacuations: z.boolean().default(false),
    })
    .default({ capacityFloor: '100%', holdDown: '5m', automatedEvacuations: false }),
  restore: z
    .strictObject({ ramp: z.array(z.number().min(0).max(100)).min(1), step: Duration })
    .refine((r) => r.ramp.every((p, i) => i === 0 || p >= (r.ramp[i - 1] ?? 0)), {
      error: 'percentages that never go down, like [10, 25, 50, 100] (a restored place takes back as much or more at each step)',
      path: ['ramp'],
    })
    .optional(),
  drills: z
    .strictObject({
      /** Weekly windows (UTC) when no drill may start, like `Fri:16:00-Mon:08:00`. */
      blockedWindows: z
        .array(
          z.string().regex(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun):\d{2}:\d{2}-(Mon|Tue|Wed|Thu|Fri|Sat|Sun):\d{2}:\d{2}$/, {
            error: 'a weekly window in UTC like Fri:16:00-Mon:08:00',
          }),
        )
        .optional(),
      /** Dates (UTC) when no drill may start. */
      blockedDates: z.array(z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'a date like 2026-12-24' })).optional(),
    })
    .optional(),
});

/** The whole fleet, after the files of a fleet directory are merged. */
export const Fleet = z.strictObject({
  apiVersion: z.literal('meridian/v1', { error: 'apiVersion must be meridian/v1' }),
  fleet: Name,
  regions: z.record(Name, Region).default({}),
  clusters: z.record(Name, Cluster).default({}),
  services: z.record(Name, Service).default({}),
  routing: z.record(Name, Routing).default({}),
  rollout: Rollout.optional(),
  flags: z.record(Name, Flag).default({}),
  policies: Policies.optional(),
  recovery: Recovery.optional(),
});

export type Fleet = z.output<typeof Fleet>;
export type FleetInput = z.input<typeof Fleet>;
export type Region = z.output<typeof Region>;
export type Cluster = z.output<typeof Cluster>;
export type Service = z.output<typeof Service>;
export type ServiceParams = z.output<typeof ServiceParams>;
export type Override = z.output<typeof Override>;
export type Selector = z.output<typeof Selector>;
export type Routing = z.output<typeof Routing>;
export type Rollout = z.output<typeof Rollout>;
export type Wave = z.output<typeof Wave>;
export type Metric = z.output<typeof Metric>;
export type Flag = z.output<typeof Flag>;
export type Policies = z.output<typeof Policies>;
export type Recovery = z.output<typeof Recovery>;
export type DataMigration = z.output<typeof DataMigration>;
export type BuiltinRule = (typeof BUILTIN_RULES)[number];

/** The fleet schema as JSON Schema (draft 2020-12), for editors and for `meridian schema`. */
export function fleetJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(Fleet, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...schema,
    $id: 'https://meridian.dev/schema/fleet.schema.json',
    title: 'Meridian fleet description',
    description: 'One file of a Meridian fleet directory (apiVersion: meridian/v1). See docs/fleet.md in the meridian repository.',
  };
}
