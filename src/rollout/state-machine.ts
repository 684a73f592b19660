/**
 * The rollout state machine, pure: (config, state, event) -> next state, and the one effect each state
 * asks for. The engine performs that effect, feeds its result back as an event and persists the
 * transition; every effect is idempotent, so after a crash the persisted state's effect is simply
 * performed again. Times come in with the events (`at`, epoch ms); nothing here reads a clock. Its types
 * (config, phases, events, effects) are in `machine-types.ts` and re-exported here.
 */

import {
  type MachineWave,
  type MachineConfig,
  type Phase,
  type ActivePhase,
  type MachineState,
  type ControlAction,
  type MachineEvent,
  type Effect,
  IllegalTransition,
} from './machine-types.js';

export {
  type FailurePolicy,
  type MachineWave,
  type MachineMigration,
  type MachineMigrations,
  type MachineConfig,
  type Outcome,
  type Phase,
  type ActivePhase,
  type MachineState,
  type VerdictOutcome,
  type ControlAction,
  type MachineEvent,
  type Effect,
  IllegalTransition,
} from './machine-types.js';

/** The state a new rollout starts in: the first wave (or done, when there is nothing to do). */
export function initialState(config: MachineConfig, at: number): MachineState {
  return enterWave(config, { phase: { kind: 'done', wave: 0, outcome: 'promoted', reason: '' }, touched: [], overridden: [] }, 0, at);
}

/** True when the rollout has finished. */
export function isFinal(state: MachineState): boolean {
  return state.phase.kind === 'done';
}

/** The effect that moves `state` on; null when it waits for an operator (paused) or has finished. */
export function effectOf(config: MachineConfig, state: MachineState): Effect | null {
  const p = state.phase;
  switch (p.kind) {
    case 'approval':
      return { kind: 'check-approvals', wave: p.wave };
    case 'migrate':
    case 'contract':
      return { kind: 'migrate', migration: p.migration, direction: 'up' };
    case 'revert': {
      const next = p.remaining[0];
      return next === undefined ? null : { kind: 'migrate', migration: next, direction: 'down' };
    }
    case 'deploy':
      return { kind: 'deploy-canary', clusters: batchOf(config, p.wave, p.batch) };
    case 'weight':
      return {
        kind: 'set-weight',
        clusters: batchOf(config, p.wave, p.batch),
        weight: stepOf(config, p.wave, p.step).weight,
        ...(p.step === 0 && (config.warmupMs ?? 0) > 0 ? { warmupMs: config.warmupMs } : {}),
      };
    case 'pause':
    case 'bake':
      return { kind: 'wait', until: p.until };
    case 'analysis':
      return {
        kind: 'judge',
        wave: p.wave,
        step: p.step,
        attempt: p.attempt,
        clusters: batchOf(config, p.wave, p.batch),
        weight: stepOf(config, p.wave, p.step).weight,
        final: p.final ?? true,
        ...(p.end !== undefined && p.waitEnd !== undefined
          ? { sampleWait: { end: p.end, until: p.waitEnd, extending: p.extending ?? false } }
          : {}),
      };
    case 'promote':
      return { kind: 'promote', clusters: batchOf(config, p.wave, p.batch) };
    case 'rollback': {
      const next = p.remaining[0];
      return next === undefined ? null : { kind: 'rollback-cluster', cluster: next };
    }
    case 'paused':
    case 'done':
      return null;
  }
}

