/**
 * Approvals: a wave may need N approvals from given roles before it starts. An approval is bound to the
 * plan's hash (a changed plan does not count it), expires, and never comes from an author of the change
 * (who started the rollout, or recorded its revision). Role membership is what the approver states with
 * `--role`; real role checks come with the control plane's authentication.
 */
import { RolloutError } from '../errors.js';
import type { Actor, ApprovalRecord, RolloutRecord, Store } from '../store/store.js';
import { FINAL_STATES } from './events.js';
import { refuseAudited } from './refusal.js';
import type { RolloutSpec } from './rollout-spec.js';

/** How long an approval counts when no expiry is given. */
export const DEFAULT_APPROVAL_TTL_MS = 24 * 3600 * 1000;

export interface ApprovalGate {
  readonly planHash: string;
  readonly wave: string;
  readonly count: number;
  readonly roles: readonly string[];
  readonly authors: readonly string[];
  /** Epoch ms. */
  readonly now: number;
}

export interface GateVerdict {
  readonly met: boolean;
  /** Distinct approvers that count. */
  readonly approvers: readonly string[];
  readonly needed: number;
  /** A rejection that counts, if any. */
  readonly rejected: ApprovalRecord | null;
  /** Decisions that do not count, and why. */
  readonly ignored: readonly { readonly approval: ApprovalRecord; readonly why: string }[];
}

/** Judges a wave's approvals. Pure. */
export function evaluateApprovals(records: readonly ApprovalRecord[], gate: ApprovalGate): GateVerdict {
  const approvers: string[] = [];
  const ignored: { approval: ApprovalRecord; why: string }[] = [];
  let rejected: ApprovalRecord | null = null;
  for (const a of records) {
    if (a.wave !== gate.wave) continue;
    if (a.planHash !== gate.planHash) ignored.push({ approval: a, why: 'given for another plan (the plan changed since)' });
    else if (gate.authors.includes(a.actor)) ignored.push({ approval: a, why: `${a.actor} is an author of the change` });
    else if (!gate.roles.includes(a.role)) ignored.push({ approval: a, why: `role ${a.role} is not one of ${gate.roles.join(', ')}` });
    else if (Date.parse(a.expiresAt) <= gate.now) ignored.push({ approval: a, why: `expired at ${a.expiresAt}` });
    else if (a.decision === 'reject') rejected = a;
    else if (!approvers.includes(a.actor)) approvers.push(a.actor);
  }
  return { met: rejected === null && approvers.length >= gate.count, approvers, needed: gate.count, rejected, ignored };
}

/** The gate of wave `index` of a rollout, or null when the wave needs no approval. */
export function gateOf(spec: RolloutSpec, index: number, now: number): ApprovalGate | null {
  const w = spec.config.waves[index];
  if (!w?.approvals) return null;
  return { planHash: spec.planHash, wave: w.name, count: w.approvals.count, roles: w.approvals.roles, authors: spec.authors, now };
}

export interface Decision {
  readonly rollout: RolloutRecord;
  readonly spec: RolloutSpec;
  readonly wave: string;
  readonly actor: Actor;
  /** The role the approver acts in; may be left out when the wave names exactly one. */
  readonly role?: string | undefined;
  readonly decision: 'approve' | 'reject';
  readonly reason?: string | undefined;
  readonly now: number;
  readonly ttlMs?: number | undefined;
}

/** What is wrong with a decision (`error` null when it may be recorded), and the role it is made in. Pure. */
function refusalOf(
  d: Decision,
): { readonly error: RolloutError; readonly role: string | undefined } | { readonly error: null; readonly role: string } {
  const { rollout, spec } = d;
  if (FINAL_STATES.includes(rollout.state)) {
    return {
      error: new RolloutError(
        'MERIDIAN_E_APPROVAL_FINISHED',
        `rollout ${rollout.id} has finished (${rollout.state}); there is nothing to approve`,
      ),
      role: d.role,
    };
  }
  const wave = spec.config.waves.find((w) => w.name === d.wave);
  if (!wave) {
    return {
      error: new RolloutError('MERIDIAN_E_APPROVAL_UNKNOWN_WAVE', `rollout ${rollout.id} has no wave named ${d.wave}`, {
        hint: `its waves are: ${spec.config.waves.map((w) => w.name).join(', ')}`,
      }),
      role: d.role,
    };
  }
  if (!wave.approvals) {
    return {
      error: new RolloutError('MERIDIAN_E_APPROVAL_NOT_REQUIRED', `wave ${wave.name} of rollout ${rollout.id} needs no approval`, {
        hint: `waves that need approval: ${
          spec.config.waves
            .filter((w) => w.approvals)
            .map((w) => w.name)
            .join(', ') || '(none)'
        }`,
      }),
      role: d.role,
    };
  }
  const roles = wave.approvals.roles;
  const role = d.role ?? (roles.length === 1 ? roles[0] : undefined);
  if (role === undefined || !roles.includes(role)) {
    return {
      error: new RolloutError(
        'MERIDIAN_E_APPROVAL_ROLE',
        role === undefined
          ? `wave ${wave.name} may be approved in one of several roles`
          : `wave ${wave.name} needs approval from ${roles.join(' or ')}, not ${role}`,
        { hint: `say which role you approve in: --role ${roles[0] ?? 'ROLE'} (one of ${roles.join(', ')})` },
      ),
      role,
    };
  }
  if (spec.authors.includes(d.actor.id)) {
    return {
      error: new RolloutError(
        'MERIDIAN_E_APPROVAL_AUTHOR',
        `${d.actor.id} is an author of this change (started rollout ${rollout.id} or recorded its revision) and cannot ${d.decision} it`,
        { hint: `someone else in the role ${role} must ${d.decision} wave ${wave.name}` },
      ),
      role,
    };
  }
  return { error: null, role };
}

/**
 * Checks and records an approval or rejection with its audit entry; throws a RolloutError saying what is
 * wrong. A refused decision is audited too (`approval.refused`: who, the wave, the code, the message), in
 * its own transaction, before the error is thrown.
 */
export async function recordDecision(store: Store, d: Decision): Promise<ApprovalRecord> {
  const { rollout, spec } = d;
  const refusal = refusalOf(d);
  if (refusal.error) {
    const err = refusal.error;
    return refuseAudited(
      store,
      {
        actor: d.actor,
        action: 'approval.refused',
        subject: rollout.id,
        reason: err.message,
        data: {
          code: err.code,
          decision: d.decision,
          wave: d.wave,
          role: refusal.role ?? null,
          planHash: spec.planHash,
          given: d.reason ?? null,
        },
      },
      err,
    );
  }
  const role = refusal.role;
  const wave = d.wave;
  const at = new Date(d.now).toISOString();
  const expiresAt = new Date(d.now + (d.ttlMs ?? DEFAULT_APPROVAL_TTL_MS)).toISOString();
  return store.withTransaction(async (tx) => {
    const a = await tx.addApproval({
      planHash: spec.planHash,
      rolloutId: rollout.id,
      wave,
      actor: d.actor.id,
      role,
      decision: d.decision,
      reason: d.reason ?? null,
      at,
      expiresAt,
    });
    await tx.appendAudit({
      actor: d.actor,
      action: `approval.${d.decision}`,
      subject: rollout.id,
      reason: d.reason,
      data: { wave, role, planHash: spec.planHash, expiresAt, approval: a.id },
    });
    return a;
  });
}
