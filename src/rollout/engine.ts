/**
 * The rollout driver: reads the persisted state, performs the effect the state machine asks for through
 * the ports, and persists the resulting transition (with its audit entry, and the cluster states it
 * establishes) before anything else happens. Every effect is idempotent, so a driver killed at any point
 * is replaced by `meridian rollout --resume`, which performs the persisted state's effect again and goes
 * on: no step is done twice in the log, none is skipped.
 */
import { randomBytes } from 'node:crypto';
import { RolloutError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import type { RenderedCluster, Revision } from '../render/render.js';
import type { Actor, DataMigrationRecord, JsonValue, RolloutEventRecord, RolloutRecord, Store, StoreTx } from '../store/store.js';
import { isHealthyAt, type ClusterStatus, type Track } from '../targets/target.js';
import { evaluateApprovals, gateOf } from './approvals.js';
import { asState, CREATED, positionOf } from './events.js';
import { acquireLocks, assertHolder, heartbeat, type Holder, lockKey, park, withLocksAudited } from './lock.js';
import { performMigration } from './migration-effect.js';
import type { Analysis, ClusterDriver, EngineClock, MigrationRunner, StepCluster, StepContext, TrafficControl } from './ports.js';
import { asSpec, type RolloutSpec } from './rollout-spec.js';
import {
  type ControlAction,
  controlRefusal,
  type Effect,
  effectOf,
  IllegalTransition,
  initialState,
  isFinal,
  type MachineEvent,
  type MachineState,
  stateLabel,
  stepIndex,
  transition,
} from './state-machine.js';

export interface EnginePorts {
  readonly store: Store;
  readonly driver: ClusterDriver;
  readonly traffic: TrafficControl;
  readonly analysis: Analysis;
  readonly clock: EngineClock;
  /** Runs data migrations' commands; needed only by rollouts that have migrations. */
  readonly migrations?: MigrationRunner;
}

export interface EngineOptions {
  /** Keep waiting for approvals and for a paused rollout to be resumed, instead of parking it and returning. */
  readonly wait?: boolean;
  /** How long a deploy, promotion or rollback may take to report healthy (default 5 min). */
  readonly healthTimeoutMs?: number;
  /** Between two looks at the store for controls and approvals, and between two status polls (default 200 ms). */
  readonly pollMs?: number;
  /** Between heartbeats of the locks (default 5 s). */
  readonly heartbeatMs?: number;
  /** A driver whose heartbeat is older than this is dead (default 30 s). */
  readonly lockTtlMs?: number;
  /** Called after each transition is persisted (progress, and the crash test's hook). */
  readonly onEvent?: (event: RolloutEventRecord, rollout: RolloutRecord) => void;
}

/** How a drive ended. */
export type DriveOutcome = 'promoted' | 'rolled-back' | 'failed' | 'paused' | 'awaiting-approval';

export interface DriveResult {
  readonly outcome: DriveOutcome;
  readonly rollout: RolloutRecord;
  readonly reason: string;
}

/** A new rollout id: time-ordered, unique. */
export function newRolloutId(now: number, kind: 'rollout' | 'rollback' = 'rollout'): string {
  return `${kind === 'rollback' ? 'rb' : 'ro'}-${new Date(now).toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
}

type Performed =
  | { event: MachineEvent; details?: Record<string, JsonValue>; records?: ClusterRecordPlan[]; ledger?: DataMigrationRecord }
  | 'pending'
  | 'interrupted';

interface ClusterRecordPlan {
  readonly cluster: string;
  readonly revisionId: string;
  readonly state: RenderedCluster;
}

/**
 * Records a new rollout of `spec`: locks, the rollout, its first event and audit entry, in one transaction.
 * Refused locks are audited (`rollout.lock.refused`) on their own.
 */
export async function createRollout(
  store: Store,
  spec: RolloutSpec,
  holder: Holder,
  opts: { now: number; lockTtlMs?: number; isAlive?: (pid: number) => boolean | undefined },
): Promise<RolloutRecord> {
  const state = initialState(spec.config, opts.now);
  const at = new Date(opts.now).toISOString();
  const toRevision = spec.revision;
  const record: RolloutRecord = {
    id: holder.rolloutId,
    fleet: spec.fleet,
    kind: spec.kind,
    services: spec.services,
    planHash: spec.planHash,
    fromRevision: spec.previous,
    toRevision,
    author: holder.actor.id,
    state: stateLabel(state),
    wave: state.phase.wave,
    step: stepIndex(state),
    machine: state as unknown as JsonValue,
    spec: spec as unknown as JsonValue,
    control: null,
    createdAt: at,
    updatedAt: at,
    finishedAt: isFinal(state) ? at : null,
  };
  const attempt = { attempt: 'start', kind: spec.kind, fleet: spec.fleet, services: [...spec.services] };
  return withLocksAudited(store, holder, attempt, async (tx) => {
    const keys = spec.services.map((s) => lockKey(spec.fleet, s));
    const acquired = await acquireLocks(tx, keys, holder, {
      now: opts.now,
      ttlMs: opts.lockTtlMs ?? 30_000,
      ...(opts.isAlive ? { isAlive: opts.isAlive } : {}),
    });
    for (const id of acquired.abandoned) await abandon(tx, id, holder, opts.now);
    await tx.insertRollout(record);
    await tx.appendRolloutEvent({ rolloutId: record.id, at, type: CREATED, actor: holder.actor.id, data: { to: positionOf(state.phase) } });
    await tx.appendAudit({
      actor: holder.actor,
      action: spec.kind === 'rollback' ? 'rollback.start' : 'rollout.start',
      subject: record.id,
      data: {
        fleet: spec.fleet,
        planHash: spec.planHash,
        from: spec.previous,
        to: toRevision,
        waves: spec.config.waves.map((w) => w.name),
        services: [...spec.services],
        host: holder.host,
        pid: holder.pid,
      },
    });
    if (isFinal(state)) await tx.releaseLocks(record.id);
    return record;
  });
}

/** Marks a rollout whose driver died and whose locks another rollout took over as failed (abandoned). */
async function abandon(tx: StoreTx, id: string, by: Holder, now: number): Promise<void> {
  const r = await tx.getRollout(id);
  if (!r) return;
  const state = asState(r.machine);
  const reason = `abandoned: its driver died and rollout ${by.rolloutId} took over its locks`;
  const next: MachineState = { ...state, phase: { kind: 'done', wave: state.phase.wave, outcome: 'failed', reason } };
  const at = new Date(now).toISOString();
  await tx.appendRolloutEvent({
    rolloutId: id,
    at,
    type: 'abandoned',
    actor: by.actor.id,
    data: { by: by.rolloutId, to: positionOf(next.phase) },
  });
  await tx.updateRollout(id, { machine: next as unknown as JsonValue, state: 'failed', updatedAt: at, finishedAt: at, control: null });
  await tx.appendAudit({ actor: by.actor, action: 'rollout.abandoned', subject: id, reason, data: { by: by.rolloutId } });
}

/**
 * Asks for a control (pause, resume, abort, promote). Refused at once when the rollout's state does not
 * accept it; otherwise recorded (audited) for the driver to carry out at its next look.
 */
export async function requestControl(
  store: Store,
  id: string,
  req: { action: ControlAction; actor: Actor; reason?: string | undefined; now: number },
): Promise<RolloutRecord> {
  return store.withTransaction(async (tx) => {
    const r = await tx.getRollout(id);
    if (!r)
      throw new RolloutError('MERIDIAN_E_ROLLOUT_UNKNOWN', `there is no rollout ${id}`, {
        hint: 'list rollouts with `meridian rollout status`',
      });
    const spec = asSpec(r.spec);
    const refusal = controlRefusal(spec.config, asState(r.machine), req.action);
    if (refusal) throw new RolloutError('MERIDIAN_E_ROLLOUT_CONTROL', `cannot ${req.action} rollout ${id}: ${refusal}`);
    if (req.action === 'promote' && !req.reason) {
      throw new RolloutError(
        'MERIDIAN_E_ROLLOUT_CONTROL',
        'promote skips the remaining steps of a wave and is recorded as an override: it needs a reason',
        {
          hint: 'add --reason "why the remaining steps are skipped"',
        },
      );
    }
    const control: JsonValue = { action: req.action, by: req.actor.id, reason: req.reason ?? null, at: new Date(req.now).toISOString() };
    await tx.updateRollout(id, { control });
    await tx.appendAudit({
      actor: req.actor,
      action: req.action === 'promote' ? 'rollout.override' : `rollout.${req.action}-requested`,
      subject: id,
      reason: req.reason,
      data: { action: req.action },
    });
    return { ...r, control };
  });
}

/** Drives rollouts through the ports. */
export class RolloutEngine {
  readonly #p: EnginePorts;
  readonly #o: Required<Omit<EngineOptions, 'onEvent'>> & { onEvent: EngineOptions['onEvent'] | undefined };
  readonly #revisions = new Map<string, Revision>();

  constructor(ports: EnginePorts, opts: EngineOptions = {}) {
    this.#p = ports;
    this.#o = {
      wait: opts.wait ?? false,
      healthTimeoutMs: opts.healthTimeoutMs ?? 300_000,
      pollMs: opts.pollMs ?? 200,
      heartbeatMs: opts.heartbeatMs ?? 5000,
      lockTtlMs: opts.lockTtlMs ?? 30_000,
      onEvent: opts.onEvent,
    };
  }

  /**
   * Drives rollout `id` until it finishes, or parks it (waiting for approvals or an operator) unless
   * `wait`. The caller must hold its locks (see {@link createRollout} and {@link takeOver}).
   */
  async drive(id: string, holder: Holder): Promise<DriveResult> {
    const { store, clock } = this.#p;
    let beating: Promise<void> | null = null;
    let lastBeat = clock.now();
    const beat = (): void => {
      if (beating || clock.now() - lastBeat < this.#o.heartbeatMs) return;
      lastBeat = clock.now();
      beating = store
        .withTransaction((tx) => heartbeat(tx, holder, clock.now()))
        .catch(() => undefined)
        .finally(() => {
          beating = null;
        });
    };
    const timer = setInterval(beat, Math.max(50, Math.floor(this.#o.heartbeatMs / 2)));
    timer.unref();
    try {
      for (;;) {
        const rec = await this.#load(id);
        const spec = asSpec(rec.spec);
        const state = asState(rec.machine);
        if (rec.control !== null) {
          await this.#control(rec, spec, state, holder);
          continue;
        }
        if (isFinal(state)) {
          const p = state.phase as Extract<MachineState['phase'], { kind: 'done' }>;
          return { outcome: p.outcome, rollout: rec, reason: p.reason };
        }
        const effect = effectOf(spec.config, state);
        if (effect === null) {
          if (this.#o.wait) {
            beat();
            await clock.sleep(this.#o.pollMs);
            continue;
          }
          await store.withTransaction((tx) => park(tx, holder, clock.now()));
          const reason = state.phase.kind === 'paused' ? state.phase.reason : '';
          return { outcome: 'paused', rollout: await this.#load(id), reason };
        }
        const done = await this.#perform(effect, rec, spec);
        if (done === 'interrupted') continue;
        if (done === 'pending') {
          if (this.#o.wait) {
            beat();
            await this.#sleepUnlessControl(id, this.#o.pollMs);
            continue;
          }
          await store.withTransaction((tx) => park(tx, holder, clock.now()));
          return {
            outcome: 'awaiting-approval',
            rollout: await this.#load(id),
            reason: `wave ${spec.config.waves[state.phase.wave]?.name} waits for approvals`,
          };
        }
        await this.#persist(rec, state, spec, holder, done.event, done.details ?? {}, done.records ?? [], undefined, done.ledger);
      }
    } finally {
      clearInterval(timer);
      await (beating as Promise<void> | null);
    }
  }

  async #load(id: string): Promise<RolloutRecord> {
    const r = await this.#p.store.getRollout(id);
    if (!r) throw new RolloutError('MERIDIAN_E_ROLLOUT_UNKNOWN', `there is no rollout ${id}`);
    return r;
  }

  async #control(rec: RolloutRecord, spec: RolloutSpec, state: MachineState, holder: Holder): Promise<void> {
    const c = rec.control as { action: ControlAction; by: string; reason: string | null };
    const event: MachineEvent = {
      type: 'control',
      at: this.#p.clock.now(),
      action: c.action,
      by: c.by,
      ...(c.reason ? { reason: c.reason } : {}),
    };
    try {
      transition(spec.config, state, event);
    } catch (err) {
      if (!(err instanceof IllegalTransition)) throw err;
      await this.#p.store.withTransaction(async (tx) => {
        await assertHolder(tx, holder);
        await tx.updateRollout(rec.id, { control: null });
        await tx.appendAudit({
          actor: { id: c.by },
          action: 'rollout.control-refused',
          subject: rec.id,
          reason: err.message,
          data: { action: c.action },
        });
      });
      return;
    }
    await this.#persist(rec, state, spec, holder, event, { action: c.action, reason: c.reason }, [], c.by);
  }

  async #persist(
    rec: RolloutRecord,
    state: MachineState,
    spec: RolloutSpec,
    holder: Holder,
    event: MachineEvent,
    details: Record<string, JsonValue>,
    records: readonly ClusterRecordPlan[],
    actorId?: string,
    ledger?: DataMigrationRecord,
  ): Promise<void> {
    const next = transition(spec.config, state, event);
    const at = new Date(event.at).toISOString();
    const actor: Actor = actorId ? { id: actorId } : holder.actor;
    const final = isFinal(next);
    const data: Record<string, JsonValue> = { ...eventData(event), ...details, from: positionOf(state.phase), to: positionOf(next.phase) };
    const saved = await this.#p.store.withTransaction(async (tx) => {
      const cur = await tx.getRollout(rec.id);
      if (!cur || canonicalJson(cur.machine) !== canonicalJson(rec.machine)) {
        throw new RolloutError('MERIDIAN_E_ROLLOUT_LEASE_LOST', `rollout ${rec.id} was changed by another process; this one stops`);
      }
      await assertHolder(tx, holder);
      for (const r of records) {
        await tx.recordClusterState(r.cluster, r.revisionId, r.state, 'healthy', actor, `${spec.kind} ${rec.id}`);
      }
      if (ledger) await tx.putDataMigration(ledger); // with the transition: the ledger and the machine agree
      const ev = await tx.appendRolloutEvent({ rolloutId: rec.id, at, type: event.type, actor: actor.id, data });
      await tx.updateRollout(rec.id, {
        machine: next as unknown as JsonValue,
        state: stateLabel(next),
        wave: next.phase.wave,
        step: stepIndex(next),
        updatedAt: at,
        ...(final ? { finishedAt: at } : {}),
        ...(event.type === 'control' ? { control: null } : {}),
      });
      await tx.appendAudit({
        actor,
        action: `${spec.kind}.${event.type}`,
        subject: rec.id,
        reason: event.type === 'control' ? event.reason : undefined,
        data: { seq: ev.seq, ...data },
      });
      if (final) await tx.releaseLocks(rec.id);
      else await heartbeat(tx, holder, this.#p.clock.now());
      return { ev, rollout: (await tx.getRollout(rec.id)) as RolloutRecord };
    });
    this.#o.onEvent?.(saved.ev, saved.rollout);
  }

  // ---------------------------------------------------------------- effects

  async #perform(effect: Effect, rec: RolloutRecord, spec: RolloutSpec): Promise<Performed> {
    const { clock } = this.#p;
    try {
      switch (effect.kind) {
        case 'check-approvals': {
          const gate = gateOf(spec, effect.wave, clock.now());
          if (!gate) return { event: { type: 'approvals-met', at: clock.now(), approvers: [] } };
          const v = evaluateApprovals(await this.#p.store.listApprovals(spec.planHash, gate.wave), gate);
          if (v.rejected) {
            return {
              event: { type: 'approval-rejected', at: clock.now(), by: v.rejected.actor, reason: v.rejected.reason ?? 'no reason given' },
              details: { role: v.rejected.role, approval: v.rejected.id },
            };
          }
          if (!v.met) return 'pending';
          return { event: { type: 'approvals-met', at: clock.now(), approvers: v.approvers } };
        }
        case 'deploy-canary': {
          const plans = await Promise.all(effect.clusters.map((c) => this.#clusterPlan(spec, c)));
          for (const p of plans) {
            if (p.changed.length > 0) {
              await this.#p.driver.apply({
                cluster: p.cluster,
                revisionId: p.toRevision,
                state: p.toState,
                track: 'canary',
                services: p.changed,
              });
            }
          }
          const ok = await this.#waitHealthy(
            rec.id,
            plans.map((p) => ({ cluster: p.cluster, services: p.changed, track: 'canary' as const, revisionId: p.toRevision, checks: 1 })),
          );
          if (ok !== true)
            return ok === 'interrupted'
              ? ok
              : { event: { type: 'effect-failed', at: clock.now(), reason: `the canary did not become healthy: ${ok}` } };
          return { event: { type: 'canary-ready', at: clock.now() } };
        }
        case 'set-weight': {
          const clusters = await this.#stepClusters(spec, effect.clusters);
          for (const c of clusters) {
            for (const svc of c.services) await this.#p.traffic.setCanary(svc, c.cluster, effect.weight, c.versions[svc]?.canary ?? '');
          }
          // a new canary's warm-up (rollout.analysis.warmup): it takes traffic, but the window and the pause start after it
          const warm = clock.now() + (effect.warmupMs ?? 0);
          for (let left = warm - clock.now(); left > 0; left = warm - clock.now()) {
            if (await this.#sleepUnlessControl(rec.id, Math.min(left, this.#o.pollMs))) return 'interrupted';
          }
          // the step's window starts now: what the analysis needs to measure it from here (the router's counters) is persisted with it
          const mark = this.#p.analysis.begin ? await this.#p.analysis.begin({ rolloutId: rec.id, clusters, now: clock.now() }) : null;
          return {
            event: { type: 'weight-set', at: clock.now() },
            details: {
              weight: effect.weight,
              clusters: [...effect.clusters],
              ...(effect.warmupMs ? { warmupMs: effect.warmupMs } : {}),
              ...(mark === null ? {} : { mark }),
            },
          };
        }
        case 'wait': {
          for (;;) {
            const left = effect.until - clock.now();
            if (left <= 0) return { event: { type: 'timer-elapsed', at: clock.now() } };
            if (await this.#sleepUnlessControl(rec.id, Math.min(left, this.#o.pollMs))) return 'interrupted';
          }
        }
        case 'judge': {
          const wave = spec.config.waves[effect.wave];
          const step = await this.#stepSoFar(rec.id);
          const ctx: StepContext = {
            rolloutId: rec.id,
            fleet: spec.fleet,
            wave: { index: effect.wave, name: wave?.name ?? '' },
            step: { index: effect.step, weight: effect.weight },
            attempt: effect.attempt,
            clusters: await this.#stepClusters(spec, effect.clusters),
            toRevision: spec.revision,
            now: clock.now(),
            since: step.since ?? clock.now(),
            mark: step.mark,
            history: step.history,
            final: effect.final,
            ...(effect.sampleWait ? { sampleWait: effect.sampleWait } : {}),
          };
          let v;
          try {
            v = await this.#p.analysis.judge(ctx);
          } catch (err) {
            v = { outcome: 'error' as const, metrics: [], reason: (err as Error).message };
          }
          return {
            event: { type: 'verdict', at: clock.now(), outcome: v.outcome, ...(v.reason ? { reason: v.reason } : {}) },
            details: { metrics: JSON.parse(canonicalJson(v.metrics)) as JsonValue, weight: effect.weight, final: effect.final },
          };
        }
        case 'promote': {
          const plans = await Promise.all(effect.clusters.map((c) => this.#clusterPlan(spec, c)));
          for (const p of plans)
            await this.#p.driver.apply({ cluster: p.cluster, revisionId: p.toRevision, state: p.toState, track: 'stable' });
          const ok = await this.#waitHealthy(
            rec.id,
            plans.map((p) => ({
              cluster: p.cluster,
              services: Object.keys(p.toState.services),
              track: 'stable' as const,
              revisionId: p.toRevision,
              checks: spec.healthyChecks,
            })),
          );
          if (ok !== true)
            return ok === 'interrupted'
              ? ok
              : { event: { type: 'effect-failed', at: clock.now(), reason: `the promoted revision did not become healthy: ${ok}` } };
          // the routers follow the new revision's policies (residency, steering, failover, health checks) from now on
          await this.#route(spec.revision, Object.fromEntries(plans.map((p) => [p.cluster, p.toState])));
          for (const p of plans) {
            for (const svc of p.changed) await this.#p.traffic.clear(svc, p.cluster);
            await this.#p.driver.remove({ cluster: p.cluster, track: 'canary' });
          }
          return {
            event: { type: 'promoted', at: clock.now() },
            details: { clusters: plans.map((p) => p.cluster), revision: spec.revision },
            records: plans.map((p) => ({ cluster: p.cluster, revisionId: p.toRevision, state: p.toState })),
          };
        }
        case 'migrate':
          return await performMigration({ store: this.#p.store, clock, runner: this.#p.migrations }, effect, rec, spec);
        case 'rollback-cluster': {
          const p = await this.#clusterPlan(spec, effect.cluster);
          const services = new Set([...Object.keys(p.toState.services), ...Object.keys(p.fromState?.services ?? {})]);
          for (const svc of services) await this.#p.traffic.clear(svc, p.cluster);
          await this.#p.driver.remove({ cluster: p.cluster, track: 'canary' });
          if (p.fromRevision === null || !p.fromState) {
            await this.#p.driver.remove({ cluster: p.cluster, track: 'stable' });
            await this.#routeAfterRollback(spec, p.cluster, undefined);
            return { event: { type: 'cluster-rolled-back', at: clock.now(), cluster: p.cluster }, details: { revision: null } };
          }
          await this.#p.driver.apply({ cluster: p.cluster, revisionId: p.fromRevision, state: p.fromState, track: 'stable' });
          const ok = await this.#waitHealthy(rec.id, [
            {
              cluster: p.cluster,
              services: Object.keys(p.fromState.services),
              track: 'stable',
              revisionId: p.fromRevision,
              checks: spec.healthyChecks,
            },
          ]);
          if (ok === 'interrupted') return ok;
          if (ok !== true)
            return {
              event: { type: 'effect-failed', at: clock.now(), reason: `${p.cluster} did not report ${p.fromRevision} healthy: ${ok}` },
            };
          await this.#routeAfterRollback(spec, p.cluster, p.fromState);
          return {
            event: { type: 'cluster-rolled-back', at: clock.now(), cluster: p.cluster },
            details: { revision: p.fromRevision },
            records: [{ cluster: p.cluster, revisionId: p.fromRevision, state: p.fromState }],
          };
        }
      }
    } catch (err) {
      if (err instanceof RolloutError) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      return { event: { type: 'effect-failed', at: clock.now(), reason: reason.slice(0, 500) } };
    }
  }

  /**
   * Points the routers at what the fleet runs now: each cluster's services as the store records them (with
   * `changes`: the clusters just promoted, or just returned — null: emptied), under the routing policies
   * (routing, regions, flags) of revision `policies`, whose id the router then reports. The routing table
   * takes each cluster's stable version from this, so it must be what the cluster runs, not the target.
   */
  async #route(policies: string, changes: Readonly<Record<string, RenderedCluster | null>>): Promise<void> {
    const setRevision = this.#p.traffic.setRevision?.bind(this.#p.traffic);
    if (!setRevision) return;
    const rev = await this.#revision(policies);
    const clusters: Record<string, RenderedCluster> = { ...rev.clusters };
    for (const [c, s] of Object.entries(await this.#p.store.clusterStates())) if (s) clusters[c] = s.state;
    for (const [c, s] of Object.entries(changes)) {
      if (s) clusters[c] = s;
      else delete clusters[c];
    }
    await setRevision({ ...rev, clusters });
  }

  /**
   * After a cluster is returned: the routers keep the new revision's policies while some cluster still runs
   * it (a promoted wave that stays), else go back to the previous revision's.
   */
  async #routeAfterRollback(spec: RolloutSpec, cluster: string, state: RenderedCluster | undefined): Promise<void> {
    const states = await this.#p.store.clusterStates();
    const stays = Object.entries(spec.to).some(([c, rev]) => c !== cluster && states[c]?.revisionId === rev && spec.from[c] !== rev);
    await this.#route(stays ? spec.revision : (spec.previous ?? spec.revision), { [cluster]: state ?? null });
  }

  /** The current step's window so far: when its weight was set, the analysis's mark then, and its verdicts since. */
  async #stepSoFar(id: string): Promise<{ since: number | null; mark: JsonValue | null; history: JsonValue[] }> {
    const events = await this.#p.store.listRolloutEvents(id);
    let start = -1;
    for (let i = events.length - 1; i >= 0; i--) {
      if (events[i]?.type === 'weight-set') {
        start = i;
        break;
      }
    }
    if (start < 0) return { since: null, mark: null, history: [] };
    const began = events[start] as RolloutEventRecord;
    const data = (began.data ?? {}) as Record<string, JsonValue>;
    const history = events
      .slice(start + 1)
      .filter((e) => e.type === 'verdict')
      .map((e) => ((e.data ?? {}) as Record<string, JsonValue>)['metrics'] ?? []);
    return { since: Date.parse(began.at), mark: data['mark'] ?? null, history };
  }

  /** The batch's clusters as the analysis sees them: the services that run a canary and their versions. */
  async #stepClusters(spec: RolloutSpec, clusters: readonly string[]): Promise<StepCluster[]> {
    return Promise.all(
      clusters.map(async (c) => {
        const p = await this.#clusterPlan(spec, c);
        const versions: Record<string, { canary: string; baseline: string | null }> = {};
        for (const svc of p.changed) {
          versions[svc] = { canary: p.toState.services[svc]?.version ?? '', baseline: p.fromState?.services[svc]?.version ?? null };
        }
        return { cluster: c, services: p.changed, toRevision: p.toRevision, fromRevision: p.fromRevision, versions };
      }),
    );
  }

  /** Sleeps up to `ms`; true when a control is waiting (the caller should return to the loop). */
  async #sleepUnlessControl(id: string, ms: number): Promise<boolean> {
    await this.#p.clock.sleep(ms);
    const r = await this.#p.store.getRollout(id);
    return r !== undefined && r.control !== null;
  }

  /** Waits until every listed track reports its revision healthy; true, 'interrupted', or why not (timeout). */
  async #waitHealthy(
    id: string,
    wants: readonly { cluster: string; services: readonly string[]; track: Track; revisionId: string; checks: number }[],
  ): Promise<true | 'interrupted' | string> {
    const { clock } = this.#p;
    const deadline = clock.now() + this.#o.healthTimeoutMs;
    for (;;) {
      const statuses = new Map<string, ClusterStatus>();
      let missing: string | null = null;
      for (const w of wants) {
        if (w.services.length === 0) continue;
        let s = statuses.get(w.cluster);
        if (!s) statuses.set(w.cluster, (s = await this.#p.driver.status(w.cluster)));
        const bad = w.services.find((svc) => !isHealthyAt(s, svc, w.track, w.revisionId, w.checks));
        if (bad !== undefined) {
          const t = s.services[bad]?.[w.track];
          missing = `${w.cluster}/${bad} (${w.track}) ${
            t
              ? `runs ${t.revisionId}, ${t.readyReplicas}/${t.desiredReplicas} ready, ${t.consecutiveHealthyChecks}/${w.checks} checks${t.lastError ? `, last error: ${t.lastError}` : ''}`
              : 'is not running'
          }`;
          break;
        }
      }
      if (missing === null) return true;
      if (clock.now() >= deadline) return `timed out after ${Math.round(this.#o.healthTimeoutMs / 1000)} s: ${missing}`;
      if (await this.#sleepUnlessControl(id, this.#o.pollMs)) return 'interrupted';
    }
  }

  async #revision(id: string): Promise<Revision> {
    let r = this.#revisions.get(id);
    if (!r) {
      r = await this.#p.store.getRevision(id);
      if (!r)
        throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `revision ${id} is not recorded in the store`, {
          hint: 'record it with `meridian plan`',
        });
      this.#revisions.set(id, r);
    }
    return r;
  }

  async #clusterPlan(
    spec: RolloutSpec,
    cluster: string,
  ): Promise<{
    cluster: string;
    toRevision: string;
    toState: RenderedCluster;
    fromRevision: string | null;
    fromState: RenderedCluster | undefined;
    changed: string[];
  }> {
    const toRevision = spec.to[cluster];
    if (toRevision === undefined) throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `the rollout does not move cluster ${cluster}`);
    const toState = (await this.#revision(toRevision)).clusters[cluster];
    if (!toState) throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `revision ${toRevision} has no cluster ${cluster}`);
    const fromRevision = spec.from[cluster] ?? null;
    const fromState = fromRevision === null ? undefined : (await this.#revision(fromRevision)).clusters[cluster];
    return { cluster, toRevision, toState, fromRevision, fromState, changed: changedServices(fromState, toState) };
  }
}