/** The next state after `event`; throws {@link IllegalTransition} when the state does not accept it. */
export function transition(config: MachineConfig, state: MachineState, event: MachineEvent): MachineState {
  const p = state.phase;
  const illegal = (message?: string): never => {
    throw new IllegalTransition(p.kind, event.type === 'control' ? `control ${event.action}` : event.type, message);
  };
  if (event.type === 'control') return control(config, state, event, illegal);
  if (event.type === 'effect-failed') {
    if (p.kind === 'rollback') {
      return { ...state, phase: { kind: 'done', wave: p.wave, outcome: 'failed', reason: `rollback did not complete: ${event.reason}` } };
    }
    if (p.kind === 'revert') {
      const reason = `rollback did not complete: the clusters are back, but ${event.reason}; ${p.reason}`;
      return { ...state, phase: { kind: 'done', wave: p.wave, outcome: 'failed', reason } };
    }
    if (p.kind === 'contract') {
      const reason = `${event.reason}; every wave is promoted and stays (a rollback would return clusters to a version that may need what the contract removes)`;
      return { ...state, phase: { kind: 'done', wave: p.wave, outcome: 'failed', reason } };
    }
    if (!isActive(p)) return illegal();
    return fail(config, state, p, event.reason);
  }
  switch (p.kind) {
    case 'approval':
      if (event.type === 'approvals-met') return enterBatch(config, state, p.wave, 0, event.at);
      if (event.type === 'approval-rejected')
        return fail(config, state, p, `wave ${waveOf(config, p.wave).name} rejected by ${event.by}: ${event.reason}`);
      return illegal();
    case 'migrate': {
      if (event.type !== 'migrated' || event.migration !== p.migration) return illegal();
      const next = migratedOne(state, event);
      return { ...next, phase: batchPhase(config, next, p.wave, p.batch) };
    }
    case 'contract': {
      if (event.type !== 'migrated' || event.migration !== p.migration) return illegal();
      const next = migratedOne(state, event);
      return { ...next, phase: afterWaves(config, next) };
    }
    case 'revert': {
      if (event.type !== 'migration-reverted' || event.migration !== p.remaining[0]) return illegal();
      const remaining = p.remaining.slice(1);
      return remaining.length > 0
        ? { ...state, phase: { ...p, remaining } }
        : { ...state, phase: { kind: 'done', wave: p.wave, outcome: 'rolled-back', reason: p.reason } };
    }
    case 'deploy':
      if (event.type !== 'canary-ready') return illegal();
      return state.overridden.includes(p.wave) || !waveOf(config, p.wave).canary || waveOf(config, p.wave).steps.length === 0
        ? { ...state, phase: { kind: 'promote', wave: p.wave, batch: p.batch } }
        : { ...state, phase: { kind: 'weight', wave: p.wave, batch: p.batch, step: 0 } };
    case 'weight': {
      if (event.type !== 'weight-set') return illegal();
      const pause = pauseOf(config, p.wave, p.step);
      const end = event.at + pause;
      const waitEnd = end + (config.sampleWaitMs ?? 2 * pause);
      return { ...state, phase: { kind: 'pause', ...stepAt(p), attempt: 0, until: nextLook(config, event.at, end), end, waitEnd } };
    }
    case 'pause': {
      if (event.type !== 'timer-elapsed') return illegal();
      const end = p.end ?? p.until;
      const wait = p.waitEnd === undefined ? {} : { waitEnd: p.waitEnd, ...(p.extending ? { extending: true } : {}) };
      return { ...state, phase: { kind: 'analysis', ...stepAt(p), attempt: p.attempt, end, final: p.until >= end, ...wait } };
    }
    case 'analysis': {
      if (event.type !== 'verdict') return illegal();
      const label = `wave ${waveOf(config, p.wave).name}, step ${p.step + 1}`;
      const final = p.final ?? true;
      const end = p.end ?? event.at;
      if (event.outcome === 'running' || (event.outcome === 'pass' && !final)) {
        if (final && p.waitEnd !== undefined && event.at < p.waitEnd) {
          // too few samples at the step's end: measure on, each look final, until the bound
          const until = nextLook(config, event.at, p.waitEnd);
          return {
            ...state,
            phase: { kind: 'pause', ...stepAt(p), attempt: p.attempt + 1, until, end, waitEnd: p.waitEnd, extending: true },
          };
        }
        if (final) return pauseForOperator(state, p, `${label}: the analysis was still running at the step's end`);
        // the step goes on: measure again after an interval (the last look at the step's end)
        const wait = p.waitEnd === undefined ? {} : { waitEnd: p.waitEnd };
        return {
          ...state,
          phase: { kind: 'pause', ...stepAt(p), attempt: p.attempt + 1, until: nextLook(config, event.at, end), end, ...wait },
        };
      }
      if (event.outcome === 'pass') {
        if (p.step + 1 < waveOf(config, p.wave).steps.length) {
          return { ...state, phase: { kind: 'weight', wave: p.wave, batch: p.batch, step: p.step + 1 } };
        }
        const bakeMs = waveOf(config, p.wave).bakeMs;
        return bakeMs > 0
          ? { ...state, phase: { kind: 'bake', wave: p.wave, batch: p.batch, until: event.at + bakeMs } }
          : { ...state, phase: { kind: 'promote', wave: p.wave, batch: p.batch } };
      }
      const why = `${label}: the analysis says ${event.outcome}${event.reason ? `: ${event.reason}` : ''}`;
      // inconclusive, no data or a failed measurement: nobody knows whether the canary is good; a person decides
      if (event.outcome !== 'fail') return pauseForOperator(state, p, why);
      return fail(config, state, p, why);
    }
    case 'bake':
      if (event.type !== 'timer-elapsed') return illegal();
      return { ...state, phase: { kind: 'promote', wave: p.wave, batch: p.batch } };
    case 'promote':
      if (event.type !== 'promoted') return illegal();
      return p.batch + 1 < waveOf(config, p.wave).batches.length
        ? enterBatch(config, state, p.wave, p.batch + 1, event.at)
        : enterWave(config, state, p.wave + 1, event.at);
    case 'rollback': {
      if (event.type !== 'cluster-rolled-back' || event.cluster !== p.remaining[0]) return illegal();
      const remaining = p.remaining.slice(1);
      if (remaining.length > 0) return { ...state, phase: { ...p, remaining } };
      return { ...state, phase: afterRollback(p.wave, p.revert ?? [], p.reason) };
    }
    case 'paused':
    case 'done':
      return illegal();
  }
}

