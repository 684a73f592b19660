/**
 * The restore ramp (`recovery.restore`, docs/recovery.md): after a restore, the place takes back its
 * traffic in steps — `ramp[0]` % at once, `ramp[k]` % from `k × step` on — until it takes all of it.
 * Where a ramp stands is a pure function of the restore's time in the audit log, the ramp recorded with
 * it and the clock passed in, so a restarted control plane picks it up where it was.
 */
import type { Recovery } from '../spec/schema.js';
import { parseDuration } from '../units/duration.js';
import type { Place } from './safety.js';

/** A ramp: the percentages a restored place takes in turn, one `stepMs` apart. */
export interface RestoreRamp {
  readonly steps: readonly number[];
  readonly stepMs: number;
}

/** The ramp of a fleet with a `recovery` section that sets no `restore`: 10, 25, 50, 100 %, 30 s apart. */
export const DEFAULT_RAMP: RestoreRamp = { steps: [10, 25, 50, 100], stepMs: 30_000 };

/**
 * The ramp a restore follows: the fleet's `recovery.restore`, {@link DEFAULT_RAMP} when its `recovery`
 * section sets none, and null (all traffic back at once) for a fleet without a `recovery` section, whose
 * drains are plain maintenance drains.
 */
export function restoreRamp(recovery: Recovery | undefined): RestoreRamp | null {
  if (!recovery) return null;
  const r = recovery.restore;
  if (!r) return DEFAULT_RAMP;
  return { steps: r.ramp, stepMs: parseDuration(r.step) ?? DEFAULT_RAMP.stepMs };
}

/** The steps with a final 100 % when the list stops short of it, cut at the first 100. */
function stepsOf(ramp: RestoreRamp): number[] {
  const out: number[] = [];
  for (const p of ramp.steps) {
    out.push(Math.max(0, Math.min(100, p)));
    if (p >= 100) return out;
  }
  out.push(100);
  return out;
}

/** Where one ramp stands at a moment. */
export interface RampPosition {
  /** The percentage of its full traffic the place takes now. */
  readonly percent: number;
  /** The step in force (0 = the first), and how many there are (the last is 100 %). */
  readonly step: number;
  readonly steps: number;
  /** When the step in force began, epoch ms. */
  readonly stepAt: number;
  /** When the next step begins, or null once the place takes all its traffic. */
  readonly nextAt: number | null;
  /** When it takes all its traffic again, epoch ms. */
  readonly endsAt: number;
}

/** Where a ramp that began at `startedAt` stands at `now` (epoch ms). Pure. */
export function rampAt(ramp: RestoreRamp, startedAt: number, now: number): RampPosition {
  const steps = stepsOf(ramp);
  const last = steps.length - 1;
  const stepMs = Math.max(0, ramp.stepMs);
  const step = stepMs === 0 ? last : Math.max(0, Math.min(last, Math.floor((now - startedAt) / stepMs)));
  const endsAt = startedAt + last * stepMs;
  return {
    percent: steps[step] ?? 100,
    step,
    steps: steps.length,
    stepAt: startedAt + step * stepMs,
    nextAt: step < last ? startedAt + (step + 1) * stepMs : null,
    endsAt,
  };
}

/** A restore as the audit log records it (the newest change of its place). */
export interface RestoreRecord {
  readonly place: Place;
  /** The audit sequence number of the restore. */
  readonly seq: number;
  /** Its time, epoch ms. */
  readonly at: number;
  /** The ramp recorded with it (null: all at once); undefined for a restore recorded without one. */
  readonly ramp: RestoreRamp | null | undefined;
}

/** A place ramping back now. */
export interface RampInForce extends RampPosition {
  readonly place: Place;
  readonly restore: number;
  readonly ramp: RestoreRamp;
}

/**
 * The ramps in force at `now`: every restore whose ramp (its own, else `fallback` for one recorded
 * without any) has not reached 100 % yet. Pure.
 */
export function rampsInForce(restores: readonly RestoreRecord[], fallback: RestoreRamp | null, now: number): RampInForce[] {
  const out: RampInForce[] = [];
  for (const r of restores) {
    const ramp = r.ramp === undefined ? fallback : r.ramp;
    if (!ramp) continue;
    const pos = rampAt(ramp, r.at, now);
    if (pos.nextAt !== null) out.push({ ...pos, place: r.place, restore: r.seq, ramp });
  }
  return out;
}

/** The ramp's JSON form in the audit log. */
export function rampJson(ramp: RestoreRamp | null): { steps: number[]; stepMs: number } | null {
  return ramp ? { steps: [...ramp.steps], stepMs: ramp.stepMs } : null;
}

/** Reads a ramp back from an audit entry's data: undefined when the entry records none. */
export function rampFromJson(v: unknown): RestoreRamp | null | undefined {
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as { steps?: unknown; stepMs?: unknown };
  if (!Array.isArray(o.steps) || !o.steps.every((x) => typeof x === 'number') || typeof o.stepMs !== 'number') return undefined;
  return { steps: o.steps as number[], stepMs: o.stepMs };
}
