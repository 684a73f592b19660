/**
 * How the judge behaves on traffic: seeded simulations of a region at 200 requests/s whose canary takes 5%
 * or 25% of it, with the fleet reference's analysis (interval 10s, minSamples 200, error-rate max 1% and
 * at most 0.5% over the baseline, failureLimit 1) and cumulative windows from the step's start. A bad
 * canary (5% errors against the baseline's 0.5%) must fail within 30 s; a good one (0.5%, like the
 * baseline) must not fail in more than 1 run of 20. The numbers are printed; docs/analysis.md quotes them.
 */
import { describe, expect, it } from 'vitest';
import { Metric, type Rollout } from '../src/spec/schema.js';
import { type MetricVerdict, type StepOutcome, judgeStep } from '../src/rollout/analysis/index.js';

type Analysis = NonNullable<Rollout['analysis']>;

/** mulberry32: a small seeded generator, good enough for simulation. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Binomial(n, p) draw by inversion (n·p is small here). */
function binomial(n: number, p: number, u: () => number): number {
  const q = 1 - p;
  let pr = q ** n;
  let cdf = pr;
  const x = u();
  let k = 0;
  while (x > cdf && k < n) {
    pr *= ((n - k) / (k + 1)) * (p / q);
    k++;
    cdf += pr;
  }
  return k;
}

const ANALYSIS: Analysis = {
  interval: '10s',
  minSamples: 200,
  failureLimit: 1,
  metrics: [Metric.parse({ name: 'error-rate', source: 'router', max: '1%', maxIncreaseOverBaseline: '0.5%', onNoData: 'inconclusive' })],
};

interface Scenario {
  readonly canaryErrorRate: number;
  readonly baselineErrorRate: number;
  /** Percent of the region's traffic on the canary. */
  readonly weight: number;
  readonly rps: number;
  readonly stepSeconds: number;
  readonly intervalSeconds: number;
  readonly runs: number;
  readonly seed: number;
  readonly analysis?: Analysis;
}

interface Result {
  readonly outcomes: Record<StepOutcome, number>;
  /** Seconds into the step at which each failing run failed. */
  readonly failedAt: number[];
}

function simulate(s: Scenario): Result {
  const outcomes: Record<StepOutcome, number> = { pass: 0, fail: 0, inconclusive: 0, error: 0, running: 0 };
  const failedAt: number[] = [];
  const canaryRps = Math.round((s.rps * s.weight) / 100);
  const baselineRps = s.rps - canaryRps;
  for (let run = 0; run < s.runs; run++) {
    const u = rng(s.seed * 100_003 + run);
    const history: MetricVerdict[] = [];
    let c = { requests: 0, errors: 0 };
    let b = { requests: 0, errors: 0 };
    let outcome: StepOutcome = 'running';
    for (let t = 1; t <= s.stepSeconds && outcome === 'running'; t++) {
      c = { requests: c.requests + canaryRps, errors: c.errors + binomial(canaryRps, s.canaryErrorRate, u) };
      b = { requests: b.requests + baselineRps, errors: b.errors + binomial(baselineRps, s.baselineErrorRate, u) };
      if (t % s.intervalSeconds !== 0 && t !== s.stepSeconds) continue;
      const sample = {
        metric: 'error-rate',
        query: 'simulated',
        baselineQuery: 'simulated',
        window: { start: '2026-11-26T10:00:00.000Z', end: new Date(Date.parse('2026-11-26T10:00:00.000Z') + t * 1000).toISOString() },
        canary: { kind: 'error-rate' as const, ...c },
        baseline: { kind: 'error-rate' as const, ...b },
        error: null,
        notes: [],
      };
      const v = judgeStep(s.analysis ?? ANALYSIS, { 'error-rate': sample }, history, { final: t === s.stepSeconds });
      history.push(...v.measurements);
      outcome = v.outcome;
      if (outcome === 'fail') failedAt.push(t);
    }
    outcomes[outcome]++;
  }
  return { outcomes, failedAt };
}

