/**
 * The shapes of the API's requests and responses (zod). One source for three uses: the server parses
 * request bodies with them, the OpenAPI document is generated from them, and the tests check every
 * response against them (test/server-openapi.test.ts).
 */
import { z } from 'zod';
import { RoutingViewSchema } from '../routing/view.js';
import { PERMISSIONS, ROLES } from './auth/roles.js';
import { MAX_TOKEN_LIFETIME_HOURS } from './auth/tokens.js';
import { EVENT_TYPES } from './event-hub.js';

const json = z.unknown();
const iso = z.string().describe('ISO 8601 time');

export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe('stable error code, MERIDIAN_E_…'),
    message: z.string(),
    hint: z.string().nullable().describe('how to fix it, when known'),
  }),
});

export const Whoami = z.object({
  identity: z.string(),
  via: z.string().describe('token:<id>, oidc:<issuer> or local'),
  roles: z.array(z.enum(ROLES)),
  can: z.record(z.enum(PERMISSIONS.filter((p) => p !== 'read') as [string, ...string[]]), z.boolean()),
});

export const Fleet = z.object({
  name: z.string(),
  revision: z.string(),
  regions: z.array(
    z.object({
      name: z.string(),
      jurisdiction: z.string(),
      location: z.object({ lat: z.number(), lon: z.number() }),
      countries: z.array(z.string()),
      clusters: z.array(z.string()),
    }),
  ),
  clusters: z.array(z.object({ name: z.string(), region: z.string(), labels: z.record(z.string(), z.string()), capacityRps: z.number() })),
  services: z.array(z.string()),
});

export const RevisionSummary = z.object({
  id: z.string(),
  fleet: z.string(),
  createdAt: iso,
  createdBy: z.string(),
  reason: z.string().nullable(),
  inForce: z.boolean().describe('the revision most clusters run'),
});

export const RevisionContent = z.looseObject({ id: z.string(), fleet: z.string() }).describe('the whole rendered revision');

const ClusterService = z.object({
  service: z.string(),
  track: z.enum(['stable', 'canary']),
  revision: z.string(),
  version: z.string(),
  healthy: z.boolean(),
  replicas: z.number(),
  ready: z.number(),
  restarts: z.number(),
  lastError: z.string().nullable(),
});

export const Cluster = z.object({
  name: z.string(),
  region: z.string(),
  jurisdiction: z.string(),
  drained: z.boolean(),
  healthy: z.boolean(),
  revision: z.string().nullable(),
  status: z.string().nullable(),
  reachable: z.boolean(),
  error: z.string().nullable(),
  services: z.array(ClusterService),
});

/** The routing view (src/routing/view.ts): the one contract between the control plane and routers. */
export const Routing = RoutingViewSchema;

export const Traffic = z.object({
  at: iso,
  windowSeconds: z.number(),
  flows: z.array(
    z.object({
      service: z.string(),
      clientRegion: z.string(),
      cluster: z.string(),
      region: z.string(),
      version: z.string(),
      rps: z.number(),
      errorRate: z.number(),
      p99Ms: z.number().nullable(),
    }),
  ),
});

export const RolloutSummary = z.object({
  id: z.string(),
  kind: z.string(),
  fleet: z.string(),
  state: z.string(),
  revision: z.string(),
  from: z.string().nullable(),
  author: z.string(),
  wave: z.string().nullable(),
  waveIndex: z.number(),
  step: z.number().nullable(),
  canaryWeight: z.number().nullable(),
  startedAt: iso,
  updatedAt: iso,
  finishedAt: iso.nullable(),
});

export const RolloutDetail = RolloutSummary.extend({
  planHash: z.string(),
  phase: json,
  reason: z.string().nullable(),
  waves: z.array(
    z.object({
      name: z.string(),
      clusters: z.array(z.string()),
      state: z.string().describe('pending, in-progress, awaiting-approval, paused, rolling-back, promoted, rolled-back, empty'),
      steps: z.array(z.number()),
      approvals: z
        .object({
          required: z.number(),
          roles: z.array(z.string()),
          given: z.array(z.string()),
          rejectedBy: z.string().nullable(),
          ignored: z.array(z.string()),
        })
        .nullable(),
    }),
  ),
  weights: z.record(z.string(), z.number()).describe('cluster → canary weight in force, percent'),
  verdicts: z.array(
    z.object({
      seq: z.number(),
      at: iso,
      wave: z.string(),
      step: z.number(),
      weight: z.number().nullable(),
      outcome: z.string().describe("the gate's verdict: pass, fail, inconclusive, no-data, error"),
      reason: z.string().nullable(),
      metric: z.string().nullable(),
      verdict: z.string().nullable(),
      value: json,
      baseline: json,
      threshold: json,
      query: z.string().nullable(),
      window: json,
      detail: json,
    }),
  ),
  overrides: z.array(z.object({ by: z.string(), reason: z.string().nullable(), at: iso })),
  control: json.describe('a pause/resume/abort/promote waiting for the driver, or null'),
  driven: z.boolean().describe('a process drives it now (holds its lock)'),
  events: z.array(z.object({ seq: z.number(), at: iso, type: z.string(), actor: z.string(), text: z.string(), data: json })),
});

