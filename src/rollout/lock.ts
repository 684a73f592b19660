/**
 * Mutual exclusion of rollouts: a rollout holds a lock on every service it touches until it finishes.
 * The process that drives it is named in the lock (host, pid, a random token) and keeps a heartbeat; a
 * lock whose holder died (heartbeat older than the TTL, or its pid gone on this host) is taken over in
 * one transaction, audited. A rollout parked for approval or by an operator keeps its locks, driven by
 * no process, until it is resumed or aborted.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { RolloutError } from '../errors.js';
import type { Actor, JsonValue, LockRecord, Store, StoreTx } from '../store/store.js';
import { FINAL_STATES } from './events.js';
import { refuseAudited } from './refusal.js';

/** The process driving a rollout. */
export interface Holder {
  readonly rolloutId: string;
  readonly actor: Actor;
  readonly host: string;
  readonly pid: number;
  /** Random per driving process: tells this process's hold from an earlier one with a reused pid. */
  readonly token: string;
}

export interface LockPolicy {
  /** Epoch ms. */
  readonly now: number;
  /** A holder whose heartbeat is older than this is dead (default 30 s). */
  readonly ttlMs: number;
  /** Whether a pid runs on this host; undefined when it cannot be told. */
  readonly isAlive?: (pid: number) => boolean | undefined;
  readonly host?: string;
}

/** What acquiring found: the locks taken over from dead holders, and rollouts they abandoned. */
export interface Acquired {
  readonly takenOver: readonly LockRecord[];
  readonly abandoned: readonly string[];
}

/** A holder for this process. */
export function holderFor(rolloutId: string, actor: Actor): Holder {
  return { rolloutId, actor, host: hostname(), pid: process.pid, token: randomBytes(12).toString('hex') };
}

/** The lock key of a service. */
export function lockKey(fleet: string, service: string): string {
  return `${fleet}/${service}`;
}

/** Whether `pid` runs on this machine (signal 0). */
export function pidAlive(pid: number): boolean | undefined {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    return code === 'EPERM' ? true : undefined;
  }
}

/** Why the holder named in a lock is dead, or null when it may be alive. */
export function deadHolder(lock: LockRecord, policy: LockPolicy): string | null {
  if (lock.pid === null) return null;
  const host = policy.host ?? hostname();
  if (lock.host === host && (policy.isAlive ?? pidAlive)(lock.pid) === false) return `pid ${lock.pid} is gone on ${host}`;
  const age = policy.now - Date.parse(lock.heartbeatAt);
  if (age > policy.ttlMs) return `its last heartbeat was ${Math.round(age / 1000)} s ago (ttl ${Math.round(policy.ttlMs / 1000)} s)`;
  return null;
}

function describeHolder(lock: LockRecord, state: string | undefined, now: number): string {
  const holder =
    lock.pid === null
      ? 'no process drives it now'
      : `driven by pid ${lock.pid} on host ${lock.host}, last heartbeat ${Math.max(0, Math.round((now - Date.parse(lock.heartbeatAt)) / 1000))} s ago`;
  return `rollout ${lock.rolloutId} (started by ${lock.actor}, ${state ?? 'unknown state'}, holding it since ${lock.acquiredAt}; ${holder})`;
}

/**
 * What a MERIDIAN_E_ROLLOUT_LOCKED error from {@link acquireLocks} was refused by, for its audit entry.
 * Kept beside the error rather than on it, so that callers see the very same RolloutError as before.
 */
const refusedBy = new WeakMap<RolloutError, { readonly key: string; readonly holder: LockRecord; readonly state: string }>();

function locked(message: string, hint: string, lock: LockRecord, state: string): RolloutError {
  const err = new RolloutError('MERIDIAN_E_ROLLOUT_LOCKED', message, { hint });
  refusedBy.set(err, { key: lock.key, holder: lock, state });
  return err;
}

/**
 * Runs `fn` — which takes locks with {@link acquireLocks} — in one write transaction. When the locks are
 * refused (MERIDIAN_E_ROLLOUT_LOCKED), that transaction is rolled back, the refusal is audited in a
 * transaction of its own (`rollout.lock.refused`: who asked, for which rollout, and the holder, with
 * `attempt`'s details), and the same error is thrown.
 */
export async function withLocksAudited<T>(
  store: Store,
  holder: Holder,
  attempt: { readonly [key: string]: JsonValue },
  fn: (tx: StoreTx) => Promise<T>,
): Promise<T> {
  try {
    return await store.withTransaction(fn);
  } catch (err) {
    const refusal = err instanceof RolloutError ? refusedBy.get(err) : undefined;
    if (!refusal) throw err;
    const refused = err as RolloutError;
    const h = refusal.holder;
    const data: JsonValue = {
      ...attempt,
      code: refused.code,
      host: holder.host,
      pid: holder.pid,
      key: refusal.key,
      holder: {
        rollout: h.rolloutId,
        actor: h.actor,
        state: refusal.state,
        host: h.host,
        pid: h.pid,
        acquiredAt: h.acquiredAt,
        heartbeatAt: h.heartbeatAt,
      },
    };
    return refuseAudited(
      store,
      { actor: holder.actor, action: 'rollout.lock.refused', subject: holder.rolloutId, reason: refused.message, data },
      refused,
    );
  }
}