/** Services whose rendered spec differs between two states of a cluster (or that are new), sorted. */
export function changedServices(from: RenderedCluster | undefined, to: RenderedCluster): string[] {
  return Object.keys(to.services)
    .filter((s) => {
      const before = from?.services[s];
      return !before || canonicalJson(before) !== canonicalJson(to.services[s]);
    })
    .sort();
}

function eventData(e: MachineEvent): Record<string, JsonValue> {
  switch (e.type) {
    case 'approvals-met':
      return { approvers: [...e.approvers] };
    case 'approval-rejected':
      return { by: e.by, reason: e.reason };
    case 'verdict':
      return { outcome: e.outcome, reason: e.reason ?? null };
    case 'cluster-rolled-back':
      return { cluster: e.cluster };
    case 'migrated':
      return { migration: e.migration, ran: e.ran };
    case 'migration-reverted':
      return { migration: e.migration };
    case 'effect-failed':
      return { reason: e.reason };
    case 'control':
      return { action: e.action, by: e.by };
    default:
      return {};
  }
}

/**
 * Takes the locks of an existing rollout for this process (resume, or an operator's control when no
 * process drives it), taking over from a driver that died. Audited, and so is a refusal (`rollout.lock.refused`).
 */
export async function takeOver(
  store: Store,
  id: string,
  holder: Holder,
  opts: { now: number; lockTtlMs?: number; isAlive?: (pid: number) => boolean | undefined },
): Promise<RolloutRecord> {
  return withLocksAudited(store, holder, { attempt: 'resume' }, async (tx) => {
    const r = await tx.getRollout(id);
    if (!r)
      throw new RolloutError('MERIDIAN_E_ROLLOUT_UNKNOWN', `there is no rollout ${id}`, {
        hint: 'list rollouts with `meridian rollout status`',
      });
    const spec = asSpec(r.spec);
    if (isFinal(asState(r.machine))) return r;
    const acquired = await acquireLocks(
      tx,
      spec.services.map((s) => lockKey(spec.fleet, s)),
      holder,
      { now: opts.now, ttlMs: opts.lockTtlMs ?? 30_000, ...(opts.isAlive ? { isAlive: opts.isAlive } : {}) },
    );
    for (const other of acquired.abandoned) await abandon(tx, other, holder, opts.now);
    await tx.appendAudit({ actor: holder.actor, action: `${spec.kind}.resume`, subject: id, data: { host: holder.host, pid: holder.pid } });
    return r;
  });
}
