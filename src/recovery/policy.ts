/**
 * The fleet's recovery policy (`recovery:`, docs/recovery.md) read into plain values: the safety rules,
 * the recovery time each service and region may take, and who may declare a disaster.
 */
import type { Recovery } from '../spec/schema.js';
import { parseDuration } from '../units/duration.js';
import { parseRatio } from '../units/quantity.js';
import type { SafetyPolicy } from './safety.js';

/** The safety rules when a fleet says nothing: a full capacity floor, a 5-minute hold-down, no automation. */
export const DEFAULT_SAFETY: SafetyPolicy = { capacityFloor: 1, holdDownMs: 5 * 60_000, automatedEvacuations: false };

/**
 * The rules a plain drain through the control plane's API meets when the fleet has no `recovery` section:
 * residency only (locked clients are never stranded), no capacity floor, no hold-down — a drain for
 * maintenance stays a drain until a fleet opts into the policy.
 */
export const RESIDENCY_ONLY: SafetyPolicy = { capacityFloor: 0, holdDownMs: 0, automatedEvacuations: true };

/** The safety rules in force for a fleet's `recovery` section (the defaults when it has none). */
export function safetyPolicy(recovery: Recovery | undefined): SafetyPolicy {
  const s = recovery?.safety;
  if (!s) return DEFAULT_SAFETY;
  return {
    capacityFloor: parseRatio(s.capacityFloor) ?? DEFAULT_SAFETY.capacityFloor,
    holdDownMs: parseDuration(s.holdDown) ?? DEFAULT_SAFETY.holdDownMs,
    automatedEvacuations: s.automatedEvacuations,
  };
}

/**
 * The recovery time objective for a service in a region, in ms: the service's own, else the region's,
 * else the default; null when the policy sets none. The strictest applies when both are set.
 */
export function rtoMs(recovery: Recovery | undefined, service: string | null, region: string | null): number | null {
  const rto = recovery?.rto;
  if (!rto) return null;
  const parsed = [service !== null ? rto.services?.[service] : undefined, region !== null ? rto.regions?.[region] : undefined]
    .filter((d): d is string => d !== undefined)
    .map((d) => parseDuration(d))
    .filter((n): n is number => n !== undefined);
  if (parsed.length > 0) return Math.min(...parsed);
  return rto.default !== undefined ? (parseDuration(rto.default) ?? null) : null;
}

/** The incident classes whose declaration is a disaster. */
export function disasterClasses(recovery: Recovery | undefined): string[] {
  return (recovery?.incidents ?? []).filter((i) => i.disaster).map((i) => i.name);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

/** Minutes since Sunday 00:00 UTC of `Day:HH:MM`. */
function weekMinute(text: string): number {
  const [day, hh, mm] = text.split(':');
  return DAYS.indexOf(day as (typeof DAYS)[number]) * 1440 + Number(hh) * 60 + Number(mm);
}

/** The blocked window or date `now` falls in (what a drill refuses to start in), or null. */
export function blockedBy(recovery: Recovery | undefined, now: Date): string | null {
  const drills = recovery?.drills;
  if (!drills) return null;
  const date = now.toISOString().slice(0, 10);
  if (drills.blockedDates?.includes(date)) return `the blocked date ${date} (recovery.drills.blockedDates)`;
  const minute = now.getUTCDay() * 1440 + now.getUTCHours() * 60 + now.getUTCMinutes();
  for (const w of drills.blockedWindows ?? []) {
    const [from, to] = w.split('-').map(weekMinute) as [number, number];
    const inside = from <= to ? minute >= from && minute < to : minute >= from || minute < to;
    if (inside) return `the blocked window ${w} UTC (recovery.drills.blockedWindows)`;
  }
  return null;
}