/** Whether a control applies to the state now (for the CLI to refuse early); the reason when it does not. */
export function controlRefusal(config: MachineConfig, state: MachineState, action: ControlAction): string | null {
  try {
    transition(config, state, { type: 'control', at: 0, action, by: '-' });
    return null;
  } catch (err) {
    if (err instanceof IllegalTransition) return err.message;
    throw err;
  }
}

function control(
  config: MachineConfig,
  state: MachineState,
  e: Extract<MachineEvent, { type: 'control' }>,
  illegal: (message?: string) => never,
): MachineState {
  const p = state.phase;
  const why = e.reason ? `: ${e.reason}` : '';
  switch (e.action) {
    case 'pause':
      if (!isActive(p)) return illegal(`the rollout is ${describe(p)}; only a running rollout can be paused`);
      return { ...state, phase: { kind: 'paused', wave: p.wave, reason: `paused by ${e.by}${why}`, resume: p } };
    case 'resume':
      if (p.kind !== 'paused') return illegal(`the rollout is ${describe(p)}, not paused`);
      return { ...state, phase: p.resume };
    case 'abort':
      if (p.kind === 'rollback' || p.kind === 'revert' || p.kind === 'done')
        return illegal(`the rollout is ${describe(p)}; there is nothing to abort`);
      if (p.kind === 'contract' || (p.kind === 'paused' && p.resume.kind === 'contract')) return illegal(CONTRACTING);
      return rollback(config, state, p.wave, state.touched, `aborted by ${e.by}${why}`);
    case 'promote': {
      const at = p.kind === 'paused' ? p.resume : p;
      if (at.kind === 'migrate' || at.kind === 'contract') {
        return illegal('the rollout is running data migrations, which promote does not skip: promote once they have run');
      }
      if (!isActive(at) || at.kind === 'approval') {
        return illegal(
          at.kind === 'approval'
            ? 'the wave is waiting for approvals, and promote does not bypass them: approve it with `meridian approve`'
            : `the rollout is ${describe(p)}; only a wave in progress can be promoted`,
        );
      }
      const overridden = state.overridden.includes(at.wave) ? state.overridden : [...state.overridden, at.wave];
      if (!('batch' in at)) return illegal();
      return { ...state, overridden, phase: { kind: 'promote', wave: at.wave, batch: at.batch } };
    }
  }
}