/**
 * The most characters a free-text field (`reason`, `comment`) may hold. It is kept in the audit log for
 * ever and sent to every audit subscriber; Kubernetes caps an Event's note at 1 KiB.
 */
export const MAX_TEXT = 4096;
const text = (): z.ZodString => z.string().max(MAX_TEXT);

export const ApproveBody = z.strictObject({
  wave: z.string().min(1).optional().describe('default: the current wave'),
  role: z.string().min(1).optional().describe("the wave's approval role you act in (from the fleet file); optional when it names one"),
  comment: text().optional(),
});

export const RejectBody = z.strictObject({
  wave: z.string().min(1).optional(),
  role: z.string().min(1).optional(),
  reason: text().min(1),
});

export const Decision = z.object({
  approval: z.object({
    id: z.number(),
    wave: z.string(),
    actor: z.string(),
    role: z.string(),
    decision: z.enum(['approve', 'reject']),
    at: iso,
    expiresAt: iso,
  }),
  gate: z.object({ met: z.boolean(), approvers: z.array(z.string()), needed: z.number(), rejectedBy: z.string().nullable() }),
});

export const ControlBody = z.strictObject({ reason: text().optional() });

export const ControlResult = z.object({
  rollout: z.string(),
  action: z.enum(['pause', 'resume', 'abort', 'promote']),
  driven: z.boolean().describe('a process drives the rollout and carries the request out at its next look'),
  hint: z.string().nullable(),
});

export const DrainBody = z.strictObject({
  drained: z.boolean(),
  reason: text().optional(),
  /** Jurisdictions declared down: their locked clients may be left with no cluster (they get 503, never another jurisdiction). */
  declareDown: z.array(text()).max(64).optional(),
});

export const DrainResult = z.object({
  name: z.string(),
  kind: z.enum(['cluster', 'region']),
  drained: z.boolean(),
  tableVersion: z.number(),
});

const Gate = z.object({
  enabled: z.boolean(),
  percent: z.number(),
  source: z.enum(['operator', 'fleet', 'default']),
  updatedBy: z.string().optional(),
  updatedAt: iso.optional(),
});

export const Flag = z.object({
  name: z.string(),
  default: z.boolean(),
  description: z.string().nullable(),
  regions: z.record(z.string(), Gate),
});

export const FlagBody = z.strictObject({
  enabled: z.boolean(),
  percent: z.number().min(0).max(100).default(100),
  reason: text().optional(),
});

export const Audit = z.object({
  verified: z.boolean(),
  count: z.number(),
  headHash: z
    .string()
    .describe('the hash of the newest entry that verifies: keep it outside the store and check later with `meridian audit verify --head`'),
  brokenAt: z.number().optional(),
  problem: z.string().optional(),
  entries: z.array(
    z.object({
      seq: z.number(),
      at: iso,
      actor: z.string(),
      via: z.string().nullable(),
      action: z.string(),
      subject: z.string(),
      reason: z.string().nullable(),
      detail: json,
      hash: z.string(),
    }),
  ),
});

export const Token = z.object({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  createdAt: iso,
  createdBy: z.string(),
  expiresAt: iso.nullable(),
  revokedAt: iso.nullable(),
  revokedBy: z.string().nullable(),
});

export const TokenBody = z.strictObject({
  name: z.string().min(1).max(100),
  role: z.enum(ROLES),
  expiresInHours: z.number().positive().max(MAX_TOKEN_LIFETIME_HOURS).optional(),
});

export const CreatedToken = z.object({ token: z.string().describe('shown once; only its hash is kept'), record: Token });

export const Revoked = z.object({ id: z.string(), revoked: z.boolean() });

export const Health = z.object({ ok: z.boolean(), version: z.string() });

/** The event names, for the document. */
export const EventNames = z.enum(EVENT_TYPES);

export const OpenApiDoc = z.looseObject({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) });

export type Verdict = z.infer<typeof RolloutDetail>['verdicts'][number];
export type RolloutDetailT = z.infer<typeof RolloutDetail>;
export type TokenBodyT = z.infer<typeof TokenBody>;
