/**
 * Carrying out an evacuation or a restore against the state store: the ledger from the audit log, the
 * safety verdict, and the audit entry — a drain (`routing.drain`) that every control plane on the store
 * follows, or the refusal (`recovery.refused`). Shared by `meridian evacuate` and `meridian drill`.
 */
import type { Revision } from '../render/render.js';
import type { Recovery } from '../spec/schema.js';
import type { Actor, Store } from '../store/store.js';
import { disasterStanding, recoveryLedger, type Declaration, type RecoveryLedger } from './ledger.js';
import { safetyPolicy } from './policy.js';
import { rampJson, type RestoreRamp } from './ramp.js';
import { checkEvacuation, placeKey, type Place, type SafetyPolicy, type SafetyVerdict } from './safety.js';

export interface EvacuationOrder {
  readonly place: Place;
  readonly reason: string;
  readonly declaredDown: readonly string[];
  readonly automated: boolean;
  readonly actor: Actor;
}

export type EvacuationOutcome =
  | { readonly kind: 'already' }
  | { readonly kind: 'refused' | 'evacuated'; readonly verdict: SafetyVerdict; readonly disaster: Declaration | null };

/** The disaster standing now, if any: the newest declaration that is approved and not ended. */
export function standingDisaster(recovery: Recovery | undefined, ledger: RecoveryLedger): Declaration | null {
  const gate = recovery?.disaster?.approvals;
  if (!gate) return null;
  const standing = ledger.declarations.filter((d) => disasterStanding(d, gate).declared);
  return standing[standing.length - 1] ?? null;
}

/** The verdict as recorded in the audit log and printed by `-o json`. */
export function verdictJson(v: SafetyVerdict): {
  allowed: boolean;
  violations: { rule: string; message: string; fix: string; numbers: Record<string, string | number>; overridden: boolean }[];
  removedClusters: string[];
  effects: { service: string; demandRps: number; servableBeforeRps: number; servableAfterRps: number; lockedOut: string[] }[];
} {
  return {
    allowed: v.allowed,
    violations: v.violations.map((x) => ({
      rule: x.rule,
      message: x.message,
      fix: x.fix,
      numbers: { ...x.numbers },
      overridden: v.overridden.includes(x),
    })),
    removedClusters: [...v.removedClusters],
    effects: v.effects.map((e) => ({ ...e, lockedOut: [...e.lockedOut] })),
  };
}

/** A refused verdict in one sentence and its fixes (for an API answer); the CLI prints the same rule by rule. */
export function refusalText(place: Place, v: SafetyVerdict): { message: string; hint: string } {
  const standing = v.violations.filter((x) => !v.overridden.includes(x));
  return {
    message: `evacuating ${place.kind} ${place.name} breaks the fleet's safety rules (refusal audited): ${standing.map((x) => `${x.rule}: ${x.message}`).join('; ')}`,
    hint: standing.map((x) => x.fix).join('; '),
  };
}

/**
 * Judges an evacuation by the fleet's safety rules (its `recovery` section; the defaults without one) and
 * records it (or its refusal) in the audit log. Every way to drain goes through here: the CLI, drills and
 * the control plane's API.
 */
export async function evacuate(
  store: Store,
  recovery: Recovery | undefined,
  revision: Revision,
  order: EvacuationOrder,
  now = Date.now(),
  policy: SafetyPolicy = safetyPolicy(recovery),
): Promise<EvacuationOutcome> {
  const ledger = recoveryLedger(await store.listAudit());
  if (ledger.evacuated.some((p) => placeKey(p) === placeKey(order.place))) return { kind: 'already' };
  const disaster = standingDisaster(recovery, ledger);
  const verdict = checkEvacuation(
    revision,
    policy,
    { evacuated: ledger.evacuated, lastChange: ledger.lastChange, now },
    { place: order.place, declaredDown: order.declaredDown, automated: order.automated, disaster: disaster !== null },
  );
  const data = {
    kind: order.place.kind,
    declaredDown: [...order.declaredDown],
    automated: order.automated,
    disaster: disaster?.id ?? null,
    verdict: verdictJson(verdict),
  };
  if (!verdict.allowed) {
    await store.appendAudit({ actor: order.actor, action: 'recovery.refused', subject: order.place.name, reason: order.reason, data });
    return { kind: 'refused', verdict, disaster };
  }
  await store.appendAudit({
    actor: order.actor,
    action: 'routing.drain',
    subject: order.place.name,
    reason: order.reason,
    data: { ...data, drained: true, evacuation: true },
  });
  return { kind: 'evacuated', verdict, disaster };
}

/**
 * Brings an evacuated place back (an undrain in the audit log, with the ramp it follows: the record every
 * control plane derives the ramp from, src/recovery/ramp.ts); null when it was not evacuated, else the
 * restore's audit sequence number and time.
 */
export async function restore(
  store: Store,
  place: Place,
  actor: Actor,
  reason: string | undefined,
  ramp: RestoreRamp | null,
): Promise<{ readonly seq: number; readonly at: number } | null> {
  const ledger = recoveryLedger(await store.listAudit());
  if (!ledger.evacuated.some((p) => placeKey(p) === placeKey(place))) return null;
  const e = await store.appendAudit({
    actor,
    action: 'routing.drain',
    subject: place.name,
    reason,
    data: { kind: place.kind, drained: false, restore: true, ramp: rampJson(ramp) },
  });
  return { seq: e.seq, at: Date.parse(e.at) };
}
