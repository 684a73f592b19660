/**
 * The control-plane API: every route, its permission, its request and response shapes and its handler.
 * The server dispatches from this table and the OpenAPI document is built from it, so the two agree.
 * Actions reuse what the CLI uses: approvals through src/rollout/approvals.ts, pause/resume/abort/promote
 * through the rollout engine's `requestControl` (the driver of the rollout carries them out).
 */
import type { Registry } from 'prom-client';
import { flagState, type FlagDefinitions } from '../flags/flag-state.js';
import { unknownFlag, unknownRegion } from '../flags/errors.js';
import type { Revision } from '../render/render.js';
import { evaluateApprovals, gateOf, recordDecision } from '../rollout/approvals.js';
import { requestControl } from '../rollout/engine.js';
import { describeEvent } from '../rollout/events.js';
import { asSpec } from '../rollout/rollout-spec.js';
import { rolloutView } from '../rollout/summary.js';
import type { ControlAction } from '../rollout/state-machine.js';
import type { JsonValue, RolloutRecord, Store } from '../store/store.js';
import { ApiError } from './api-error.js';
import { capabilities } from './auth/roles.js';
import { newApiToken } from './auth/tokens.js';
import { AuditVerifier } from './audit-verifier.js';
import { auditJson, type ControlState } from './control-state.js';
import { EVENT_TYPES, type EventHub, type EventType } from './event-hub.js';
import type { RouteSpec } from './route.js';
import * as S from './schemas.js';

/** What the handlers work with. */
export interface RouteDeps {
  readonly store: Store;
  readonly state: ControlState;
  readonly hub: EventHub;
  readonly registry: Registry;
  readonly version: string;
  /** The OpenAPI document (built from this same table). */
  readonly openapi: () => unknown;
}

function route<B>(spec: RouteSpec<B>): RouteSpec {
  return spec as unknown as RouteSpec;
}

function fleetRevision(state: ControlState): Revision {
  const rev = state.revision;
  if (!rev) {
    throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', 'the control plane knows no fleet yet', {
      hint: 'start it with the fleet directory (`meridian serve examples/shop`), or record a revision with `meridian plan`',
    });
  }
  return rev;
}

