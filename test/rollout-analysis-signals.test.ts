/**
 * What hides a canary's failures, judged purely: canary endpoints taken out of rotation during a step fail
 * it, a canary that lost its share of the traffic cannot pass; and a step short of samples at its end
 * measures on up to its bound, saying how long it waited. The router's counters feed the signals.
 */
import { describe, expect, it } from 'vitest';
import { RouterMetrics } from '../src/router/router-metrics.js';
import type { Upstream } from '../src/router/upstream.js';
import { Rollout } from '../src/spec/schema.js';
import {
  type Analysis,
  type CanarySignals,
  type MetricSample,
  StepVerdict,
  judgeSignals,
  judgeStep,
  routerCountersFromText,
  routerSignals,
} from '../src/rollout/analysis/index.js';

const WINDOW = { start: '2026-11-26T10:00:00.000Z', end: '2026-11-26T10:00:30.000Z' };
const ANALYSIS = Rollout.parse({ analysis: { minSamples: 100, metrics: [{ name: 'error-rate', max: '1%' }] } }).analysis as Analysis;

const errors = (requests: number, errs: number): Record<string, MetricSample> => ({
  'error-rate': {
    metric: 'error-rate',
    query: 'q',
    baselineQuery: null,
    window: WINDOW,
    canary: { kind: 'error-rate', requests, errors: errs, basis: 'attempts', clients: { requests, errors: 0 } },
    baseline: null,
    error: null,
    notes: [],
  },
});
const none: CanarySignals = { takenOut: [], share: { canary: 250, total: 1000, weight: 25 } };

describe('signals that hide failures', () => {
  it('a canary endpoint ejected or failing health checks during the step fails it at once, and the reason says so', () => {
    const signals: CanarySignals = { ...none, takenOut: [{ cluster: 'eu-west-1', cause: 'ejected', count: 1 }] };
    const v = judgeStep(ANALYSIS, errors(40, 0), [], { final: false, signals });
    expect(v.outcome).toBe('fail');
    expect(v.reason).toBe('canary endpoints taken out of rotation during the step: eu-west-1 ejected by outlier detection (1×)');
    expect(StepVerdict.parse(v).signals?.outcome).toBe('fail');
    const unhealthy = judgeSignals({ ...none, takenOut: [{ cluster: 'a', cause: 'unhealthy', count: 2 }] }, { alpha: 0.05, minSamples: 1 });
    expect(unhealthy.reason).toMatch(/a failing active health checks \(2×\)/);
  });

  it('a canary that lost its share of the traffic to failover cannot pass; one that kept it can', () => {
    const lost: CanarySignals = { takenOut: [], share: { canary: 40, total: 1000, weight: 25 } };
    const v = judgeStep(ANALYSIS, errors(400, 0), [], { final: true, signals: lost });
    expect(v.outcome).toBe('inconclusive');
    expect(v.reason).toMatch(/^the canary lost its share of the traffic: 40 of 1000 attempts \(4%\) at weight 25%/);
    expect(judgeStep(ANALYSIS, errors(400, 0), [], { final: true, signals: none }).outcome).toBe('pass');
    // a share a little under the weight is chance, not failover
    expect(judgeSignals({ takenOut: [], share: { canary: 200, total: 1000, weight: 25 } }, { alpha: 0.05, minSamples: 100 }).outcome).toBe(
      'ok',
    );
  });
});