function fail(config: MachineConfig, state: MachineState, p: ActivePhase, reason: string): MachineState {
  switch (config.onFailure) {
    case 'pause':
      return { ...state, phase: { kind: 'paused', wave: p.wave, reason: `failed: ${reason}`, resume: retryPhase(p) } };
    case 'rollback-wave': {
      const members = new Set(waveOf(config, p.wave).batches.flat());
      return rollback(
        config,
        state,
        p.wave,
        state.touched.filter((c) => members.has(c)),
        reason,
      );
    }
    case 'rollback-all':
      return rollback(config, state, p.wave, state.touched, reason);
    case 'fail':
      return { ...state, phase: { kind: 'done', wave: p.wave, outcome: 'failed', reason } };
  }
}

/** Where a rollout paused by a failure picks up when resumed: a step is judged again from its start (its weight set again, a new window). */
function retryPhase(p: ActivePhase): ActivePhase {
  if (p.kind === 'analysis' || p.kind === 'pause') return { kind: 'weight', ...stepAt(p) };
  return p;
}

/** Paused for an operator, whatever `onFailure` says: an inconclusive or failed analysis is not a failed canary. */
function pauseForOperator(state: MachineState, p: Extract<ActivePhase, { kind: 'analysis' }>, reason: string): MachineState {
  return { ...state, phase: { kind: 'paused', wave: p.wave, reason, resume: retryPhase(p) } };
}

function stepAt(p: { wave: number; batch: number; step: number }): { wave: number; batch: number; step: number } {
  return { wave: p.wave, batch: p.batch, step: p.step };
}

/** The next measurement: an interval from now, but never after the step's end (the last look is at its end). */
function nextLook(config: MachineConfig, at: number, end: number): number {
  return Math.min(at + Math.max(1, config.analysisIntervalMs), end);
}

function rollback(config: MachineConfig, state: MachineState, wave: number, clusters: readonly string[], reason: string): MachineState {
  const remaining = [...clusters].reverse(); // the last changed first
  const revert = revertOf(config, state, clusters);
  if (remaining.length === 0) return { ...state, phase: afterRollback(wave, revert, reason) };
  return { ...state, phase: { kind: 'rollback', wave, remaining, reason, ...(revert.length > 0 ? { revert } : {}) } };
}

const CONTRACTING =
  'every wave is promoted and the rollout is running its contract migrations: a rollback now would return clusters to a version that may need what they remove';

/**
 * The migrations a rollback of `clusters` reverts, the last run first: those this rollout ran in regions
 * where no cluster it touched stays on the new revision (a region whose earlier wave stays promoted keeps
 * its expanded schema, which the new version needs).
 */
function revertOf(config: MachineConfig, state: MachineState, clusters: readonly string[]): string[] {
  const m = config.migrations;
  const ran = state.migrations?.ran ?? [];
  if (!m || ran.length === 0) return [];
  const back = new Set(clusters);
  const staying = new Set(state.touched.filter((c) => !back.has(c)).map((c) => m.regions[c]));
  const byKey = new Map(m.steps.map((s) => [s.key, s]));
  return [...ran].reverse().filter((k) => {
    const step = byKey.get(k);
    return step !== undefined && step.phase === 'expand' && !staying.has(step.region);
  });
}

/** After a rollback's last cluster: the reverts, or done. */
function afterRollback(wave: number, revert: readonly string[], reason: string): Phase {
  return revert.length > 0
    ? { kind: 'revert', wave, remaining: [...revert], reason }
    : { kind: 'done', wave, outcome: 'rolled-back', reason };
}

function migratedOne(state: MachineState, e: Extract<MachineEvent, { type: 'migrated' }>): MachineState {
  const done = [...(state.migrations?.done ?? []), e.migration];
  const ran = [...(state.migrations?.ran ?? []), ...(e.ran ? [e.migration] : [])];
  return { ...state, migrations: { done, ran } };
}

