/**
 * The rollout driver: reads the persisted state, performs the effect the state machine asks for through
 * the ports (`effects.ts`), and persists the resulting transition (with its audit entry, and the cluster states it
 * establishes) before anything else happens. Every effect is idempotent, so a holder killed at any point
 * is replaced by `meridian rollout --resume`, which performs the persisted state's effect again and goes
 * on: no step is done twice in the log, none is skipped.
 */
import { randomBytes } from 'node:crypto';
import { RolloutError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import type { Actor, DataMigrationRecord, JsonValue, RolloutEventRecord, RolloutRecord, Store, StoreTx } from '../store/store.js';
import { asState, CREATED, positionOf } from './events.js';
import { acquireLocks, assertHolder, heartbeat, type Holder, lockKey, park, withLocksAudited } from './lock.js';
import { EffectPerformer, type ClusterRecordPlan } from './effects.js';
import type { EnginePorts } from './ports.js';
import { asSpec, type RolloutSpec } from './rollout-spec.js';
import {
  type ControlAction,
  controlRefusal,
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

export interface EngineOptions {
  /** Keep waiting for approvals and for a paused rollout to be resumed, instead of parking it and returning. */
  readonly wait?: boolean;
  /** How long a deploy, promotion or rollback may take to report healthy (default 5 min). */
  readonly healthTimeoutMs?: number;
  /** Between two looks at the store for controls and approvals, and between two status polls (default 200 ms). */
  readonly pollMs?: number;
  /** Between heartbeats of the locks (default 5 s). */
  readonly heartbeatMs?: number;
  /** A holder whose heartbeat is older than this is dead (default 30 s). */
  readonly lockTtlMs?: number;
  /** Called after each transition is persisted (progress, and the crash test's hook). */
  readonly onEvent?: (event: RolloutEventRecord, rollout: RolloutRecord) => void;
}

/** Re-exported: the server's control state reads it from here. */
export { changedServices } from './effects.js';
export type { EnginePorts } from './ports.js';

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
  readonly #effects: EffectPerformer;

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
    this.#effects = new EffectPerformer(ports, { healthTimeoutMs: this.#o.healthTimeoutMs, pollMs: this.#o.pollMs });
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
        const done = await this.#effects.perform(effect, rec, spec);
        if (done === 'interrupted') continue;
        if (done === 'pending') {
          if (this.#o.wait) {
            beat();
            await this.#effects.sleepUnlessControl(id, this.#o.pollMs);
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
 * process drives it), taking over from a holder that died. Audited, and so is a refusal (`rollout.lock.refused`).
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