async function rolloutOf(store: Store, id: string): Promise<RolloutRecord> {
  const r = await store.getRollout(id);
  if (!r) {
    throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no rollout ${id}`, { hint: 'list them with GET /api/v1/rollouts' });
  }
  return r;
}

function intParam(url: URL, name: string, dflt: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new ApiError(
      'MERIDIAN_E_API_INVALID',
      `the query parameter ${name} must be a whole number from 1 to ${max}, not ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** The flag definitions of a revision, as src/flags wants them. */
export function flagDefinitions(rev: Revision): FlagDefinitions {
  return { fleet: rev.fleet, regions: rev.regions, flags: rev.flags };
}

function pick(o: Record<string, JsonValue>, ...keys: string[]): JsonValue {
  for (const k of keys) if (o[k] !== undefined) return o[k];
  return null;
}

/** The metrics of a gate's verdict, one row per metric (the judge's records are kept whole in `detail`). */
function verdictRows(view: ReturnType<typeof rolloutView>): S.Verdict[] {
  const rows: S.Verdict[] = [];
  for (const g of view.gates) {
    const metrics = Array.isArray(g.metrics) && g.metrics.length > 0 ? g.metrics : [null];
    for (const m of metrics) {
      const o = m !== null && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, JsonValue>) : {};
      const str = (v: JsonValue): string | null => (v === null ? null : typeof v === 'string' ? v : JSON.stringify(v));
      rows.push({
        seq: g.seq,
        at: g.at,
        wave: g.wave,
        step: g.step,
        weight: g.weight,
        outcome: g.outcome,
        reason: g.reason,
        metric: str(pick(o, 'name', 'metric')),
        verdict: str(pick(o, 'verdict', 'outcome')) ?? (typeof o['healthy'] === 'boolean' ? (o['healthy'] ? 'pass' : 'fail') : null),
        value: pick(o, 'value', 'canary', 'readyReplicas'),
        baseline: pick(o, 'baseline'),
        threshold: pick(o, 'threshold', 'max', 'desiredReplicas'),
        query: str(pick(o, 'query')),
        window: pick(o, 'window'),
        detail: m,
      });
    }
  }
  return rows;
}

/** Every route of the API. */
export function apiRoutes(d: RouteDeps): RouteSpec[] {
  const { store, state, hub } = d;
  const auditVerifier = new AuditVerifier(store);

  async function rolloutDetail(r: RolloutRecord): Promise<S.RolloutDetailT> {
    const spec = asSpec(r.spec);
    const events = await store.listRolloutEvents(r.id);
    const view = rolloutView(r, spec, events, await store.listApprovals(spec.planHash), Date.now());
    const locks = (await store.listLocks()).filter((l) => l.rolloutId === r.id);
    return {
      ...(await state.rolloutSummary(r)),
      planHash: r.planHash,
      phase: view.phase,
      reason: view.reason,
      waves: view.waves.map((w) => ({
        name: w.name,
        clusters: [...w.clusters],
        state: w.status,
        steps: [...w.steps],
        approvals: w.approvals
          ? {
              required: w.approvals.needed,
              roles: [...w.approvals.roles],
              given: [...w.approvals.approvers],
              rejectedBy: w.approvals.rejectedBy,
              ignored: [...w.approvals.ignored],
            }
          : null,
      })),
      weights: { ...view.weights },
      verdicts: verdictRows(view),
      overrides: view.overrides.map((o) => ({ ...o })),
      control: r.control,
      driven: locks.some((l) => l.pid !== null),
      events: events
        .slice(-300)
        .map((e) => ({ seq: e.seq, at: e.at, type: e.type, actor: e.actor, text: describeEvent(e, spec), data: e.data })),
    };
  }

  const decide = (decision: 'approve' | 'reject') =>
    route<{ wave?: string | undefined; role?: string | undefined; comment?: string | undefined; reason?: string | undefined }>({
      method: 'POST',
      path: `/api/v1/rollouts/{id}/${decision}`,
      operationId: `${decision}Rollout`,
      summary:
        decision === 'approve'
          ? 'Approve a wave of a rollout (never your own change: 403 MERIDIAN_E_APPROVAL_AUTHOR)'
          : 'Reject a wave of a rollout: its gate fails',
      tag: 'rollouts',
      permission: decision,
      action: `${decision} a rollout`,
      body: decision === 'approve' ? S.ApproveBody : S.RejectBody,
      response: { kind: 'json', schema: S.Decision },
      errors: [404, 409, 422],
      handle: async ({ params, body, actor }) => {
        const rollout = await rolloutOf(store, params['id'] ?? '');
        const spec = asSpec(rollout.spec);
        const wave = body.wave ?? spec.config.waves[rollout.wave]?.name ?? '';
        const a = await recordDecision(store, {
          rollout,
          spec,
          wave,
          actor,
          role: body.role,
          decision,
          reason: decision === 'approve' ? body.comment : body.reason,
          now: Date.now(),
        });
        const index = spec.config.waves.findIndex((w) => w.name === a.wave);
        const gate = gateOf(spec, index, Date.now());
        const v = gate ? evaluateApprovals(await store.listApprovals(spec.planHash, a.wave), gate) : null;
        await state.pollStore();
        return {
          approval: { id: a.id, wave: a.wave, actor: a.actor, role: a.role, decision: a.decision, at: a.at, expiresAt: a.expiresAt },
          gate: {
            met: v?.met ?? true,
            approvers: [...(v?.approvers ?? [])],
            needed: v?.needed ?? 0,
            rejectedBy: v?.rejected?.actor ?? null,
          },
        };
      },
    });

  const control = (action: ControlAction, summary: string) =>
    route<{ reason?: string | undefined }>({
      method: 'POST',
      path: `/api/v1/rollouts/{id}/${action}`,
      operationId: `${action}Rollout`,
      summary,
      tag: 'rollouts',
      permission: action,
      action: `${action} a rollout`,
      body: S.ControlBody,
      response: { kind: 'json', schema: S.ControlResult },
      errors: [404, 409],
      handle: async ({ params, body, actor }) => {
        const r = await rolloutOf(store, params['id'] ?? '');
        await requestControl(store, r.id, { action, actor, reason: body.reason, now: Date.now() });
        const driven = (await store.listLocks()).some((l) => l.rolloutId === r.id && l.pid !== null);
        await state.pollStore();
        return {
          rollout: r.id,
          action,
          driven,
          hint: driven
            ? null
            : `no process drives rollout ${r.id} now: run \`meridian rollout --resume ${r.id}\` to carry the ${action} out`,
        };
      },
    });

  const drain = (kind: 'cluster' | 'region') =>
    route<{ drained: boolean; reason?: string | undefined; declareDown?: string[] | undefined }>({
      method: 'POST',
      path: `/api/v1/${kind === 'cluster' ? 'clusters' : 'regions'}/{name}/drain`,
      operationId: `drain${kind === 'cluster' ? 'Cluster' : 'Region'}`,
      summary: `Drain (or undrain) a ${kind}: it takes no new traffic; every router that follows the server applies it, and the fleet's own router (502 when it cannot be told). A drain is an evacuation: the fleet's safety rules are checked first (409 with each rule's numbers when it breaks one)`,
      tag: 'routing',
      permission: 'drain',
      action: `drain a ${kind}`,
      body: S.DrainBody,
      response: { kind: 'json', schema: S.DrainResult },
      errors: [404, 409, 502],
      handle: async ({ params, body, actor }) => {
        const name = params['name'] ?? '';
        const view = await state.drain(kind, name, body.drained, actor, body.reason, { declaredDown: body.declareDown });
        return { name, kind, drained: body.drained, tableVersion: view.tableVersion };
      },
    });

  return [
    route({
      method: 'GET',
      path: '/api/v1/whoami',
      operationId: 'whoami',
      summary: 'Who the token belongs to, its role, and what it may do (the dashboard shows buttons by `can`)',
      tag: 'auth',
      permission: 'read',
      response: { kind: 'json', schema: S.Whoami },
      handle: ({ identity }) => {
        const id = identity as NonNullable<typeof identity>;
        return Promise.resolve({ identity: id.id, via: id.via, roles: [id.role], can: capabilities(id.role) });
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/fleet',
      operationId: 'getFleet',
      summary: 'The fleet in force: regions with their clusters, and services',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.Fleet },
      errors: [503],
      handle: () => {
        const rev = fleetRevision(state);
        const services = new Set<string>();
        for (const c of Object.values(rev.clusters)) for (const s of Object.keys(c.services)) services.add(s);
        return Promise.resolve({
          name: rev.fleet,
          revision: rev.id,
          regions: Object.entries(rev.regions).map(([name, r]) => ({
            name,
            jurisdiction: r.jurisdiction,
            location: { lat: r.location.lat, lon: r.location.lon },
            countries: [...r.countries],
            clusters: Object.entries(rev.clusters)
              .filter(([, c]) => c.region === name)
              .map(([c]) => c),
          })),
          clusters: Object.entries(rev.clusters).map(([name, c]) => ({
            name,
            region: c.region,
            labels: { ...c.labels },
            capacityRps: c.capacity.rps,
          })),
          services: [...services].sort(),
        });
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/revisions',
      operationId: 'listRevisions',
      summary: 'Recorded revisions, newest first',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.RevisionSummary.array() },
      handle: async () => {
        const inForce = state.revision?.id ?? null;
        return (await store.listRevisions()).reverse().map((r) => ({ ...r, inForce: r.id === inForce }));
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/revisions/{id}',
      operationId: 'getRevision',
      summary: 'One revision, whole (what a router following the server loads)',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.RevisionContent },
      errors: [404],
      handle: async ({ params }) => {
        const rev = await state.revisionById(params['id'] ?? '');
        if (!rev)
          throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no revision ${params['id'] ?? ''}`, {
            hint: 'list them with GET /api/v1/revisions',
          });
        return rev;
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/clusters',
      operationId: 'listClusters',
      summary: 'Every cluster: what runs there (per service and track), its health, and whether it is drained',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.Cluster.array() },
      handle: () => Promise.resolve(state.clusters),
    }),
    route({
      method: 'GET',
      path: '/api/v1/routing',
      operationId: 'getRouting',
      summary: 'The routing view: shares of each client region per cluster and version, drains, canaries, flags and endpoints',
      tag: 'routing',
      permission: 'read',
      response: { kind: 'json', schema: S.Routing },
      handle: () => Promise.resolve(state.routing),
    }),
    route({
      method: 'GET',
      path: '/api/v1/traffic',
      operationId: 'getTraffic',
      summary: "Live traffic from the fleet router's counters: rate, error rate and p99 per client region, cluster and version",
      tag: 'routing',
      permission: 'read',
      response: { kind: 'json', schema: S.Traffic },
      handle: () => Promise.resolve(state.traffic),
    }),
    route({
      method: 'GET',
      path: '/api/v1/rollouts',
      operationId: 'listRollouts',
      summary: 'Rollouts, newest first',
      tag: 'rollouts',
      permission: 'read',
      query: [
        { name: 'limit', description: 'at most this many (1..500, default 50)', type: 'integer' },
        { name: 'active', description: '`true`: only unfinished ones', type: 'string' },
      ],
      response: { kind: 'json', schema: S.RolloutSummary.array() },
      errors: [422],
      handle: async ({ url }) => {
        const limit = intParam(url, 'limit', 50, 500);
        const list = await store.listRollouts({ limit, active: url.searchParams.get('active') === 'true' });
        return Promise.all(list.map((r) => state.rolloutSummary(r)));
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/rollouts/{id}',
      operationId: 'getRollout',
      summary: "A rollout: waves and their approvals, current step, canary weights, each gate's verdict with its numbers, events",
      tag: 'rollouts',
      permission: 'read',
      response: { kind: 'json', schema: S.RolloutDetail },
      errors: [404],
      handle: async ({ params }) => rolloutDetail(await rolloutOf(store, params['id'] ?? '')),
    }),
    decide('approve'),
    decide('reject'),
    control('pause', 'Pause a running rollout at its next step'),
    control('resume', 'Resume a paused rollout'),
    control('abort', 'Stop a rollout and roll back every cluster it touched'),
    control('promote', 'Skip the remaining steps of the current wave (an override; needs a reason)'),
    drain('cluster'),
    drain('region'),
    route({
      method: 'GET',
      path: '/api/v1/flags',
      operationId: 'listFlags',
      summary: 'Every flag and its state in every region (operator setting, else the fleet file, else the default)',
      tag: 'flags',
      permission: 'read',
      response: { kind: 'json', schema: S.Flag.array() },
      errors: [503],
      handle: async () => {
        const rev = fleetRevision(state);
        const st = flagState(flagDefinitions(rev), await store.listFlagSettings(rev.fleet));
        return Object.values(st.flags);
      },
    }),
    route<{ enabled: boolean; percent: number; reason?: string | undefined }>({
      method: 'PUT',
      path: '/api/v1/flags/{name}/regions/{region}',
      operationId: 'setFlag',
      summary: 'Set a flag in a region (enabled, and the percentage of users)',
      tag: 'flags',
      permission: 'flag',
      action: 'set a flag',
      body: S.FlagBody,
      response: { kind: 'json', schema: S.Flag },
      errors: [404, 503],
      handle: async ({ params, body, actor }) => {
        const rev = fleetRevision(state);
        const name = params['name'] ?? '';
        const region = params['region'] ?? '';
        const defs = flagDefinitions(rev);
        if (!Object.hasOwn(rev.flags, name)) throw unknownFlag(name, rev.fleet, Object.keys(rev.flags));
        if (!Object.hasOwn(rev.regions, region)) throw unknownRegion(region, rev.fleet, Object.keys(rev.regions));
        const before = flagState(defs, await store.listFlagSettings(rev.fleet)).flags[name]?.regions[region];
        await store.setFlag(
          {
            fleet: rev.fleet,
            flag: name,
            region,
            enabled: body.enabled,
            percent: body.percent,
            was: before ? { enabled: before.enabled, percent: before.percent, source: before.source } : null,
          },
          actor,
          body.reason,
        );
        await state.pollStore();
        return flagState(defs, await store.listFlagSettings(rev.fleet)).flags[name];
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/audit',
      operationId: 'listAudit',
      summary: 'The newest audit entries, and whether the hash chain verifies (and where it breaks)',
      tag: 'audit',
      permission: 'read',
      query: [{ name: 'limit', description: 'at most this many entries, newest first (1..1000, default 100)', type: 'integer' }],
      response: { kind: 'json', schema: S.Audit },
      errors: [422],
      handle: async ({ url }) => {
        const limit = intParam(url, 'limit', 100, 1000);
        const v = await auditVerifier.verify();
        const entries = (await store.listAudit({ limit, newestFirst: true })).map(auditJson);
        return v.ok
          ? { verified: true, count: v.count, headHash: v.headHash, entries }
          : { verified: false, count: v.count, headHash: v.headHash, brokenAt: v.seq, problem: `${v.problem}: ${v.message}`, entries };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/events',
      operationId: 'events',
      summary:
        'Server-sent events: routing, health, traffic, rollout, flag, audit. `Last-Event-ID` resumes; `?types=routing,health` filters; `?access_token=` for EventSource (here only); the stream ends when its token is revoked or expires',
      tag: 'events',
      permission: 'read',
      query: [
        { name: 'types', description: `comma-separated event names (default all): ${EVENT_TYPES.join(', ')}`, type: 'string' },
        { name: 'access_token', description: 'the bearer token, for clients that cannot set headers', type: 'string' },
      ],
      response: { kind: 'sse' },
      errors: [422],
      handle: ({ req, res, url, stillValid }) => {
        const raw = url.searchParams.get('types');
        const types = raw === null || raw === '' ? [...EVENT_TYPES] : raw.split(',').map((t) => t.trim());
        const bad = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
        if (bad.length > 0) {
          throw new ApiError('MERIDIAN_E_API_INVALID', `unknown event type ${bad.join(', ')}`, {
            hint: `the types are: ${EVENT_TYPES.join(', ')}`,
          });
        }
        if (req.method === 'HEAD') {
          // no body to stream: answer the headers and end, rather than hold a subscriber that is never sent anything
          res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' }).end();
          return Promise.resolve(undefined);
        }
        const last = req.headers['last-event-id'];
        hub.subscribe(res, types as EventType[], typeof last === 'string' ? last : url.searchParams.get('lastEventId'), { stillValid });
        return Promise.resolve(undefined);
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/tokens',
      operationId: 'listTokens',
      summary: 'API tokens (never the tokens themselves)',
      tag: 'auth',
      permission: 'tokens',
      action: 'list API tokens',
      response: { kind: 'json', schema: S.Token.array() },
      handle: async () => (await store.listApiTokens()).map(({ hash: _hash, ...t }) => t),
    }),
    route<{ name: string; role: S.TokenBodyT['role']; expiresInHours?: number | undefined }>({
      method: 'POST',
      path: '/api/v1/tokens',
      operationId: 'createToken',
      summary: 'Create an API token; the answer holds the token, once',
      tag: 'auth',
      permission: 'tokens',
      action: 'create API tokens',
      body: S.TokenBody,
      response: { kind: 'json', schema: S.CreatedToken, status: 201 },
      handle: async ({ body, actor }) => {
        const now = new Date();
        const expiresAt =
          body.expiresInHours === undefined ? null : new Date(now.getTime() + body.expiresInHours * 3_600_000).toISOString();
        const { token, record } = newApiToken(body.name, body.role, actor, { now, expiresAt });
        await store.createApiToken(record, actor);
        const { hash: _hash, ...shown } = record;
        return { token, record: { ...shown, revokedAt: null, revokedBy: null } };
      },
    }),
    route({
      method: 'DELETE',
      path: '/api/v1/tokens/{id}',
      operationId: 'revokeToken',
      summary: 'Revoke an API token',
      tag: 'auth',
      permission: 'tokens',
      action: 'revoke API tokens',
      response: { kind: 'json', schema: S.Revoked },
      errors: [404],
      handle: async ({ params, actor }) => {
        const id = params['id'] ?? '';
        if (!(await store.revokeApiToken(id, actor))) {
          throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no unrevoked API token ${id}`, {
            hint: 'list them with GET /api/v1/tokens',
          });
        }
        return { id, revoked: true };
      },
    }),
    route({
      method: 'GET',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics of the control plane (API requests, event subscribers, rollouts, deployments, gate verdicts)',
      tag: 'operations',
      permission: 'read',
      response: { kind: 'text', contentType: 'text/plain; version=0.0.4; charset=utf-8' },
      handle: () => d.registry.metrics(),
    }),
    route({
      method: 'GET',
      path: '/api/v1/openapi.json',
      operationId: 'openapi',
      summary: 'This document',
      tag: 'operations',
      permission: null,
      response: { kind: 'json', schema: S.OpenApiDoc },
      handle: () => Promise.resolve(d.openapi()),
    }),
    route({
      method: 'GET',
      path: '/healthz',
      operationId: 'healthz',
      summary: 'Liveness of the control plane',
      tag: 'operations',
      permission: null,
      response: { kind: 'json', schema: S.Health },
      handle: () => Promise.resolve({ ok: true, version: d.version }),
    }),
  ];
}
