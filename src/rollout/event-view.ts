/**
 * A rollout's persisted events read for telemetry: the positions before and after each transition, the
 * time, and the clusters of a wave's batch from the rollout's spec. Tolerant by design: an event of a
 * kind it does not know, or a field it lacks, reads as absent rather than throwing, so a newer engine's
 * events never break metrics or traces.
 */
import type { RolloutSpec } from './rollout-spec.js';
import type { JsonValue, RolloutEventRecord, RolloutRecord } from '../store/store.js';

/** Where a rollout is (see `positionOf` in src/rollout/events.ts). */
export interface Position {
  readonly phase: string;
  readonly wave: number;
  readonly batch: number | null;
  readonly step: number | null;
  readonly attempt: number | null;
  /** `done`: promoted, rolled-back or failed. */
  readonly outcome: string | null;
  readonly reason: string | null;
}

/** One event, read. */
export interface RolloutEventView {
  readonly rollout: string;
  readonly fleet: string;
  readonly kind: string;
  readonly seq: number;
  /** Epoch ms. */
  readonly at: number;
  readonly type: string;
  readonly actor: string;
  readonly from: Position | null;
  readonly to: Position | null;
  readonly data: Readonly<Record<string, JsonValue>>;
}

function record(v: JsonValue | undefined): Record<string, JsonValue> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

function int(v: JsonValue | undefined): number | null {
  return typeof v === 'number' && Number.isInteger(v) ? v : null;
}

function str(v: JsonValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

function position(v: JsonValue | undefined): Position | null {
  const p = record(v);
  const phase = str(p['phase']);
  if (phase === null) return null;
  return {
    phase,
    wave: int(p['wave']) ?? 0,
    batch: int(p['batch']),
    step: int(p['step']),
    attempt: int(p['attempt']),
    outcome: str(p['outcome']),
    reason: str(p['reason']),
  };
}

/** Reads an event of `rollout`. */
export function readEvent(event: RolloutEventRecord, rollout: Pick<RolloutRecord, 'fleet' | 'kind'>): RolloutEventView {
  const data = record(event.data);
  const at = Date.parse(event.at);
  return {
    rollout: event.rolloutId,
    fleet: rollout.fleet,
    kind: rollout.kind,
    seq: event.seq,
    at: Number.isFinite(at) ? at : Date.now(),
    type: event.type,
    actor: event.actor,
    from: position(data['from']),
    to: position(data['to']),
    data,
  };
}

/** The rollout's spec when it is one this version can read, else null. */
export function specOf(rollout: Pick<RolloutRecord, 'spec'>): RolloutSpec | null {
  const s = rollout.spec as Partial<RolloutSpec> | null;
  return s && typeof s === 'object' && s.config && Array.isArray(s.config.waves) ? (s as RolloutSpec) : null;
}

/** The clusters of one batch of one wave (none when the spec does not say). */
export function batchClusters(spec: RolloutSpec | null, wave: number, batch: number | null): readonly string[] {
  if (spec === null || batch === null) return [];
  return spec.config.waves[wave]?.batches[batch] ?? [];
}

/** A wave's name, or `#N`. */
export function waveName(spec: RolloutSpec | null, wave: number): string {
  return spec?.config.waves[wave]?.name ?? `#${wave}`;
}

/** The strings of a JSON array (others dropped). */
export function strings(v: JsonValue | undefined): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Per-metric results of a verdict event: `[metric, outcome, value]` (the judge's MetricVerdict or a simpler `{name, value}`). */
export function gateResults(data: Readonly<Record<string, JsonValue>>): { metric: string; outcome: string; value: number | null }[] {
  const list = Array.isArray(data['metrics']) ? data['metrics'] : [];
  const out: { metric: string; outcome: string; value: number | null }[] = [];
  for (const m of list) {
    const r = record(m);
    const metric = str(r['metric']) ?? str(r['name']);
    if (metric === null) continue;
    const canary = record(r['canary']);
    const value = typeof canary['value'] === 'number' ? canary['value'] : typeof r['value'] === 'number' ? r['value'] : null;
    out.push({ metric, outcome: str(r['outcome']) ?? str(data['outcome']) ?? 'unknown', value });
  }
  return out;
}
