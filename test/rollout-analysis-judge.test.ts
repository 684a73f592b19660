/**
 * The judge's truth table (docs/analysis.md), its boundaries, the step's limits, and the record it
 * leaves. Every case is plain data in, plain data out.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metric as MetricSchema, type Metric } from '../src/spec/schema.js';
import {
  type Analysis,
  MetricVerdict,
  type MetricSample,
  SAMPLE_ERROR_CODES,
  VERDICT_CODES,
  type Observation,
  StepVerdict,
  countAbove,
  formatStepVerdict,
  formatVerdict,
  judgeMetric,
  judgeStep,
  latencyQuantile,
  metricProblems,
} from '../src/rollout/analysis/index.js';

const WINDOW = { start: '2026-11-26T10:00:00.000Z', end: '2026-11-26T10:00:30.000Z' };

function metric(m: Record<string, unknown>): Metric {
  return MetricSchema.parse({ name: 'error-rate', ...m });
}

function sample(canary: Observation | null, baseline: Observation | null = null, extra: Partial<MetricSample> = {}): MetricSample {
  return {
    metric: 'm',
    query: 'q',
    baselineQuery: baseline ? 'bq' : null,
    window: WINDOW,
    canary,
    baseline,
    error: null,
    notes: [],
    ...extra,
  };
}

const er = (requests: number, errors: number): Observation => ({ kind: 'error-rate', requests, errors });
const val = (value: number | null, samples: number | null = null): Observation => ({ kind: 'value', value, samples });
/** `n` requests with latencies: the given ones, the rest at 10 ms. */
const lat = (n: number, slow: readonly number[] = []): Observation => ({
  kind: 'latency',
  count: n,
  samples: [...slow, ...Array.from({ length: n - slow.length }, () => 10)],
});

const ERR = { max: '1%' };

interface Row {
  readonly name: string;
  readonly metric: Record<string, unknown>;
  readonly sample: MetricSample;
  readonly minSamples?: number;
  readonly outcome: MetricVerdict['outcome'];
  readonly effective?: MetricVerdict['effective'];
  readonly code: MetricVerdict['code'];
  readonly reason?: RegExp;
}