const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(1)}%`;
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)] ?? Number.NaN;
}
function report(label: string, s: Scenario, r: Result): void {
  const o = r.outcomes;
  const by = (t: number) => pct(r.failedAt.filter((x) => x <= t).length, s.runs);
  const times = r.failedAt.length
    ? ` · failed by 10s ${by(10)}, by 20s ${by(20)}, by 30s ${by(30)}; median ${quantile(r.failedAt, 0.5)}s, max ${Math.max(...r.failedAt)}s`
    : '';
  console.log(
    `${label} (weight ${s.weight}%, canary ${(s.canaryErrorRate * 100).toFixed(2)}% vs baseline ${(s.baselineErrorRate * 100).toFixed(2)}%, ${s.stepSeconds}s step, ${s.runs} runs): ` +
      `fail ${pct(o.fail, s.runs)}, pass ${pct(o.pass, s.runs)}, inconclusive ${pct(o.inconclusive, s.runs)}${times}`,
  );
}

const BASE = { baselineErrorRate: 0.005, rps: 200, stepSeconds: 30, intervalSeconds: 10, runs: 1000 } as const;

describe('simulated canaries at 200 requests/s', () => {
  it.each([{ weight: 5 }, { weight: 25 }])(
    'a canary with 5 percent errors at weight $weight fails within 30 s in ≥ 99% of runs and never passes',
    ({ weight }) => {
      const s: Scenario = { ...BASE, canaryErrorRate: 0.05, weight, seed: weight };
      const r = simulate(s);
      report('bad canary', s, r);
      expect(r.failedAt.filter((t) => t <= 30).length / s.runs).toBeGreaterThanOrEqual(0.99);
      // the few that are not failed in time are paused (inconclusive), never passed
      expect(r.outcomes.pass).toBe(0);
    },
  );

  it.each([{ weight: 5 }, { weight: 25 }])(
    'a good canary at weight $weight (0.5 percent errors, like the baseline) fails in at most 1 run of 20',
    ({ weight }) => {
      const s: Scenario = { ...BASE, canaryErrorRate: 0.005, weight, seed: 1000 + weight };
      const r = simulate(s);
      report('good canary', s, r);
      expect(r.outcomes.fail / s.runs).toBeLessThanOrEqual(0.05);
      // and it is not merely undecided: most steps pass
      expect(r.outcomes.pass / s.runs).toBeGreaterThan(0.85);
    },
  );

  it('a good canary over a longer step (2 minutes, 12 looks) still fails in at most 1 run of 20', () => {
    const s: Scenario = { ...BASE, canaryErrorRate: 0.005, weight: 25, stepSeconds: 120, seed: 7 };
    const r = simulate(s);
    report('good canary, long step', s, r);
    expect(r.outcomes.fail / s.runs).toBeLessThanOrEqual(0.05);
  });

  it('a canary exactly at the limits (1% errors; max 1%, baseline 0.5% + 0.5%) rarely fails, and is mostly not passed either', () => {
    const s: Scenario = { ...BASE, canaryErrorRate: 0.01, weight: 25, seed: 11 };
    const r = simulate(s);
    report('canary at the limit', s, r);
    // Exactly at a limit is a pass by the boundary rule, but two tests at α = 0.05 on each of three looks
    // reject now and then (about 13%; docs/analysis.md): without the significance tests it would be ~half.
    expect(r.outcomes.fail / s.runs).toBeLessThanOrEqual(0.2);
  });

  it('with the schema default minSamples 100, a bad canary at 5% weight fails within 30 s in ≥ 99% of runs', () => {
    const s: Scenario = { ...BASE, canaryErrorRate: 0.05, weight: 5, seed: 13, analysis: { ...ANALYSIS, minSamples: 100 } };
    const r = simulate(s);
    report('bad canary, minSamples 100', s, r);
    expect(r.failedAt.filter((t) => t <= 30).length / s.runs).toBeGreaterThanOrEqual(0.99);
    expect(r.outcomes.pass).toBe(0);
  });
});