describe('too few samples at the step’s end', () => {
  it('measures on up to the bound, then pauses inconclusive saying how long it waited; a pass says how long it took', () => {
    const short = errors(60, 0);
    const on = judgeStep(ANALYSIS, short, [], { final: true, sampleWait: { waitedMs: 0, maxWaitMs: 60_000 } });
    expect(on.outcome).toBe('running');
    expect(on.reason).toMatch(
      /^too few samples at the step's end: measuring on \(0 s of at most 60 s past its end\); error-rate: .*60 of minSamples 100/,
    );
    const still = judgeStep(ANALYSIS, short, [], { final: true, sampleWait: { waitedMs: 20_000, maxWaitMs: 60_000 } });
    expect(still.outcome).toBe('running');
    expect(still.waitedMs).toBe(20_000);
    const over = judgeStep(ANALYSIS, short, [], { final: true, sampleWait: { waitedMs: 61_000, maxWaitMs: 60_000 } });
    expect(over.outcome).toBe('inconclusive');
    expect(over.reason).toMatch(
      /^still too few samples after waiting 61 s past the step's end \(the bound, rollout\.analysis\.sampleWait\)/,
    );
    const pass = judgeStep(ANALYSIS, errors(150, 0), [], { final: true, sampleWait: { waitedMs: 30_000, maxWaitMs: 60_000 } });
    expect(pass.outcome).toBe('pass');
    expect(pass.reason).toMatch(/after waiting 30 s past the step's end for samples$/);
    // a failure is not waited on
    expect(judgeStep(ANALYSIS, errors(60, 10), [], { final: true, sampleWait: { waitedMs: 0, maxWaitMs: 60_000 } }).outcome).toBe('fail');
    // a value beyond a limit without significance is undecided too: more samples decide it (a good canary's
    // noisy p99 paused the README's rollout of a good version before this), up to the same bound
    const unproven = judgeStep(ANALYSIS, errors(200, 3), [], { final: true, sampleWait: { waitedMs: 0, maxWaitMs: 60_000 } });
    expect(unproven.outcome).toBe('running');
    expect(unproven.reason).toMatch(/^a limit crossed but not significantly at the step's end: measuring on \(0 s of at most 60 s/);
    const unprovenOver = judgeStep(ANALYSIS, errors(200, 3), [], { final: true, sampleWait: { waitedMs: 60_000, maxWaitMs: 60_000 } });
    expect(unprovenOver.outcome).toBe('inconclusive');
    expect(unprovenOver.reason).toMatch(/^still a limit crossed but not significantly after waiting 60 s/);
    expect(judgeStep(ANALYSIS, errors(200, 3), [], { final: true }).outcome).toBe('inconclusive');
    // without the bound (an older rollout), as before: inconclusive at once
    expect(judgeStep(ANALYSIS, short, [], { final: true }).outcome).toBe('inconclusive');
  });
});

describe('signals from the router’s counters', () => {
  it('canary endpoints taken out and the canary’s share of the attempts, between two snapshots', async () => {
    const m = new RouterMetrics();
    const up = (cluster: string, version: string, track: 'stable' | 'canary') =>
      ({
        service: 'web',
        cluster,
        version,
        track,
        attemptSeries: new Int32Array(9).fill(-1),
        attemptDurationSeries: -1,
      }) as unknown as Upstream;
    const canary = up('eu-west-1', '2.0.0', 'canary');
    const stable = up('eu-west-1', '1.0.0', 'stable');
    m.attempts.inc(m.attemptSeries(canary, 0), 10);
    const start = routerCountersFromText(await m.registry.metrics(), WINDOW.start);
    m.attempts.inc(m.attemptSeries(canary, 0), 40);
    m.attempts.inc(m.attemptSeries(canary, 3), 10); // 5xx
    m.attempts.inc(m.attemptSeries(stable, 0), 150);
    m.countTakenOut(canary, 'ejected');
    m.countTakenOut(stable, 'unhealthy'); // the baseline's: not the canary's
    const end = routerCountersFromText(await m.registry.metrics(), WINDOW.end);
    const ctx = { service: 'web', clusters: ['eu-west-1'], canaryVersion: '2.0.0', baselineVersion: '1.0.0', window: WINDOW };
    expect(routerSignals(ctx, start, end, 25)).toEqual({
      takenOut: [{ cluster: 'eu-west-1', cause: 'ejected', count: 1 }],
      share: { canary: 50, total: 200, weight: 25 },
    });
  });
});
