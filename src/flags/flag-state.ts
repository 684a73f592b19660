/**
 * Flag state: the fleet file's `flags:` (defaults and per-region entries) with operators' settings from
 * the store laid over them, resolved for every region of the fleet. Pure.
 */
import type { Flag } from '../spec/schema.js';
import type { FlagSettingRecord } from '../store/store.js';

/** Where a region's gate comes from. */
export type GateSource =
  /** An operator's `meridian flag set` (the store). */
  | 'operator'
  /** The flag's entry for the region in the fleet file. */
  | 'fleet'
  /** Neither: the flag's `default` (on for everyone, or off). */
  | 'default';

/** A flag's effective gate in one region. */
export interface RegionGate {
  readonly enabled: boolean;
  /** 0..100: while enabled, the share of users (by a sticky hash of flag and user) for whom it is on. */
  readonly percent: number;
  readonly source: GateSource;
  /** Who set it and when (operator settings only). */
  readonly updatedBy?: string;
  readonly updatedAt?: string;
}

/** One flag, resolved for every region. */
export interface FlagView {
  readonly name: string;
  readonly default: boolean;
  readonly description: string | null;
  /** Every region of the fleet, sorted by name. */
  readonly regions: Readonly<Record<string, RegionGate>>;
}

/** Every flag of a fleet, resolved. */
export interface FlagState {
  readonly fleet: string;
  /** The fleet's regions, sorted. */
  readonly regions: readonly string[];
  /** By flag name, sorted. */
  readonly flags: Readonly<Record<string, FlagView>>;
}

/** What flag state is built from: a fleet or a revision (both have these). */
export interface FlagDefinitions {
  readonly fleet: string;
  readonly regions: Readonly<Record<string, unknown>>;
  readonly flags: Readonly<Record<string, Flag>>;
}

/**
 * Resolves every flag in every region: an operator's setting, else the fleet file's entry for the region,
 * else the flag's default (enabled for everyone when `default: true`). Settings for flags or regions the
 * fleet no longer defines, or for another fleet, are ignored.
 */
export function flagState(defs: FlagDefinitions, settings: readonly FlagSettingRecord[] = []): FlagState {
  const regions = Object.keys(defs.regions).sort();
  const set = new Map<string, FlagSettingRecord>();
  for (const s of settings) if (s.fleet === defs.fleet) set.set(`${s.flag}\u0000${s.region}`, s);
  const flags: Record<string, FlagView> = {};
  for (const name of Object.keys(defs.flags).sort()) {
    const def = defs.flags[name] as Flag;
    const byRegion: Record<string, RegionGate> = {};
    for (const region of regions) {
      const op = set.get(`${name}\u0000${region}`);
      const entry = def.regions?.[region];
      byRegion[region] = op
        ? { enabled: op.enabled, percent: clampPercent(op.percent), source: 'operator', updatedBy: op.updatedBy, updatedAt: op.updatedAt }
        : entry
          ? { enabled: entry.enabled, percent: clampPercent(entry.percent ?? 100), source: 'fleet' }
          : { enabled: def.default ?? false, percent: 100, source: 'default' };
    }
    flags[name] = { name, default: def.default ?? false, description: def.description ?? null, regions: byRegion };
  }
  return { fleet: defs.fleet, regions, flags };
}

/** A percentage in 0..100 (NaN counts as 0). */
export function clampPercent(p: number): number {
  return Number.isFinite(p) ? Math.min(100, Math.max(0, p)) : 0;
}

/** The share of users a gate lets through, in 0..100: its percent when enabled, else 0. */
export function openPercent(g: Pick<RegionGate, 'enabled' | 'percent'>): number {
  return g.enabled ? clampPercent(g.percent) : 0;
}

/** Describes a gate for people: `on`, `on for 20%`, `off`. */
export function describeGate(g: Pick<RegionGate, 'enabled' | 'percent'>): string {
  if (!g.enabled) return 'off';
  return g.percent >= 100 ? 'on' : `on for ${formatPercent(g.percent)} of users`;
}

/** `20%`, `12.5%`. */
export function formatPercent(p: number): string {
  return `${Number(p.toFixed(2))}%`;
}
