/** The state machine's data-migration phases, pure: expand before a batch's canary, contract after the last wave, reverts after a rollback. */
import { describe, expect, it } from 'vitest';
import {
  controlRefusal,
  effectOf,
  type Effect,
  IllegalTransition,
  initialState,
  type MachineConfig,
  type MachineEvent,
  type MachineState,
  transition,
} from '../src/rollout/state-machine.js';

const at = 1000;
const wave = (name: string, batches: string[][]): MachineConfig['waves'][number] => ({
  name,
  batches,
  steps: [{ weight: 50, pauseMs: 0 }],
  approvals: null,
  bakeMs: 0,
  canary: true,
});

/** Waves canary [a] (eu) then rest [b (eu), c (us)]; an expand migration per region, a contract in eu. */
const config = (over: Partial<MachineConfig> = {}): MachineConfig => ({
  waves: [wave('canary', [['a']]), wave('rest', [['b', 'c']])],
  onFailure: 'rollback-all',
  analysisIntervalMs: 0,
  migrations: {
    regions: { a: 'eu', b: 'eu', c: 'us' },
    steps: [
      { key: 'eu/web/add-col', region: 'eu', phase: 'expand' },
      { key: 'eu/web/add-index', region: 'eu', phase: 'expand' },
      { key: 'us/web/add-col', region: 'us', phase: 'expand' },
      { key: 'eu/web/drop-old', region: 'eu', phase: 'contract' },
    ],
  },
  ...over,
});

/** What the world answers to each effect; `fail` makes the effect for which it returns true fail. */
function answer(effect: Effect, fail: (e: Effect) => boolean): MachineEvent {
  if (fail(effect)) return { type: 'effect-failed', at, reason: `${JSON.stringify(effect)} failed` };
  switch (effect.kind) {
    case 'migrate':
      return effect.direction === 'up'
        ? { type: 'migrated', at, migration: effect.migration, ran: true }
        : { type: 'migration-reverted', at, migration: effect.migration };
    case 'deploy-canary':
      return { type: 'canary-ready', at };
    case 'set-weight':
      return { type: 'weight-set', at };
    case 'wait':
      return { type: 'timer-elapsed', at };
    case 'judge':
      return { type: 'verdict', at, outcome: 'pass' };
    case 'promote':
      return { type: 'promoted', at };
    case 'rollback-cluster':
      return { type: 'cluster-rolled-back', at, cluster: effect.cluster };
    case 'check-approvals':
      return { type: 'approvals-met', at, approvers: [] };
  }
}

/** Runs the machine to its end; the effects it asked for, as short strings. */
function run(c: MachineConfig, fail: (e: Effect) => boolean = () => false): { trace: string[]; state: MachineState } {
  let state = initialState(c, at);
  const trace: string[] = [];
  for (let i = 0; i < 100; i++) {
    const e = effectOf(c, state);
    if (e === null) return { trace, state };
    trace.push(e.kind === 'migrate' ? `${e.direction} ${e.migration}` : e.kind === 'rollback-cluster' ? `rollback ${e.cluster}` : e.kind);
    state = transition(c, state, answer(e, fail));
  }
  throw new Error('the machine did not end');
}

const forward = (t: string[]): string[] => t.filter((x) => /^(up|down|deploy-canary|promote|rollback)/.test(x));

