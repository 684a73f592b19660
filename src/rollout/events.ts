/**
 * A rollout's transition log as people and pipelines read it: what each persisted event holds, one
 * line per event for a terminal, and one JSON object per event for `--output jsonl`.
 */
import type { JsonValue, RolloutEventRecord } from '../store/store.js';
import type { RolloutSpec } from './rollout-spec.js';
import type { MachineState, Phase } from './state-machine.js';

/** Rollout states that are final (the `state` column). */
export const FINAL_STATES: readonly string[] = ['promoted', 'rolled-back', 'failed'];

/** The type of the first event of every rollout. */
export const CREATED = 'created';

/** Where a phase is: wave, batch, step and attempt, whichever apply. */
export function positionOf(p: Phase): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = { phase: p.kind, wave: p.wave };
  if ('batch' in p) out['batch'] = p.batch;
  if ('step' in p) out['step'] = p.step;
  if ('attempt' in p) out['attempt'] = p.attempt;
  if (p.kind === 'rollback' || p.kind === 'revert') out['remaining'] = [...p.remaining];
  if (p.kind === 'rollback' && p.revert) out['revert'] = [...p.revert];
  if (p.kind === 'migrate' || p.kind === 'contract') out['migration'] = p.migration;
  if (p.kind === 'paused') out['resume'] = positionOf(p.resume);
  if (p.kind === 'done') {
    out['outcome'] = p.outcome;
    out['reason'] = p.reason;
  }
  if (p.kind === 'paused' || p.kind === 'rollback' || p.kind === 'revert') out['reason'] = p.reason;
  return out;
}

/** A one-line description of an event, for progress on a terminal. */
export function describeEvent(e: RolloutEventRecord, spec: RolloutSpec): string {
  const d = (e.data ?? {}) as Record<string, JsonValue>;
  const to = (d['to'] ?? {}) as Record<string, JsonValue>;
  const waveName = (i: unknown): string => (typeof i === 'number' ? (spec.config.waves[i]?.name ?? `#${i}`) : '?');
  const where = (p: Record<string, JsonValue>): string => {
    const w = spec.config.waves[Number(p['wave'])];
    const parts = [`wave ${waveName(p['wave'])}`];
    if (typeof p['batch'] === 'number' && w) parts.push(`[${(w.batches[p['batch']] ?? []).join(', ')}]`);
    if (typeof p['step'] === 'number' && w) parts.push(`step ${p['step'] + 1}/${w.steps.length} (${w.steps[p['step']]?.weight ?? '?'}%)`);
    return parts.join(' ');
  };
  const next = (): string => {
    switch (to['phase']) {
      case 'approval':
        return `waiting for approvals of wave ${waveName(to['wave'])}`;
      case 'migrate':
        return `migrating ${String(to['migration'])} before the canary: ${where(to)}`;
      case 'contract':
        return `migrating ${String(to['migration'])} after the last wave`;
      case 'revert':
        return `reverting migrations ${JSON.stringify(to['remaining'])}: ${String(to['reason'])}`;
      case 'deploy':
        return `deploying the canary: ${where(to)}`;
      case 'weight':
        return `setting the weight: ${where(to)}`;
      case 'pause':
        return `pausing: ${where(to)}${Number(to['attempt']) > 0 ? `, look ${Number(to['attempt']) + 1}` : ''}`;
      case 'analysis':
        return `judging: ${where(to)}`;
      case 'bake':
        return `baking: ${where(to)}`;
      case 'promote':
        return `promoting: ${where(to)}`;
      case 'rollback':
        return `rolling back ${JSON.stringify(to['remaining'])}: ${String(to['reason'])}`;
      case 'paused':
        return `paused: ${String(to['reason'])}`;
      case 'done':
        return `${String(to['outcome'])}: ${String(to['reason'])}`;
      default:
        return String(to['phase']);
    }
  };
  let what = e.type;
  if (e.type === 'verdict') what = `verdict ${String(d['outcome'])}${d['reason'] ? ` (${String(d['reason'])})` : ''}`;
  if (e.type === 'control') what = `${String(d['action'])} by ${e.actor}${d['reason'] ? ` (${String(d['reason'])})` : ''}`;
  if (e.type === 'cluster-rolled-back') what = `${String(d['cluster'])} back on ${String(d['revision'] ?? 'nothing')}`;
  if (e.type === 'approvals-met') what = `approved by ${JSON.stringify(d['approvers'])}`;
  if (e.type === 'migrated') what = `migrated ${String(d['migration'])}${d['ran'] === false ? ' (applied before)' : ''}`;
  if (e.type === 'migration-reverted') what = `reverted ${String(d['migration'])}`;
  if (e.type === 'weight-set' && typeof d['warmupMs'] === 'number') what = `weight-set after a ${d['warmupMs'] / 1000} s warm-up`;
  return `#${e.seq} ${what} → ${next()}`;
}

/** The JSON object of an event for `--output jsonl`. */
export function eventJson(e: RolloutEventRecord): Record<string, JsonValue> {
  return { type: 'rollout.event', rollout: e.rolloutId, seq: e.seq, at: e.at, event: e.type, actor: e.actor, data: e.data };
}

/** Reads a persisted machine state. */
export function asState(value: unknown): MachineState {
  const v = value as Partial<MachineState> | null;
  if (!v || !v.phase || !Array.isArray(v.touched)) throw new Error('the stored rollout has no usable state');
  return { phase: v.phase, touched: v.touched, overridden: v.overridden ?? [], ...(v.migrations ? { migrations: v.migrations } : {}) };
}