/**
 * Takes the locks `keys` for `holder` inside a write transaction, or throws MERIDIAN_E_ROLLOUT_LOCKED
 * naming the holder. Locks of finished rollouts are stale and taken; locks of a dead holder are taken
 * over (the other rollout, when it is not this one, is recorded as abandoned by the caller). Run that
 * transaction with {@link withLocksAudited}, so that a refusal is audited.
 */
export async function acquireLocks(tx: StoreTx, keys: readonly string[], holder: Holder, policy: LockPolicy): Promise<Acquired> {
  const nowIso = new Date(policy.now).toISOString();
  const existing = await tx.listLocks(keys);
  const takenOver: LockRecord[] = [];
  const abandoned = new Set<string>();
  for (const lock of existing) {
    if (lock.rolloutId === holder.rolloutId && lock.token === holder.token) continue;
    const other = await tx.getRollout(lock.rolloutId);
    if (!other || FINAL_STATES.includes(other.state)) continue; // left behind by a finished rollout
    const dead = deadHolder(lock, policy);
    if (lock.rolloutId === holder.rolloutId) {
      const sameProcess = lock.pid === holder.pid && lock.host === holder.host;
      if (lock.pid === null || dead || sameProcess) {
        if (dead) takenOver.push(lock);
        continue;
      }
      throw locked(
        `rollout ${lock.rolloutId} is already being driven: ${describeHolder(lock, other.state, policy.now)}`,
        'let that process carry on (watch it with `meridian rollout status`); if it is hung, stop it, and resume after the lock TTL',
        lock,
        other.state,
      );
    }
    if (dead) {
      takenOver.push(lock);
      abandoned.add(lock.rolloutId);
      continue;
    }
    const service = lock.key.slice(lock.key.indexOf('/') + 1);
    throw locked(
      `service ${service} is held by ${describeHolder(lock, other.state, policy.now)}; two rollouts of the same service cannot run at once`,
      lock.pid === null
        ? `resume it (\`meridian rollout resume --rollout ${lock.rolloutId}\`) or abort it (\`meridian rollout abort --rollout ${lock.rolloutId}\`) first`
        : `wait for it to finish, or abort it with \`meridian rollout abort --rollout ${lock.rolloutId}\`; a holder that died is taken over once its heartbeat is older than the lock TTL`,
      lock,
      other.state,
    );
  }
  for (const key of keys) {
    const prev = existing.find((l) => l.key === key);
    const keep = prev && prev.rolloutId === holder.rolloutId;
    await tx.putLock({
      key,
      rolloutId: holder.rolloutId,
      actor: holder.actor.id,
      host: holder.host,
      pid: holder.pid,
      token: holder.token,
      acquiredAt: keep ? prev.acquiredAt : nowIso,
      heartbeatAt: nowIso,
    });
  }
  if (takenOver.length > 0) {
    await tx.appendAudit({
      actor: holder.actor,
      action: 'rollout.lock.takeover',
      subject: holder.rolloutId,
      reason: 'the previous holder died',
      data: {
        host: holder.host,
        pid: holder.pid,
        from: takenOver.map((l) => ({
          key: l.key,
          rollout: l.rolloutId,
          actor: l.actor,
          host: l.host,
          pid: l.pid,
          heartbeatAt: l.heartbeatAt,
        })),
      },
    });
  }
  return { takenOver, abandoned: [...abandoned].sort() };
}

/** Throws MERIDIAN_E_ROLLOUT_LEASE_LOST unless every lock of the rollout still names this process. */
export async function assertHolder(tx: StoreTx, holder: Holder): Promise<LockRecord[]> {
  const mine = (await tx.listLocks()).filter((l) => l.rolloutId === holder.rolloutId);
  const lost = mine.find((l) => l.token !== holder.token);
  if (lost) {
    throw new RolloutError(
      'MERIDIAN_E_ROLLOUT_LEASE_LOST',
      `another process (pid ${lost.pid ?? '-'} on ${lost.host}) took over rollout ${holder.rolloutId}; this one stops without doing anything more`,
      { hint: 'watch the rollout with `meridian rollout status`' },
    );
  }
  return mine;
}

/** Refreshes the heartbeat of this process's locks. */
export async function heartbeat(tx: StoreTx, holder: Holder, now: number): Promise<void> {
  for (const l of await assertHolder(tx, holder)) await tx.putLock({ ...l, heartbeatAt: new Date(now).toISOString() });
}

/** Keeps the locks but names no process: the rollout waits for an operator. */
export async function park(tx: StoreTx, holder: Holder, now: number): Promise<void> {
  for (const l of await assertHolder(tx, holder))
    await tx.putLock({ ...l, pid: null, token: null, heartbeatAt: new Date(now).toISOString() });
}
