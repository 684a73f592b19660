/**
 * What the audit log says about recovery: the places evacuated now (every `routing.drain` in force, from
 * `meridian evacuate` or a plain drain), when each last changed, and the disasters declared, approved
 * and ended. The audit log is the one record (a restarted server learns its drains from it too). Pure.
 */
import type { Actor, AuditEntry, JsonValue } from '../store/store.js';
import { rampFromJson, type RestoreRecord } from './ramp.js';
import type { Place } from './safety.js';
import { placeKey } from './safety.js';

/** A declaration of a disaster and the approvals it has gathered. */
export interface Declaration {
  /** The audit sequence number of the declaration: its id. */
  readonly id: number;
  /** The incident class declared (one of `recovery.incidents` with `disaster: true`). */
  readonly incident: string;
  readonly declaredBy: Actor;
  readonly reason: string | null;
  readonly at: string;
  readonly approvals: readonly { readonly actor: Actor; readonly role: string; readonly at: string }[];
  /** When it was ended (by whom), or null while it stands. */
  readonly ended: { readonly by: Actor; readonly at: string } | null;
}

export interface RecoveryLedger {
  readonly evacuated: readonly Place[];
  /** Epoch ms of each place's last drain or undrain, by {@link placeKey}. */
  readonly lastChange: ReadonlyMap<string, number>;
  /** Places whose last change was a restore, with its time and ramp (what ramps back, or did). */
  readonly restores: readonly RestoreRecord[];
  readonly declarations: readonly Declaration[];
}

function obj(v: JsonValue): Record<string, JsonValue> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

/** Folds audit entries (oldest first) into the recovery ledger. */
export function recoveryLedger(entries: readonly AuditEntry[]): RecoveryLedger {
  const drained = new Map<string, Place>();
  const lastChange = new Map<string, number>();
  const restores = new Map<string, RestoreRecord>();
  const declarations = new Map<number, Declaration>();
  for (const e of entries) {
    const data = obj(e.data);
    if (e.action === 'routing.drain') {
      const kind = data['kind'] === 'region' ? 'region' : 'cluster';
      const place: Place = { kind, name: e.subject };
      const key = placeKey(place);
      if (data['drained'] === true) drained.set(key, place);
      else drained.delete(key);
      if (data['drained'] !== true && data['restore'] === true) {
        restores.set(key, { place, seq: e.seq, at: Date.parse(e.at), ramp: rampFromJson(data['ramp']) });
      } else restores.delete(key);
      lastChange.set(key, Date.parse(e.at));
    } else if (e.action === 'disaster.declare') {
      declarations.set(e.seq, {
        id: e.seq,
        incident: e.subject,
        declaredBy: e.actor,
        reason: e.reason,
        at: e.at,
        approvals: [],
        ended: null,
      });
    } else if (e.action === 'disaster.approve' || e.action === 'disaster.end') {
      const id = Number(e.subject);
      const d = declarations.get(id);
      if (!d) continue;
      if (e.action === 'disaster.end') declarations.set(id, { ...d, ended: { by: e.actor, at: e.at } });
      else declarations.set(id, { ...d, approvals: [...d.approvals, { actor: e.actor, role: String(data['role'] ?? ''), at: e.at }] });
    }
  }
  return { evacuated: [...drained.values()], lastChange, restores: [...restores.values()], declarations: [...declarations.values()] };
}

/** Who must approve a disaster: `count` distinct approvers acting in one of `roles`; the declarer never counts. */
export interface DisasterGate {
  readonly count: number;
  readonly roles: readonly string[];
}

/** Whether a declaration stands: approved by enough distinct others in the right roles, and not ended. */
export function disasterStanding(
  d: Declaration,
  gate: DisasterGate,
): { readonly declared: boolean; readonly approvers: readonly string[] } {
  const approvers: string[] = [];
  for (const a of d.approvals) {
    if (a.actor.id === d.declaredBy.id || !gate.roles.includes(a.role) || approvers.includes(a.actor.id)) continue;
    approvers.push(a.actor.id);
  }
  return { declared: d.ended === null && approvers.length >= gate.count, approvers };
}