/** The truth table of one measurement, in the order of docs/analysis.md. minSamples is 200 unless given. */
const TRUTH: readonly Row[] = [
  // 1. configuration
  {
    name: 'unknown router metric',
    metric: { name: 'cpu', max: 1 },
    sample: sample(val(1)),
    outcome: 'error',
    code: 'config-error',
    reason: /no metric named cpu/,
  },
  {
    name: 'error rate limit written as a duration',
    metric: { max: '300ms' },
    sample: sample(er(1000, 0)),
    outcome: 'error',
    code: 'config-error',
    reason: /not a ratio/,
  },
  { name: 'a metric with no limit', metric: {}, sample: sample(er(1000, 0)), outcome: 'error', code: 'config-error', reason: /no limit/ },
  {
    name: 'a source answering the wrong kind',
    metric: ERR,
    sample: sample(val(0.1)),
    outcome: 'error',
    code: 'config-error',
    reason: /value observation for a error-rate metric/,
  },
  // 2. the measurement failed
  {
    name: 'query failed',
    metric: ERR,
    sample: sample(null, null, { error: { code: 'MERIDIAN_E_ANALYSIS_HTTP', message: 'connection refused' } }),
    outcome: 'error',
    code: 'query-error',
    reason: /MERIDIAN_E_ANALYSIS_HTTP: connection refused/,
  },
  {
    name: 'an infinite value from a custom source',
    metric: { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', max: 1 },
    sample: sample(val(Infinity)),
    outcome: 'error',
    code: 'query-error',
  },
  {
    name: 'inconsistent counts',
    metric: ERR,
    sample: sample(er(10, 11)),
    outcome: 'error',
    code: 'query-error',
    reason: /inconsistent counts/,
  },
  // 3. no data, mapped by onNoData
  {
    name: 'NaN from a custom source',
    metric: { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', max: 1 },
    sample: sample(val(Number.NaN)),
    outcome: 'no-data',
    code: 'no-data',
  },
  {
    name: 'no requests, onNoData inconclusive (default)',
    metric: ERR,
    sample: sample(er(0, 0)),
    outcome: 'no-data',
    effective: 'inconclusive',
    code: 'no-data',
  },
  {
    name: 'no requests, onNoData pass',
    metric: { ...ERR, onNoData: 'pass' },
    sample: sample(er(0, 0)),
    outcome: 'no-data',
    effective: 'pass',
    code: 'no-data',
  },
  {
    name: 'no requests, onNoData fail',
    metric: { ...ERR, onNoData: 'fail' },
    sample: sample(er(0, 0)),
    outcome: 'no-data',
    effective: 'fail',
    code: 'no-data',
  },
  {
    name: 'prometheus empty result / NaN',
    metric: { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', max: 1 },
    sample: sample(val(null)),
    outcome: 'no-data',
    effective: 'inconclusive',
    code: 'no-data',
  },
  {
    name: 'no latency observations',
    metric: { name: 'p99-latency', max: '300ms' },
    sample: sample({ kind: 'latency', count: 0, buckets: [] }),
    outcome: 'no-data',
    code: 'no-data',
  },
  // 4. a limit broken with evidence — also before minSamples, once decided
  {
    name: 'below minSamples, already decided and significant',
    metric: ERR,
    sample: sample(er(100, 5)),
    outcome: 'fail',
    code: 'exceeded',
    reason: /error rate 5% > max 1% \(p=0\.0034 ≤ α 0\.05\)/,
  },
  { name: 'at minSamples, significantly above max', metric: ERR, sample: sample(er(1000, 25)), outcome: 'fail', code: 'exceeded' },
  {
    name: 'baseline regression, significant',
    metric: { maxIncreaseOverBaseline: '0.5%' },
    sample: sample(er(400, 20), er(4000, 20)),
    outcome: 'fail',
    code: 'exceeded',
    reason: /> baseline 0.5% \+ 0.5%/,
  },
  {
    name: 'latency p99 above max, significant',
    metric: { name: 'p99-latency', max: '300ms' },
    sample: sample(lat(1000, Array(30).fill(500))),
    outcome: 'fail',
    code: 'exceeded',
  },
  {
    name: 'value above max (no test possible)',
    metric: { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', max: 5 },
    sample: sample(val(5.5)),
    outcome: 'fail',
    code: 'exceeded',
  },
  // 5. not enough samples yet
  {
    name: 'below minSamples and within',
    metric: ERR,
    sample: sample(er(150, 0)),
    outcome: 'inconclusive',
    code: 'waiting',
    reason: /150 of minSamples 200/,
  },
  { name: 'below minSamples, above max but not decided', metric: ERR, sample: sample(er(50, 2)), outcome: 'inconclusive', code: 'waiting' },
  {
    name: 'below minSamples, decided but not significant',
    metric: { max: '10%' },
    sample: sample(er(10, 3)),
    minSamples: 20,
    outcome: 'inconclusive',
    code: 'waiting',
    reason: /not significant \(p=0\.07/,
  },
  // 6. beyond a limit without significance; nothing to compare with
  {
    name: 'above max, not significant',
    metric: ERR,
    sample: sample(er(200, 3)),
    outcome: 'inconclusive',
    code: 'unproven',
    reason: /1\.5% > max 1% but not significant/,
  },
  {
    name: 'only a baseline comparison, no baseline',
    metric: { maxIncreaseOverBaseline: '0.5%' },
    sample: sample(er(1000, 1), null),
    outcome: 'inconclusive',
    code: 'unproven',
    reason: /nothing to judge: no usable baseline/,
  },
  {
    name: 'only a baseline comparison, baseline below minSamples',
    metric: { maxIncreaseOverBaseline: '0.5%' },
    sample: sample(er(1000, 1), er(50, 0)),
    outcome: 'inconclusive',
    code: 'unproven',
  },
  // 7. every limit held
  {
    name: 'exactly at max (inclusive)',
    metric: ERR,
    sample: sample(er(200, 2)),
    outcome: 'pass',
    code: 'within',
    reason: /error rate 1% ≤ max 1%/,
  },
  {
    name: 'no baseline: absolute limits only',
    metric: { ...ERR, maxIncreaseOverBaseline: '0.5%' },
    sample: sample(er(1000, 3), null),
    outcome: 'pass',
    code: 'within',
  },
  {
    name: 'a NaN baseline is no baseline',
    metric: { name: 'q', source: 'prometheus', query: '$version', url: 'http://p', maxIncreaseOverBaseline: 1 },
    sample: sample(val(5), val(Number.NaN)),
    outcome: 'inconclusive',
    code: 'unproven',
  },
  {
    name: 'baseline within the allowed increase',
    metric: { maxIncreaseOverBaseline: '0.5%' },
    sample: sample(er(400, 4), er(4000, 20)),
    outcome: 'pass',
    code: 'within',
  },
  {
    name: 'latency within max',
    metric: { name: 'p99-latency', max: '300ms' },
    sample: sample(lat(1000, Array(10).fill(500))),
    outcome: 'pass',
    code: 'within',
  },
  {
    name: 'value exactly at max',
    metric: { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', max: 5 },
    sample: sample(val(5)),
    outcome: 'pass',
    code: 'within',
  },
  {
    name: 'value exactly at min',
    metric: { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', min: 5 },
    sample: sample(val(5)),
    outcome: 'pass',
    code: 'within',
  },
];

describe('the truth table of one measurement', () => {
  it.each(TRUTH)('$name → $outcome ($code)', (row) => {
    const m = metric(row.metric);
    const v = judgeMetric(m, row.sample, { minSamples: row.minSamples ?? 200 });
    expect({ outcome: v.outcome, code: v.code }).toEqual({ outcome: row.outcome, code: row.code });
    expect(v.effective).toBe(row.effective ?? (row.outcome === 'no-data' ? 'inconclusive' : row.outcome));
    if (row.reason) expect(v.reason).toMatch(row.reason);
    // Every verdict is self-contained and survives JSON.
    expect(MetricVerdict.parse(JSON.parse(JSON.stringify(v)))).toEqual(v);
    expect(v.query).toBe(row.sample.error ? row.sample.query : 'q');
    expect(v.window).toEqual(WINDOW);
  });
});

describe('boundaries of one measurement', () => {
  const judge = (m: Record<string, unknown>, s: MetricSample, minSamples = 200) => judgeMetric(metric(m), s, { minSamples });

  it('max is inclusive: 1% passes a 1% max however it is written, 1.5% does not pass', () => {
    for (const max of ['1%', 0.01, '1.0%']) {
      expect(judge({ max }, sample(er(200, 2))).outcome).toBe('pass');
      expect(judge({ max }, sample(er(200, 3))).outcome).not.toBe('pass');
    }
    expect(judge({ max: '1.1%' }, sample(er(1000, 11))).outcome).toBe('pass');
  });

  it('above max fails exactly from the count where the binomial test becomes significant (n = 1000, max 1%: 16 errors)', () => {
    // P(X ≥ 15 | 1000, 1%) = 0.082, P(X ≥ 16) = 0.048 (scipy.stats.binom.sf)
    const at15 = judge(ERR, sample(er(1000, 15)));
    const at16 = judge(ERR, sample(er(1000, 16)));
    expect([at15.outcome, at15.code]).toEqual(['inconclusive', 'unproven']);
    expect([at16.outcome, at16.code]).toEqual(['fail', 'exceeded']);
    expect(at16.checks[0]?.test?.pValue).toBeCloseTo(0.04787058575794716, 10);
    expect(at15.checks[0]?.test?.pValue).toBeCloseTo(0.0824123195160887, 10);
  });

  it('minSamples: 199 requests wait, 200 pass; minSamples 0 judges the first request', () => {
    expect(judge(ERR, sample(er(199, 0))).code).toBe('waiting');
    expect(judge(ERR, sample(er(200, 0))).outcome).toBe('pass');
    expect(judge(ERR, sample(er(1, 0)), 0).outcome).toBe('pass');
  });

  it('before minSamples a failure must be decided: errors > max × minSamples (2 errors of 20 wait, 3 fail)', () => {
    const two = judge(ERR, sample(er(20, 2)));
    const three = judge(ERR, sample(er(20, 3)));
    expect(two.code).toBe('waiting');
    // significant already (p = 0.017), but 2 errors in 200 would still be within 1%
    expect(two.checks[0]?.test?.pValue).toBeCloseTo(0.01685933763565178, 10);
    expect(two.reason).toMatch(/not decided yet/);
    expect([three.outcome, three.code]).toEqual(['fail', 'exceeded']);
  });

  it('max 0 fails on the first error, even on the first request', () => {
    const v = judge({ max: 0 }, sample(er(1, 1)));
    expect(v.outcome).toBe('fail');
    expect(judge({ max: 0 }, sample(er(500, 0))).outcome).toBe('pass');
  });

  it('maxIncreaseOverBaseline is inclusive and absolute (percentage points)', () => {
    // canary 1% vs baseline 0.5% + 0.5%: exactly at the allowed rate
    expect(judge({ maxIncreaseOverBaseline: '0.5%' }, sample(er(1000, 10), er(10000, 50))).outcome).toBe('pass');
    const above = judge({ maxIncreaseOverBaseline: '0.5%' }, sample(er(1000, 11), er(10000, 50)));
    expect(above.outcome).toBe('inconclusive');
    expect(above.checks[0]?.test?.name).toBe('farrington-manning');
  });

  it('maxIncreaseOverBaseline 0 uses Fisher’s exact test', () => {
    const v = judge({ maxIncreaseOverBaseline: 0 }, sample(er(200, 10), er(3800, 19)));
    expect(v.checks[0]?.test?.name).toBe('fisher-exact');
    expect(v.outcome).toBe('fail');
    expect(judge({ maxIncreaseOverBaseline: 0 }, sample(er(200, 1), er(3800, 19))).outcome).toBe('pass');
  });

  it('min is inclusive too', () => {
    const m = { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', min: 5 };
    expect(judge(m, sample(val(5))).outcome).toBe('pass');
    expect(judge(m, sample(val(4.999))).outcome).toBe('fail');
  });

  it('a value with a known sample count waits for minSamples, one without is judged at once', () => {
    const m = { name: 'q', source: 'prometheus', query: 'x', url: 'http://p', max: 5 };
    expect(judge(m, sample(val(9, 10))).code).toBe('waiting');
    expect(judge(m, sample(val(9, null))).outcome).toBe('fail');
  });

  it('latency max is inclusive on the nearest-rank p99, and fails once significant', () => {
    const m = { name: 'p99-latency', max: '300ms' };
    // 1000 requests, 10 at exactly 300 ms → p99 = 300 ms (the 990th)… and 10 at 301 ms → p99 = 301 ms
    expect(judge(m, sample(lat(1000, Array(10).fill(300)))).outcome).toBe('pass');
    expect(judge(m, sample(lat(1000, Array(11).fill(301)))).outcome).toBe('inconclusive');
    expect(judge(m, sample(lat(1000, Array(25).fill(301)))).outcome).toBe('fail');
  });

  it('latency from histogram buckets: interpolated like histogram_quantile, limits between bounds work', () => {
    const buckets = {
      kind: 'latency' as const,
      count: 1000,
      buckets: [
        { le: 100, count: 900 },
        { le: 250, count: 960 },
        { le: 500, count: 1000 },
      ],
    };
    const q = latencyQuantile(buckets, 0.99);
    expect(q).toEqual({ value: 250 + (250 * (990 - 960)) / 40, bound: 'interpolated' });
    expect(countAbove(buckets, 300).count).toBeCloseTo(1000 - (960 + 40 * (50 / 250)), 9);
    const v = judgeMetric(metric({ name: 'p99-latency', max: '300ms' }), sample(buckets), { minSamples: 200 });
    expect(v.outcome).toBe('fail');
    expect(v.canary?.value).toBeCloseTo(437.5, 9);
    expect(v.canary?.valueBound).toBe('interpolated');
  });

  it('a quantile above the last bucket is only a lower bound: it fails a lower max, and cannot pass a higher one', () => {
    const over = {
      kind: 'latency' as const,
      count: 1000,
      buckets: [
        { le: 100, count: 900 },
        { le: 250, count: 950 },
      ],
    };
    expect(latencyQuantile(over, 0.99)).toEqual({ value: 250, bound: 'at-least' });
    expect(judgeMetric(metric({ name: 'p99-latency', max: '200ms' }), sample(over), { minSamples: 200 }).outcome).toBe('fail');
    const higher = judgeMetric(metric({ name: 'p99-latency', max: '1s' }), sample(over), { minSamples: 200 });
    expect(higher.outcome).toBe('inconclusive');
    expect(higher.reason).toMatch(/above the last histogram bucket/);
  });

  it('latency against the baseline: p99 plus the allowed increase, with Mann–Whitney reported alongside', () => {
    const m = { name: 'p99-latency', maxIncreaseOverBaseline: '50ms' };
    const base = lat(4000, Array(60).fill(200));
    const ok = judge(m, sample(lat(1000, Array(10).fill(240)), base));
    expect(ok.outcome).toBe('pass');
    const slow = judge(m, sample(lat(1000, Array(40).fill(400)), base));
    expect(slow.outcome).toBe('fail');
    expect(slow.checks[0]?.limit).toBe(250);
    expect(slow.checks[0]?.mannWhitney?.pValue).toBeLessThan(0.05);
    expect(slow.canary?.observation).not.toHaveProperty('samples');
  });

  it('error-rate min (a floor) fails when significantly below', () => {
    expect(judge({ min: '1%' }, sample(er(2000, 2))).outcome).toBe('fail');
    expect(judge({ min: '1%' }, sample(er(200, 2))).outcome).toBe('pass');
  });
});

const ANALYSIS = (over: Partial<Analysis> = {}): Analysis => ({
  interval: '10s',
  minSamples: 200,
  failureLimit: 1,
  metrics: [metric({ max: '1%' })],
  ...over,
});

const BAD = sample(er(1000, 100));
const GOOD = sample(er(1000, 0));
const WAIT = sample(er(10, 0));
const UNPROVEN = sample(er(200, 3));
const ERROR = sample(null, null, { error: { code: 'MERIDIAN_E_ANALYSIS_TIMEOUT', message: 'slow' } });
const NODATA = sample(er(0, 0));

/** Runs a sequence of measurements of the one metric; the last is judged with `final`. */
function run(
  analysis: Analysis,
  seq: readonly MetricSample[],
  final = false,
  opts: { inconclusiveLimit?: number; consecutiveErrorLimit?: number } = {},
): StepVerdict[] {
  const history: MetricVerdict[] = [];
  const out: StepVerdict[] = [];
  seq.forEach((s, i) => {
    const name = analysis.metrics[0]?.name ?? 'error-rate';
    const v = judgeStep(analysis, { [name]: s }, history, { final: final && i === seq.length - 1, ...opts });
    history.push(...v.measurements);
    out.push(v);
  });
  return out;
}
const outcomes = (vs: readonly StepVerdict[]) => vs.map((v) => v.outcome);

describe('the step: failureLimit, inconclusiveLimit, consecutiveErrorLimit', () => {
  it('failureLimit 1 fails on the first failed measurement', () => {
    expect(outcomes(run(ANALYSIS({ failureLimit: 1 }), [GOOD, BAD]))).toEqual(['running', 'fail']);
  });

  it('failureLimit 2 fails on the second failed measurement, not the first; failures need not be consecutive', () => {
    const vs = run(ANALYSIS({ failureLimit: 2 }), [BAD, GOOD, BAD]);
    expect(outcomes(vs)).toEqual(['running', 'running', 'fail']);
    expect(vs[2]?.metrics[0]?.failures).toBe(2);
    expect(vs[2]?.reason).toMatch(/2 failed measurements reached failureLimit 2/);
  });

  it('a failure below failureLimit as the last measurement makes the step inconclusive, not passed', () => {
    expect(outcomes(run(ANALYSIS({ failureLimit: 2 }), [GOOD, BAD], true))).toEqual(['running', 'inconclusive']);
  });

  it('inconclusive measurements make the step inconclusive at inconclusiveLimit (default 3); looks more samples settle do not count', () => {
    // nothing to compare with (a baseline-only limit, no baseline): waiting longer does not settle it
    const onlyBaseline = ANALYSIS({ metrics: [metric({ maxIncreaseOverBaseline: '1%' })] });
    expect(outcomes(run(onlyBaseline, [GOOD, GOOD, GOOD]))).toEqual(['running', 'running', 'inconclusive']);
    expect(outcomes(run(onlyBaseline, [GOOD, GOOD], false, { inconclusiveLimit: 2 }))).toEqual(['running', 'inconclusive']);
    // short of minSamples, or beyond a limit without significance yet: more samples decide, so the step measures on
    expect(outcomes(run(ANALYSIS(), [WAIT, WAIT, WAIT, WAIT]))).toEqual(['running', 'running', 'running', 'running']);
    expect(outcomes(run(ANALYSIS(), [UNPROVEN, UNPROVEN, UNPROVEN, UNPROVEN]))).toEqual(['running', 'running', 'running', 'running']);
    const unproven = run(ANALYSIS(), [UNPROVEN, UNPROVEN, UNPROVEN]).at(-1);
    expect(unproven?.metrics[0]?.inconclusive).toBe(0);
  });

  it("a limit crossed without significance at the step's end measures on to sampleWait, not cut short by inconclusiveLimit", () => {
    const history: MetricVerdict[] = [];
    const look = (final: boolean, waitedMs: number) => {
      const v = judgeStep(ANALYSIS(), { 'error-rate': UNPROVEN }, history, {
        final,
        ...(final ? { sampleWait: { waitedMs, maxWaitMs: 60_000 } } : {}),
      });
      history.push(...v.measurements);
      return v.outcome;
    };
    // three looks in the step, then five past its end: all of them before the bound measure on
    expect([look(false, 0), look(false, 0), look(true, 0), look(true, 10_000), look(true, 20_000), look(true, 50_000)]).toEqual([
      'running',
      'running',
      'running',
      'running',
      'running',
      'running',
    ]);
    expect(look(true, 60_000)).toBe('inconclusive');
  });

  it('errors stop the step only when consecutive (default 3); a success in between resets the count', () => {
    expect(outcomes(run(ANALYSIS(), [ERROR, ERROR, ERROR]))).toEqual(['running', 'running', 'error']);
    expect(outcomes(run(ANALYSIS(), [ERROR, ERROR, GOOD, ERROR, ERROR]))).toEqual(['running', 'running', 'running', 'running', 'running']);
    expect(outcomes(run(ANALYSIS(), [ERROR], false, { consecutiveErrorLimit: 1 }))).toEqual(['error']);
  });

  it('errors never count as failures', () => {
    const vs = run(ANALYSIS({ failureLimit: 1 }), [ERROR, ERROR]);
    expect(vs[1]?.metrics[0]?.failures).toBe(0);
  });

  it('a configuration error stops the step at once', () => {
    expect(outcomes(run(ANALYSIS({ metrics: [metric({ max: '300ms' })] }), [GOOD]))).toEqual(['error']);
  });

  it('onNoData: fail counts towards failureLimit, inconclusive towards inconclusiveLimit, pass passes', () => {
    expect(outcomes(run(ANALYSIS({ metrics: [metric({ max: '1%', onNoData: 'fail' })] }), [NODATA]))).toEqual(['fail']);
    expect(outcomes(run(ANALYSIS({ metrics: [metric({ max: '1%', onNoData: 'inconclusive' })] }), [NODATA, NODATA, NODATA]))).toEqual([
      'running',
      'running',
      'inconclusive',
    ]);
    expect(outcomes(run(ANALYSIS({ metrics: [metric({ max: '1%', onNoData: 'pass' })] }), [NODATA], true))).toEqual(['pass']);
  });

  it('at the end of the step the last measurement decides: pass, waiting → inconclusive, error → error', () => {
    expect(outcomes(run(ANALYSIS(), [WAIT, GOOD], true)).at(-1)).toBe('pass');
    expect(outcomes(run(ANALYSIS(), [GOOD, WAIT], true)).at(-1)).toBe('inconclusive');
    expect(outcomes(run(ANALYSIS(), [GOOD, ERROR], true)).at(-1)).toBe('error');
  });

  it('a metric never measured in the step is inconclusive at its end; no metrics at all pass', () => {
    const v = judgeStep(ANALYSIS(), {}, [], { final: true });
    expect(v.outcome).toBe('inconclusive');
    expect(v.reason).toMatch(/never measured/);
    const none = judgeStep(ANALYSIS({ metrics: [] }), {}, [], { final: true });
    expect(none.outcome).toBe('pass');
    expect(none.reason).toMatch(/no metrics configured/);
  });

  it('the worst metric decides: fail over error over inconclusive over running', () => {
    const a = ANALYSIS({ metrics: [metric({ max: '1%' }), metric({ name: 'p99-latency', max: '300ms' })] });
    const v = judgeStep(a, { 'error-rate': BAD, 'p99-latency': ERROR }, [], { final: false, consecutiveErrorLimit: 1 });
    expect(v.outcome).toBe('fail');
    expect(v.metrics.map((m) => m.outcome)).toEqual(['fail', 'error']);
    expect(v.measurements).toHaveLength(2);
  });

  it('a metric listed twice is an error of the step', () => {
    const v = judgeStep(ANALYSIS({ metrics: [metric({ max: '1%' }), metric({ max: '2%' })] }), { 'error-rate': GOOD }, [], { final: true });
    expect(v.outcome).toBe('error');
    expect(v.reason).toMatch(/listed twice/);
  });

  it('the step verdict is JSON and reads back through its schema', () => {
    const [v] = run(ANALYSIS(), [BAD]);
    expect(StepVerdict.parse(JSON.parse(JSON.stringify(v)))).toEqual(v);
  });
});

describe('the record', () => {
  it('formatVerdict gives one line with the reason, the raw values, the baseline and the window', () => {
    const v = judgeMetric(metric({ max: '1%', maxIncreaseOverBaseline: '0.5%' }), sample(er(1000, 51), er(4000, 20)), { minSamples: 200 });
    const line = formatVerdict(v);
    expect(line).not.toContain('\n');
    expect(line).toMatch(/^error-rate FAIL: error rate 5\.1% > max 1% \(p<1e-6 ≤ α 0\.05\); error rate 5\.1% > baseline 0\.5% \+ 0\.5%/);
    expect(line).toContain('canary 5.1% (51/1000)');
    expect(line).toContain('baseline 0.5% (20/4000)');
    expect(line).toContain('window 2026-11-26T10:00:00.000Z → 10:00:30Z');
    const noData = judgeMetric(metric({ max: '1%', onNoData: 'fail' }), sample(er(0, 0)), { minSamples: 200 });
    expect(formatVerdict(noData)).toMatch(/^error-rate NO-DATA→FAIL: /);
  });

  it('the verdict keeps the thresholds, the tests and the notes', () => {
    const v = judgeMetric(metric({ max: '1%', maxIncreaseOverBaseline: '0.5%' }), sample(er(1000, 3), null), {
      minSamples: 200,
      alpha: 0.01,
    });
    expect(v.thresholds).toEqual({
      max: 0.01,
      min: null,
      maxIncreaseOverBaseline: 0.005,
      minSamples: 200,
      alpha: 0.01,
      quantile: null,
      onNoData: 'inconclusive',
    });
    expect(v.notes.join()).toMatch(/baseline comparison skipped: no baseline measured/);
    expect(v.checks.map((c) => [c.check, c.outcome])).toEqual([
      ['max', 'pass'],
      ['baseline', 'skipped'],
    ]);
  });

  it('formatStepVerdict names the outcome and each metric', () => {
    const [v] = run(ANALYSIS(), [BAD]);
    expect(formatStepVerdict(v as StepVerdict)).toMatch(
      /^step FAIL: error-rate: 1 failed measurement reached failureLimit 1: .* — error-rate fail \(1 failed\)$/,
    );
  });
});

describe('metricProblems (for preflight)', () => {
  it('names each problem and accepts a correct metric', () => {
    expect(metricProblems(metric({ max: '1%' }))).toEqual([]);
    expect(metricProblems(metric({ name: 'p95-latency', max: '250ms', maxIncreaseOverBaseline: '20ms' }))).toEqual([]);
    expect(metricProblems(metric({ name: 'p99-latency', maxIncreaseOverBaseline: '10%' })).join()).toMatch(/a duration/);
    expect(metricProblems(metric({ name: 'rps', max: 1 })).join()).toMatch(/no metric named rps/);
    expect(metricProblems(metric({ name: 'x', source: 'prometheus', max: 1 })).join()).toMatch(/needs a query.*needs a url/);
    expect(
      metricProblems(metric({ name: 'x', source: 'prometheus', query: 'up', maxIncreaseOverBaseline: 1 }), {
        prometheusUrl: 'http://p',
      }).join(),
    ).toMatch(/\$version/);
    expect(metricProblems(metric({ max: '2%', min: '3%' })).join()).toMatch(/min 3% is above max 2%/);
    expect(metricProblems(metric({ max: '1%', query: 'up' })).join()).toMatch(/for source: prometheus/);
  });
});

describe('docs/analysis.md', () => {
  it('documents every error code and every verdict code', () => {
    const doc = readFileSync(new URL('../docs/analysis.md', import.meta.url), 'utf8');
    expect(Object.values(SAMPLE_ERROR_CODES).filter((c) => !doc.includes(`\`${c}\``))).toEqual([]);
    expect(VERDICT_CODES.filter((c) => !doc.includes(`\`${c}\``))).toEqual([]);
  });
});
