/**
 * The API's rollouts: the list, one rollout in detail (waves, approvals, weights, each gate's verdict,
 * events), approving or rejecting a wave (src/rollout/approvals.ts) and the controls pause, resume, abort
 * and promote (the engine's `requestControl`: the rollout's driver carries them out).
 */
import { evaluateApprovals, gateOf, recordDecision } from '../../rollout/approvals.js';
import { requestControl } from '../../rollout/engine.js';
import { describeEvent } from '../../rollout/events.js';
import { asSpec } from '../../rollout/rollout-spec.js';
import type { ControlAction } from '../../rollout/state-machine.js';
import { rolloutView } from '../../rollout/summary.js';
import type { JsonValue, RolloutRecord } from '../../store/store.js';
import type { RouteSpec } from '../route.js';
import * as S from '../schemas.js';
import { intParam, rolloutOf, route, type RouteDeps } from './kit.js';

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

/** The rollout routes. */
export function rolloutRoutes(d: RouteDeps): RouteSpec[] {
  const { store, state } = d;

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

  return [
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
  ];
}