/** The expand migration still to run before the batch's canary, for the regions of its clusters (null: none). */
function pendingExpand(config: MachineConfig, state: MachineState, wave: number, batch: number): string | null {
  const m = config.migrations;
  if (!m) return null;
  const regions = new Set(batchOf(config, wave, batch).map((c) => m.regions[c]));
  const done = new Set(state.migrations?.done ?? []);
  return m.steps.find((s) => s.phase === 'expand' && regions.has(s.region) && !done.has(s.key))?.key ?? null;
}

/** A batch starts with its expand migrations, then its canary. */
function batchPhase(config: MachineConfig, state: MachineState, wave: number, batch: number): Phase {
  const key = pendingExpand(config, state, wave, batch);
  return key === null ? { kind: 'deploy', wave, batch } : { kind: 'migrate', wave, batch, migration: key };
}

/**
 * Every wave promoted: the contract migrations, then done. (Expand migrations left, of regions no batch
 * reached, run first: that happens only in a rollout that moves no cluster, which runs migrations alone.)
 */
function afterWaves(config: MachineConfig, state: MachineState): Phase {
  const wave = config.waves.length - 1;
  const done = new Set(state.migrations?.done ?? []);
  const left = (config.migrations?.steps ?? []).filter((s) => !done.has(s.key));
  const key = (left.find((s) => s.phase === 'expand') ?? left.find((s) => s.phase === 'contract'))?.key;
  return key === undefined
    ? { kind: 'done', wave, outcome: 'promoted', reason: 'every wave promoted' }
    : { kind: 'contract', wave, migration: key };
}

function enterWave(config: MachineConfig, state: MachineState, wave: number, at: number): MachineState {
  let w = wave;
  while (w < config.waves.length && waveOf(config, w).batches.length === 0) w += 1; // nothing to do in an empty wave
  if (w >= config.waves.length) return { ...state, phase: afterWaves(config, state) };
  if (waveOf(config, w).approvals) return { ...state, phase: { kind: 'approval', wave: w } };
  return enterBatch(config, state, w, 0, at);
}

function enterBatch(config: MachineConfig, state: MachineState, wave: number, batch: number, _at: number): MachineState {
  const touched = [...state.touched];
  for (const c of batchOf(config, wave, batch)) if (!touched.includes(c)) touched.push(c);
  return { ...state, touched, phase: batchPhase(config, state, wave, batch) };
}

function isActive(p: Phase): p is ActivePhase {
  return p.kind !== 'paused' && p.kind !== 'done' && p.kind !== 'rollback' && p.kind !== 'revert';
}

function describe(p: Phase): string {
  switch (p.kind) {
    case 'paused':
      return 'paused';
    case 'done':
      return `finished (${p.outcome})`;
    case 'rollback':
    case 'revert':
      return 'rolling back';
    default:
      return 'running';
  }
}

function waveOf(config: MachineConfig, wave: number): MachineWave {
  const w = config.waves[wave];
  if (!w) throw new Error(`the rollout has no wave ${wave}`);
  return w;
}

function batchOf(config: MachineConfig, wave: number, batch: number): readonly string[] {
  const b = waveOf(config, wave).batches[batch];
  if (!b) throw new Error(`wave ${wave} has no batch ${batch}`);
  return b;
}

function stepOf(config: MachineConfig, wave: number, step: number): { weight: number; pauseMs: number | null } {
  const s = waveOf(config, wave).steps[step];
  if (!s) throw new Error(`wave ${wave} has no step ${step}`);
  return s;
}

function pauseOf(config: MachineConfig, wave: number, step: number): number {
  return stepOf(config, wave, step).pauseMs ?? config.analysisIntervalMs;
}

/** The summary columns of a state: `running`, `paused`, `awaiting-approval` or the outcome. */
export function stateLabel(state: MachineState): string {
  const p = state.phase;
  if (p.kind === 'done') return p.outcome;
  if (p.kind === 'paused') return 'paused';
  if (p.kind === 'approval') return 'awaiting-approval';
  if (p.kind === 'rollback' || p.kind === 'revert') return 'rolling-back';
  return 'running';
}

/** The step index of the state, or null outside the steps. */
export function stepIndex(state: MachineState): number | null {
  const p = state.phase.kind === 'paused' ? state.phase.resume : state.phase;
  return 'step' in p ? p.step : null;
}