describe('data migrations in the state machine', () => {
  it('runs expand migrations per region before the first canary there, contract after the last wave', () => {
    const { trace, state } = run(config());
    expect(forward(trace)).toEqual([
      'up eu/web/add-col',
      'up eu/web/add-index',
      'deploy-canary', // a
      'promote',
      'up us/web/add-col', // eu is migrated already: only us before [b, c]
      'deploy-canary',
      'promote',
      'up eu/web/drop-old',
    ]);
    expect(state.phase).toMatchObject({ kind: 'done', outcome: 'promoted' });
    expect(state.migrations?.ran).toEqual(['eu/web/add-col', 'eu/web/add-index', 'us/web/add-col', 'eu/web/drop-old']);
  });

  it('a failed canary after both regions migrated: every cluster back, then down for each expand, the last first', () => {
    let deploys = 0;
    const { trace, state } = run(config(), (e) => e.kind === 'deploy-canary' && ++deploys === 2);
    expect(forward(trace)).toEqual([
      'up eu/web/add-col',
      'up eu/web/add-index',
      'deploy-canary',
      'promote',
      'up us/web/add-col',
      'deploy-canary', // fails
      'rollback c',
      'rollback b',
      'rollback a',
      'down us/web/add-col',
      'down eu/web/add-index',
      'down eu/web/add-col',
    ]);
    expect(state.phase).toMatchObject({ kind: 'done', outcome: 'rolled-back' });
  });

  it('rollback-wave keeps the schema of a region whose earlier wave stays promoted', () => {
    let deploys = 0;
    const { trace, state } = run(config({ onFailure: 'rollback-wave' }), (e) => e.kind === 'deploy-canary' && ++deploys === 2);
    // a (eu) stays on the new version, which needs eu's expanded schema: only us is reverted
    expect(forward(trace).slice(5)).toEqual(['deploy-canary', 'rollback c', 'rollback b', 'down us/web/add-col']);
    expect(state.phase).toMatchObject({ kind: 'done', outcome: 'rolled-back' });
  });

  it('a failed up is a failed gate: the rollback reverts only the ups that ran', () => {
    const { trace, state } = run(config(), (e) => e.kind === 'migrate' && e.migration === 'eu/web/add-index');
    expect(forward(trace)).toEqual(['up eu/web/add-col', 'up eu/web/add-index', 'rollback a', 'down eu/web/add-col']);
    expect(state.phase).toMatchObject({ kind: 'done', outcome: 'rolled-back' });
  });

  it('a failed up with onFailure pause retries the same migration when resumed', () => {
    const c = config({ onFailure: 'pause' });
    let s = initialState(c, at);
    s = transition(c, s, { type: 'effect-failed', at, reason: 'psql: connection refused' });
    expect(s.phase).toMatchObject({ kind: 'paused', reason: 'failed: psql: connection refused' });
    s = transition(c, s, { type: 'control', at, action: 'resume', by: 'op' });
    expect(effectOf(c, s)).toEqual({ kind: 'migrate', migration: 'eu/web/add-col', direction: 'up' });
  });

  it('an up another rollout applied is not reverted by this one', () => {
    const c = config();
    let s = initialState(c, at);
    s = transition(c, s, { type: 'migrated', at, migration: 'eu/web/add-col', ran: false });
    s = transition(c, s, { type: 'migrated', at, migration: 'eu/web/add-index', ran: true });
    s = transition(c, s, { type: 'control', at, action: 'abort', by: 'op' });
    expect(s.phase).toMatchObject({ kind: 'rollback', remaining: ['a'], revert: ['eu/web/add-index'] });
  });

  it('a failed down ends the rollback failed, naming what is left', () => {
    const { state } = run(config(), (e) => (e.kind === 'migrate' && e.direction === 'down') || (e.kind === 'deploy-canary' && true));
    expect(state.phase).toMatchObject({ kind: 'done', outcome: 'failed' });
    expect((state.phase as { reason: string }).reason).toMatch(
      /^rollback did not complete: the clusters are back, but .*eu\/web\/add-index/,
    );
  });

  it('a failed contract ends failed without a rollback; abort and promote are refused while contracting', () => {
    const c = config();
    const contracting: MachineState = {
      phase: { kind: 'contract', wave: 1, migration: 'eu/web/drop-old' },
      touched: ['a', 'b', 'c'],
      overridden: [],
      migrations: { done: ['eu/web/add-col', 'eu/web/add-index', 'us/web/add-col'], ran: ['eu/web/add-col'] },
    };
    expect(controlRefusal(c, contracting, 'abort')).toMatch(/contract migrations/);
    expect(controlRefusal(c, contracting, 'promote')).toMatch(/data migrations/);
    const s = transition(c, contracting, { type: 'effect-failed', at, reason: 'contract eu/web/drop-old failed' });
    expect(s.phase).toMatchObject({ kind: 'done', outcome: 'failed' });
    expect((s.phase as { reason: string }).reason).toMatch(/every wave is promoted and stays/);
  });

  it('promote is refused during an expand; a migrated event for another migration is illegal', () => {
    const c = config();
    const s = initialState(c, at);
    expect(controlRefusal(c, s, 'promote')).toMatch(/data migrations/);
    expect(() => transition(c, s, { type: 'migrated', at, migration: 'us/web/add-col', ran: true })).toThrow(IllegalTransition);
    expect(() => transition(c, s, { type: 'canary-ready', at })).toThrow(IllegalTransition);
  });

  it('a rollout that moves no cluster runs its migrations alone: expands left first, then contracts', () => {
    const c = config({ waves: [wave('canary', [])] });
    const { trace, state } = run(c);
    expect(trace).toEqual(['up eu/web/add-col', 'up eu/web/add-index', 'up us/web/add-col', 'up eu/web/drop-old']);
    expect(state.phase).toMatchObject({ kind: 'done', outcome: 'promoted' });
  });

  it('without migrations the machine is as before: no migration field, no migrate phases', () => {
    const c = config();
    const { migrations: _, ...plain } = c;
    const { trace, state } = run(plain);
    expect(trace.some((t) => t.startsWith('up') || t.startsWith('down'))).toBe(false);
    expect(state).not.toHaveProperty('migrations');
    expect(initialState(plain, at).phase).toEqual({ kind: 'deploy', wave: 0, batch: 0 });
  });
});
