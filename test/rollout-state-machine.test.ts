/** The rollout state machine, pure: every transition from every phase, table-driven. */
import { describe, expect, it } from 'vitest';
import {
  type ControlAction,
  controlRefusal,
  effectOf,
  IllegalTransition,
  initialState,
  type MachineConfig,
  type MachineEvent,
  type MachineState,
  type Phase,
  stateLabel,
  transition,
} from '../src/rollout/state-machine.js';

const config = (over: Partial<MachineConfig> = {}): MachineConfig => ({
  waves: [
    {
      name: 'canary',
      batches: [['a']],
      steps: [
        { weight: 10, pauseMs: 1000 },
        { weight: 100, pauseMs: null },
      ],
      approvals: null,
      bakeMs: 0,
      canary: true,
    },
    {
      name: 'eu',
      batches: [['b', 'c'], ['d']],
      steps: [{ weight: 50, pauseMs: 500 }],
      approvals: { count: 1, roles: ['rm'] },
      bakeMs: 2000,
      canary: true,
    },
    {
      name: 'empty',
      batches: [],
      steps: [{ weight: 100, pauseMs: null }],
      approvals: { count: 2, roles: ['rm'] },
      bakeMs: 0,
      canary: true,
    },
  ],
  onFailure: 'rollback-wave',
  analysisIntervalMs: 300,
  ...over,
});

const C = config();
const at = 10_000;
const st = (phase: Phase, touched: string[] = ['a'], overridden: number[] = []): MachineState => ({ phase, touched, overridden });
const ev = {
  approved: { type: 'approvals-met', at, approvers: ['bob'] },
  rejected: { type: 'approval-rejected', at, by: 'bob', reason: 'freeze' },
  ready: { type: 'canary-ready', at },
  weight: { type: 'weight-set', at },
  timer: { type: 'timer-elapsed', at },
  pass: { type: 'verdict', at, outcome: 'pass' },
  fail: { type: 'verdict', at, outcome: 'fail', reason: 'error-rate 5% > 1%' },
  error: { type: 'verdict', at, outcome: 'error', reason: 'prometheus down' },
  nodata: { type: 'verdict', at, outcome: 'no-data' },
  inconclusive: { type: 'verdict', at, outcome: 'inconclusive' },
  running: { type: 'verdict', at, outcome: 'running' },
  promoted: { type: 'promoted', at },
  rolledA: { type: 'cluster-rolled-back', at, cluster: 'a' },
  rolledB: { type: 'cluster-rolled-back', at, cluster: 'b' },
  failed: { type: 'effect-failed', at, reason: 'canary unhealthy' },
} satisfies Record<string, MachineEvent>;
const ctl = (action: ControlAction, reason?: string): MachineEvent => ({
  type: 'control',
  at,
  action,
  by: 'ops',
  ...(reason ? { reason } : {}),
});

describe('rollout state machine', () => {
  it('starts in the first wave (or at its approval gate), and is promoted at once when there is nothing to do', () => {
    expect(initialState(C, at)).toEqual(st({ kind: 'deploy', wave: 0, batch: 0 }));
    expect(initialState(config({ waves: [C.waves[1]!] }), at)).toEqual(st({ kind: 'approval', wave: 0 }, []));
    expect(initialState(config({ waves: [] }), at).phase).toMatchObject({ kind: 'done', outcome: 'promoted' });
  });

  // [name, from, event, expected next phase (and touched)]
  const cases: [string, MachineState, MachineEvent, Phase, string[]?][] = [
    ['canary ready -> first step', st({ kind: 'deploy', wave: 0, batch: 0 }), ev.ready, { kind: 'weight', wave: 0, batch: 0, step: 0 }],
    [
      'weight set -> the first look after an analysis interval; the step ends after its pause',
      st({ kind: 'weight', wave: 0, batch: 0, step: 0 }),
      ev.weight,
      // past its end, a step short of samples may measure on for twice its pause
      { kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 0, until: at + 300, end: at + 1000, waitEnd: at + 3000 },
    ],
    [
      'a step without pause lasts one analysis interval',
      st({ kind: 'weight', wave: 0, batch: 0, step: 1 }),
      ev.weight,
      { kind: 'pause', wave: 0, batch: 0, step: 1, attempt: 0, until: at + 300, end: at + 300, waitEnd: at + 900 },
    ],
    [
      'pause elapsed before the step ends -> a measurement that is not final',
      st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 1, until: at, end: at + 700 }),
      ev.timer,
      { kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 1, end: at + 700, final: false },
    ],
    [
      "pause elapsed at the step's end -> the final measurement",
      st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 2, until: at, end: at }),
      ev.timer,
      { kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 2, end: at, final: true },
    ],
    [
      'running -> measure again after an interval',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 0, end: at + 700, final: false }),
      ev.running,
      { kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 1, until: at + 300, end: at + 700 },
    ],
    [
      "pass before the step's end -> measure again, the last look at the end",
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 1, end: at + 200, final: false }),
      ev.pass,
      { kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 2, until: at + 200, end: at + 200 },
    ],
    [
      'pass -> next step',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 0 }),
      ev.pass,
      { kind: 'weight', wave: 0, batch: 0, step: 1 },
    ],
    [
      'pass at the last step, no bake -> promote',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 1, attempt: 0 }),
      ev.pass,
      { kind: 'promote', wave: 0, batch: 0 },
    ],
    [
      'pass at the last step with bake -> bake',
      st({ kind: 'analysis', wave: 1, batch: 0, step: 0, attempt: 0 }, ['a', 'b', 'c']),
      ev.pass,
      { kind: 'bake', wave: 1, batch: 0, until: at + 2000 },
    ],
    ['bake elapsed -> promote', st({ kind: 'bake', wave: 1, batch: 0, until: at }), ev.timer, { kind: 'promote', wave: 1, batch: 0 }],
    [
      'promoted, more batches -> next batch (touched grows)',
      st({ kind: 'promote', wave: 1, batch: 0 }, ['a', 'b', 'c']),
      ev.promoted,
      { kind: 'deploy', wave: 1, batch: 1 },
      ['a', 'b', 'c', 'd'],
    ],
    [
      'promoted, last batch -> next wave approval gate',
      st({ kind: 'promote', wave: 0, batch: 0 }),
      ev.promoted,
      { kind: 'approval', wave: 1 },
    ],
    [
      'promoted, last wave (an empty wave is skipped, its gate too) -> done',
      st({ kind: 'promote', wave: 1, batch: 1 }),
      ev.promoted,
      { kind: 'done', wave: 2, outcome: 'promoted', reason: 'every wave promoted' },
    ],
    ['approved -> first batch', st({ kind: 'approval', wave: 1 }), ev.approved, { kind: 'deploy', wave: 1, batch: 0 }, ['a', 'b', 'c']],
    [
      'rejected -> failure policy (nothing of the wave touched: done)',
      st({ kind: 'approval', wave: 1 }),
      ev.rejected,
      { kind: 'done', wave: 1, outcome: 'rolled-back', reason: 'wave eu rejected by bob: freeze' },
    ],
    [
      'fail -> roll back the wave',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 0 }),
      ev.fail,
      { kind: 'rollback', wave: 0, remaining: ['a'], reason: 'wave canary, step 1: the analysis says fail: error-rate 5% > 1%' },
    ],
    [
      'error -> paused for an operator (whatever onFailure says); resume measures the step again from its start',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 0 }),
      ev.error,
      {
        kind: 'paused',
        wave: 0,
        reason: 'wave canary, step 1: the analysis says error: prometheus down',
        resume: { kind: 'weight', wave: 0, batch: 0, step: 0 },
      },
    ],
    [
      'no data -> paused for an operator',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 0 }),
      ev.nodata,
      {
        kind: 'paused',
        wave: 0,
        reason: 'wave canary, step 1: the analysis says no-data',
        resume: { kind: 'weight', wave: 0, batch: 0, step: 0 },
      },
    ],
    [
      'inconclusive -> paused for an operator',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 1 }),
      ev.inconclusive,
      {
        kind: 'paused',
        wave: 0,
        reason: 'wave canary, step 1: the analysis says inconclusive',
        resume: { kind: 'weight', wave: 0, batch: 0, step: 0 },
      },
    ],
    [
      "running at the step's end (short of samples) within sampleWait -> measure on past the end, every look final",
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 3, end: at - 100, final: true, waitEnd: at + 200 }),
      ev.running,
      { kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 4, until: at + 200, end: at - 100, waitEnd: at + 200, extending: true },
    ],
    [
      'a look past the end for samples is final and says so',
      st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 4, until: at, end: at - 100, waitEnd: at + 200, extending: true }),
      ev.timer,
      { kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 4, end: at - 100, final: true, waitEnd: at + 200, extending: true },
    ],
    [
      'running when sampleWait is used up -> paused for an operator',
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 9, end: at - 900, final: true, waitEnd: at, extending: true }),
      ev.running,
      {
        kind: 'paused',
        wave: 0,
        reason: "wave canary, step 1: the analysis was still running at the step's end",
        resume: { kind: 'weight', wave: 0, batch: 0, step: 0 },
      },
    ],
    [
      "running at the step's end (a judge that did not decide) -> paused for an operator",
      st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 3, end: at, final: true }),
      ev.running,
      {
        kind: 'paused',
        wave: 0,
        reason: "wave canary, step 1: the analysis was still running at the step's end",
        resume: { kind: 'weight', wave: 0, batch: 0, step: 0 },
      },
    ],
    [
      'a deploy that fails -> roll back the wave (only its clusters)',
      st({ kind: 'deploy', wave: 1, batch: 1 }, ['a', 'b', 'c', 'd']),
      ev.failed,
      { kind: 'rollback', wave: 1, remaining: ['d', 'c', 'b'], reason: 'canary unhealthy' },
    ],
    [
      'rolled back one -> the next',
      st({ kind: 'rollback', wave: 1, remaining: ['b', 'a'], reason: 'r' }),
      ev.rolledB,
      { kind: 'rollback', wave: 1, remaining: ['a'], reason: 'r' },
    ],
    [
      'rolled back the last -> done, rolled back',
      st({ kind: 'rollback', wave: 1, remaining: ['a'], reason: 'r' }),
      ev.rolledA,
      { kind: 'done', wave: 1, outcome: 'rolled-back', reason: 'r' },
    ],
    [
      'a rollback that fails -> done, failed',
      st({ kind: 'rollback', wave: 1, remaining: ['a'], reason: 'r' }),
      ev.failed,
      { kind: 'done', wave: 1, outcome: 'failed', reason: 'rollback did not complete: canary unhealthy' },
    ],
    [
      'pause (operator) -> paused, remembering where',
      st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 0, until: 5 }),
      ctl('pause', 'odd'),
      {
        kind: 'paused',
        wave: 0,
        reason: 'paused by ops: odd',
        resume: { kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 0, until: 5 },
      },
    ],
    [
      'pause at an approval gate',
      st({ kind: 'approval', wave: 1 }),
      ctl('pause'),
      { kind: 'paused', wave: 1, reason: 'paused by ops', resume: { kind: 'approval', wave: 1 } },
    ],
    [
      'resume -> where it was',
      st({ kind: 'paused', wave: 0, reason: 'x', resume: { kind: 'weight', wave: 0, batch: 0, step: 1 } }),
      ctl('resume'),
      { kind: 'weight', wave: 0, batch: 0, step: 1 },
    ],
    [
      'abort -> roll back everything touched',
      st({ kind: 'weight', wave: 1, batch: 1, step: 0 }, ['a', 'b', 'c', 'd']),
      ctl('abort', 'no'),
      { kind: 'rollback', wave: 1, remaining: ['d', 'c', 'b', 'a'], reason: 'aborted by ops: no' },
    ],
    [
      'abort while paused',
      st({ kind: 'paused', wave: 0, reason: 'x', resume: { kind: 'approval', wave: 1 } }),
      ctl('abort'),
      { kind: 'rollback', wave: 0, remaining: ['a'], reason: 'aborted by ops' },
    ],
    [
      'promote (override) -> promote the batch now',
      st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 0, until: 5 }),
      ctl('promote', 'hotfix'),
      { kind: 'promote', wave: 0, batch: 0 },
    ],
    [
      'promote while paused',
      st({ kind: 'paused', wave: 0, reason: 'x', resume: { kind: 'analysis', wave: 0, batch: 0, step: 1, attempt: 0 } }),
      ctl('promote', 'ok'),
      { kind: 'promote', wave: 0, batch: 0 },
    ],
    [
      'after an override the next batch of the wave skips its steps',
      st({ kind: 'deploy', wave: 1, batch: 1 }, ['a', 'b', 'c', 'd'], [1]),
      ev.ready,
      { kind: 'promote', wave: 1, batch: 1 },
    ],
  ];
  for (const [name, from, event, phase, touched] of cases) {
    it(name, () => {
      const next = transition(C, from, event);
      expect(next.phase).toEqual(phase);
      if (touched) expect(next.touched).toEqual(touched);
    });
  }

  it('records the override on the wave', () => {
    expect(transition(C, st({ kind: 'weight', wave: 0, batch: 0, step: 0 }), ctl('promote', 'x')).overridden).toEqual([0]);
  });

  it('applies the failure policy: pause (and resume judges the step again), rollback-all, fail', () => {
    const failing = st({ kind: 'analysis', wave: 1, batch: 1, step: 0, attempt: 0 }, ['a', 'b', 'c', 'd']);
    const paused = transition(config({ onFailure: 'pause' }), failing, ev.fail);
    expect(paused.phase).toMatchObject({ kind: 'paused', reason: 'failed: wave eu, step 1: the analysis says fail: error-rate 5% > 1%' });
    expect(transition(C, paused, ctl('resume')).phase).toEqual({ kind: 'weight', wave: 1, batch: 1, step: 0 });
    expect(transition(config({ onFailure: 'rollback-all' }), failing, ev.fail).phase).toMatchObject({
      kind: 'rollback',
      remaining: ['d', 'c', 'b', 'a'],
    });
    expect(transition(config({ onFailure: 'fail' }), failing, ev.fail).phase).toMatchObject({ kind: 'done', outcome: 'failed' });
  });

  it('goes straight from deploy to promote in a wave without canary (a rollback)', () => {
    const c = config({ waves: [{ name: 'rollback', batches: [['a', 'b']], steps: [], approvals: null, bakeMs: 0, canary: false }] });
    const s0 = initialState(c, at);
    expect(effectOf(c, s0)).toEqual({ kind: 'deploy-canary', clusters: ['a', 'b'] });
    const s1 = transition(c, s0, ev.ready);
    expect(s1.phase).toEqual({ kind: 'promote', wave: 0, batch: 0 });
    expect(transition(c, s1, ev.promoted).phase).toMatchObject({ kind: 'done', outcome: 'promoted' });
  });

  // every phase × every event that it must refuse
  const phases: MachineState[] = [
    st({ kind: 'approval', wave: 1 }),
    st({ kind: 'deploy', wave: 0, batch: 0 }),
    st({ kind: 'weight', wave: 0, batch: 0, step: 0 }),
    st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 0, until: 0 }),
    st({ kind: 'analysis', wave: 0, batch: 0, step: 0, attempt: 0 }),
    st({ kind: 'bake', wave: 1, batch: 0, until: 0 }),
    st({ kind: 'promote', wave: 0, batch: 0 }),
    st({ kind: 'rollback', wave: 0, remaining: ['a'], reason: 'r' }),
    st({ kind: 'paused', wave: 0, reason: 'r', resume: { kind: 'weight', wave: 0, batch: 0, step: 0 } }),
    st({ kind: 'done', wave: 0, outcome: 'promoted', reason: 'r' }),
    st({ kind: 'migrate', wave: 0, batch: 0, migration: 'eu/web/m' }),
    st({ kind: 'contract', wave: 1, migration: 'eu/web/m' }),
    st({ kind: 'revert', wave: 0, remaining: ['eu/web/m'], reason: 'r' }),
  ];
  const accepts: Record<Phase['kind'], string[]> = {
    approval: ['approvals-met', 'approval-rejected', 'effect-failed', 'pause', 'abort'],
    deploy: ['canary-ready', 'effect-failed', 'pause', 'abort', 'promote'],
    weight: ['weight-set', 'effect-failed', 'pause', 'abort', 'promote'],
    pause: ['timer-elapsed', 'effect-failed', 'pause', 'abort', 'promote'],
    analysis: ['verdict', 'effect-failed', 'pause', 'abort', 'promote'],
    bake: ['timer-elapsed', 'effect-failed', 'pause', 'abort', 'promote'],
    promote: ['promoted', 'effect-failed', 'pause', 'abort', 'promote'],
    rollback: ['cluster-rolled-back', 'effect-failed'],
    paused: ['resume', 'abort', 'promote'],
    done: [],
    migrate: ['effect-failed', 'migrated', 'pause', 'abort'],
    contract: ['effect-failed', 'migrated', 'pause'],
    revert: ['effect-failed', 'migration-reverted'],
  };
  const all: [string, MachineEvent][] = [
    ['approvals-met', ev.approved],
    ['approval-rejected', ev.rejected],
    ['canary-ready', ev.ready],
    ['weight-set', ev.weight],
    ['timer-elapsed', ev.timer],
    ['verdict', ev.pass],
    ['promoted', ev.promoted],
    ['cluster-rolled-back', ev.rolledA],
    ['effect-failed', ev.failed],
    ['migrated', { type: 'migrated', at, migration: 'eu/web/m', ran: true }],
    ['migration-reverted', { type: 'migration-reverted', at, migration: 'eu/web/m' }],
    ['pause', ctl('pause')],
    ['resume', ctl('resume')],
    ['abort', ctl('abort')],
    ['promote', ctl('promote', 'r')],
  ];
  for (const s of phases) {
    it(`phase ${s.phase.kind} accepts exactly ${accepts[s.phase.kind].join(', ') || 'nothing'}`, () => {
      const accepted = all
        .filter(([, e]) => {
          try {
            transition(C, s, e);
            return true;
          } catch (err) {
            expect(err).toBeInstanceOf(IllegalTransition);
            return false;
          }
        })
        .map(([n]) => n);
      expect(accepted).toEqual(accepts[s.phase.kind]);
    });
  }

  it('says why a control is refused, for the CLI', () => {
    expect(controlRefusal(C, st({ kind: 'approval', wave: 1 }), 'promote')).toMatch(/does not bypass/);
    expect(controlRefusal(C, st({ kind: 'done', wave: 0, outcome: 'promoted', reason: '' }), 'abort')).toMatch(/finished \(promoted\)/);
    expect(controlRefusal(C, st({ kind: 'weight', wave: 0, batch: 0, step: 0 }), 'resume')).toMatch(/not paused/);
    expect(controlRefusal(C, st({ kind: 'weight', wave: 0, batch: 0, step: 0 }), 'pause')).toBeNull();
  });

  it('asks for one effect per phase, and none while paused or done', () => {
    expect(effectOf(C, st({ kind: 'approval', wave: 1 }))).toEqual({ kind: 'check-approvals', wave: 1 });
    expect(effectOf(C, st({ kind: 'weight', wave: 1, batch: 0, step: 0 }))).toEqual({
      kind: 'set-weight',
      clusters: ['b', 'c'],
      weight: 50,
    });
    expect(effectOf(C, st({ kind: 'pause', wave: 0, batch: 0, step: 0, attempt: 0, until: 77 }))).toEqual({ kind: 'wait', until: 77 });
    expect(effectOf(C, st({ kind: 'analysis', wave: 0, batch: 0, step: 1, attempt: 1 }))).toEqual({
      kind: 'judge',
      wave: 0,
      step: 1,
      attempt: 1,
      clusters: ['a'],
      weight: 100,
      final: true,
    });
    expect(effectOf(C, st({ kind: 'promote', wave: 1, batch: 1 }))).toEqual({ kind: 'promote', clusters: ['d'] });
    expect(effectOf(C, st({ kind: 'rollback', wave: 0, remaining: ['c', 'a'], reason: '' }))).toEqual({
      kind: 'rollback-cluster',
      cluster: 'c',
    });
    expect(effectOf(C, st({ kind: 'paused', wave: 0, reason: '', resume: { kind: 'approval', wave: 1 } }))).toBeNull();
    expect(stateLabel(st({ kind: 'approval', wave: 1 }))).toBe('awaiting-approval');
  });
});
