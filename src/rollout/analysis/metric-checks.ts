/**
 * The judge's checks of one measurement, per metric kind: an error rate (proportion tests), a latency
 * (counts above a bound, rank test) and a plain value, each against `max`, `min` and the baseline. Pure;
 * `judge.ts` folds them into a metric's verdict. See the truth table in docs/analysis.md.
 */
import type { Limits, MetricKind } from '../../spec/metric-kind.js';
import {
  type ErrorRateObservation,
  type LatencyObservation,
  type Observation,
  type QuantileBound,
  type ValueObservation,
  countAbove,
  countBelow,
  latencyGroups,
  latencyQuantile,
} from './observation.js';
import { binomialLowerTail, binomialUpperTail, farringtonManning, fisherExactGreater, mannWhitneyGreater } from './stats.js';
import { type Check, type Measured, type TestRecord, formatP, formatValue } from './verdict.js';

/** The value compared with a metric's limits, how many observations it stands for, and its bound. */
export interface Point {
  readonly samples: number | null;
  readonly value: number | null;
  readonly bound: QuantileBound;
}

/** What every check of one measurement reads: the metric's kind and limits, minSamples, α, and whether the canary has enough samples. */
export interface Ctx {
  readonly kind: MetricKind;
  readonly limits: Limits;
  readonly minSamples: number;
  readonly alpha: number;
  /** The canary has at least minSamples (or its sample count is unknown). */
  readonly enough: boolean;
}

/** The value compared with the limits, and how many observations it stands for. */
export function point(kind: MetricKind, o: Observation): Point {
  if (o.kind === 'error-rate') return { samples: o.requests, value: o.requests > 0 ? o.errors / o.requests : null, bound: 'exact' };
  if (o.kind === 'latency') {
    const q = latencyQuantile(o, kind.kind === 'latency' ? kind.quantile : 0.5);
    return { samples: o.count, value: q.value, bound: q.bound };
  }
  return { samples: o.samples, value: o.value, bound: 'given' };
}

/** A number JSON can carry: NaN and the infinities become null (the verdict's reason says what they were). */
const finite = (x: number | null | undefined): number | null => (x !== null && x !== undefined && Number.isFinite(x) ? x : null);

/** What the record keeps of an observation: raw latency samples are summarised by the count and the quantile. */
export function measured(p: Point, o: Observation): Measured {
  let observation: Observation = o;
  if (o.kind === 'value') observation = { ...o, value: finite(o.value) };
  else if (o.kind === 'latency') {
    const { samples: _raw, ...rest } = o;
    observation = rest.value === undefined ? rest : { ...rest, value: finite(rest.value) };
  }
  return { samples: p.samples, value: finite(p.value), valueBound: p.bound, observation };
}

/** A test's record: its name, statistic, p-value and α. */
export const test = (name: TestRecord['name'], statistic: number | null, pValue: number | null, alpha: number): TestRecord => ({
  name,
  statistic: statistic === null || Number.isFinite(statistic) ? statistic : statistic > 0 ? Number.MAX_VALUE : -Number.MAX_VALUE,
  pValue,
  alpha,
});

/** One check of a verdict, with absent tests as null. */
export function check(c: Omit<Check, 'test' | 'mannWhitney'> & { test?: TestRecord | null; mannWhitney?: Check['mannWhitney'] }): Check {
  return { ...c, test: c.test ?? null, mannWhitney: c.mannWhitney ?? null };
}

const f = (ctx: Ctx, v: number | null) => formatValue(v, ctx.kind.unit);
const sig = (t: TestRecord) => `${formatP(t.pValue)} ${t.pValue !== null && t.pValue <= t.alpha ? '≤' : '>'} α ${t.alpha}`;
/** How far a canary short of samples is. */
export const waitingNote = (ctx: Ctx, n: number) => `${n} of minSamples ${ctx.minSamples} so far`;

/** `a` is above `b`, beyond rounding (so that 2/200 is not above 1%, whichever way 1% was written). */
function above(a: number, b: number): boolean {
  return a - b > 1e-9 * Math.max(1, Math.abs(b));
}

/**
 * A limit on a proportion of bad events (errors; requests slower than a bound): `bad` of `n` against the
 * allowed proportion `p0`. It fails only when the proportion is above p0 with significance (exact binomial
 * test), and — below minSamples — only when that is already decided: more bad events than p0 × minSamples,
 * so that the value at minSamples would break the limit whatever comes next.
 */
function proportionCheck(
  ctx: Ctx,
  name: Check['check'],
  text: { readonly label: string; readonly limitLabel: string; readonly op: readonly [string, string] },
  observed: number,
  limit: number,
  beyond: boolean,
  bad: number,
  n: number,
  p0: number,
  testName: TestRecord['name'],
): Check {
  const [inside, outside] = text.op;
  if (!beyond) {
    const reason = `${text.label} ${f(ctx, observed)} ${inside} ${text.limitLabel}`;
    return ctx.enough
      ? check({ check: name, outcome: 'pass', observed, limit, reason })
      : check({ check: name, outcome: 'inconclusive', observed, limit, reason: `${reason} so far` });
  }
  const k = Math.floor(bad + 1e-9);
  const t = test(testName, k, binomialUpperTail(k, n, p0), ctx.alpha);
  const decided = ctx.enough || k > p0 * ctx.minSamples;
  const significant = t.pValue !== null && t.pValue <= ctx.alpha;
  const base = `${text.label} ${f(ctx, observed)} ${outside} ${text.limitLabel}`;
  if (significant && decided) return check({ check: name, outcome: 'fail', observed, limit, test: t, reason: `${base} (${sig(t)})` });
  const why = !decided ? 'not decided yet' : `not significant (${sig(t)})`;
  return check({ check: name, outcome: 'inconclusive', observed, limit, test: t, reason: `${base} but ${why}` });
}

const UPPER = ['≤', '>'] as const;
const LOWER = ['≥', '<'] as const;

/** The checks of an error-rate measurement against `max`, `min` and the baseline (proportion tests). */
export function errorRateChecks(ctx: Ctx, c: ErrorRateObservation, b: ErrorRateObservation | null): Check[] {
  const checks: Check[] = [];
  const n = c.requests;
  const e = c.errors;
  const r = e / n;
  const m = ctx.minSamples;
  const { max, min, maxIncreaseOverBaseline: inc } = ctx.limits;
  const label = 'error rate';
  if (max !== null) {
    checks.push(
      proportionCheck(ctx, 'max', { label, limitLabel: `max ${f(ctx, max)}`, op: UPPER }, r, max, above(r, max), e, n, max, 'binomial'),
    );
  }
  if (min !== null) {
    const limitLabel = `min ${f(ctx, min)}`;
    if (!above(min, r)) {
      const reason = `${label} ${f(ctx, r)} ≥ ${limitLabel}`;
      checks.push(
        ctx.enough
          ? check({ check: 'min', outcome: 'pass', observed: r, limit: min, reason })
          : check({ check: 'min', outcome: 'inconclusive', observed: r, limit: min, reason: `${reason} so far` }),
      );
    } else {
      // Too few errors: the lower binomial tail; decided early only if even all-errors from here to minSamples stays below.
      const t = test('binomial', e, binomialLowerTail(e, n, min), ctx.alpha);
      const decided = ctx.enough || (e + (m - n)) / m < min;
      const base = `${label} ${f(ctx, r)} < ${limitLabel}`;
      const significant = t.pValue !== null && t.pValue <= ctx.alpha;
      const why = decided ? `not significant (${sig(t)})` : 'not decided yet';
      checks.push(
        significant && decided
          ? check({ check: 'min', outcome: 'fail', observed: r, limit: min, test: t, reason: `${base} (${sig(t)})` })
          : check({ check: 'min', outcome: 'inconclusive', observed: r, limit: min, test: t, reason: `${base} but ${why}` }),
      );
    }
  }
  if (inc !== null) {
    if (!b) {
      checks.push(check({ check: 'baseline', outcome: 'skipped', observed: r, limit: null, reason: 'no usable baseline' }));
    } else {
      const rb = b.errors / b.requests;
      const allowed = rb + inc;
      const limitLabel = `baseline ${f(ctx, rb)} + ${f(ctx, inc)}`;
      if (!above(r - rb, inc)) {
        const reason = `${label} ${f(ctx, r)} ≤ ${limitLabel}`;
        checks.push(
          ctx.enough
            ? check({ check: 'baseline', outcome: 'pass', observed: r, limit: allowed, reason })
            : check({ check: 'baseline', outcome: 'inconclusive', observed: r, limit: allowed, reason: `${reason} so far` }),
        );
      } else {
        // Two proportions: Fisher's exact test when no increase is allowed, else the Farrington–Manning score test.
        const res = inc === 0 ? fisherExactGreater(e, n, b.errors, b.requests) : farringtonManning(e, n, b.errors, b.requests, inc);
        const t = test(inc === 0 ? 'fisher-exact' : 'farrington-manning', res.statistic, res.pValue, ctx.alpha);
        const decided = ctx.enough || e > allowed * m;
        const significant = res.pValue <= ctx.alpha;
        const base = `${label} ${f(ctx, r)} > ${limitLabel}`;
        const why = decided ? `not significant (${sig(t)})` : 'not decided yet';
        checks.push(
          significant && decided
            ? check({ check: 'baseline', outcome: 'fail', observed: r, limit: allowed, test: t, reason: `${base} (${sig(t)})` })
            : check({ check: 'baseline', outcome: 'inconclusive', observed: r, limit: allowed, test: t, reason: `${base} but ${why}` }),
        );
      }
    }
  }
  return checks;
}

/**
 * A latency limit on the quantile q: from above (`max`, and the baseline plus its allowed increase) or from
 * below (`min`). The quantile is compared literally; the significance comes from counting the requests
 * beyond the bound: more than (1 − q) of them above a max (or more than q below a min).
 */
function latencyCheck(ctx: Ctx, name: Check['check'], c: LatencyObservation, p: Point, bound: number, limitLabel: string): Check {
  const q = ctx.kind.kind === 'latency' ? ctx.kind.quantile : 0.5;
  const n = c.count;
  const observed = p.value as number;
  const label = `p${trim(q * 100)}`;
  const lower = name === 'min';
  const beyond = lower ? above(bound, observed) : above(observed, bound);
  if (p.bound === 'given') {
    // A quantile computed elsewhere: no counts to test, so the limit is read literally.
    const reason = `${label} ${f(ctx, observed)} ${(lower ? LOWER : UPPER)[beyond ? 1 : 0]} ${limitLabel}`;
    if (!ctx.enough) return check({ check: name, outcome: 'inconclusive', observed, limit: bound, reason: `${reason} so far` });
    return check({
      check: name,
      outcome: beyond ? 'fail' : 'pass',
      observed,
      limit: bound,
      test: test('none', null, null, ctx.alpha),
      reason,
    });
  }
  if (!lower && p.bound === 'at-least' && !beyond) {
    return check({
      check: name,
      outcome: 'inconclusive',
      observed,
      limit: bound,
      reason: `${label} lies above the last histogram bucket (≥ ${f(ctx, observed)}), so it cannot be compared with ${limitLabel}`,
    });
  }
  const text = { label, limitLabel, op: lower ? LOWER : UPPER };
  if (lower) return proportionCheck(ctx, name, text, observed, bound, beyond, countBelow(c, bound).count, n, q, 'quantile-binomial');
  return proportionCheck(ctx, name, text, observed, bound, beyond, countAbove(c, bound).count, n, 1 - q, 'quantile-binomial');
}

function trim(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/** The checks of a latency measurement against `max`, `min` and the baseline (count and rank tests). */
export function latencyChecks(ctx: Ctx, c: LatencyObservation, p: Point, b: LatencyObservation | null, bp: Point | null): Check[] {
  const checks: Check[] = [];
  const { max, min, maxIncreaseOverBaseline: inc } = ctx.limits;
  if (max !== null) checks.push(latencyCheck(ctx, 'max', c, p, max, `max ${f(ctx, max)}`));
  if (min !== null) checks.push(latencyCheck(ctx, 'min', c, p, min, `min ${f(ctx, min)}`));
  if (inc !== null) {
    if (!b || !bp || bp.value === null) {
      checks.push(check({ check: 'baseline', outcome: 'skipped', observed: p.value, limit: null, reason: 'no usable baseline' }));
    } else if (bp.bound === 'at-least') {
      const reason = `the baseline's quantile lies above the last histogram bucket (≥ ${f(ctx, bp.value)}); nothing to compare with`;
      checks.push(check({ check: 'baseline', outcome: 'skipped', observed: p.value, limit: null, reason }));
    } else {
      const allowed = bp.value + inc;
      const one = latencyCheck(ctx, 'baseline', c, p, allowed, `baseline ${f(ctx, bp.value)} + ${f(ctx, inc)}`);
      const groups = latencyGroups(c, b);
      const mw = groups ? mannWhitneyGreater(groups) : null;
      checks.push({
        ...one,
        mannWhitney: mw ? { u: mw.u, z: Number.isFinite(mw.statistic) ? mw.statistic : 0, pValue: mw.pValue } : null,
      });
    }
  }
  return checks;
}

/** The checks of a plain value (a Prometheus query) against `max`, `min` and the baseline. */
export function valueChecks(ctx: Ctx, c: ValueObservation, b: ValueObservation | null): Check[] {
  const checks: Check[] = [];
  const v = c.value as number;
  const { max, min, maxIncreaseOverBaseline: inc } = ctx.limits;
  const literal = (name: Check['check'], beyond: boolean, limit: number, text: string): Check => {
    if (!ctx.enough && c.samples !== null) {
      return check({ check: name, outcome: 'inconclusive', observed: v, limit, reason: `${text} so far` });
    }
    return check({
      check: name,
      outcome: beyond ? 'fail' : 'pass',
      observed: v,
      limit,
      reason: text,
      test: test('none', null, null, ctx.alpha),
    });
  };
  if (max !== null) checks.push(literal('max', above(v, max), max, `value ${f(ctx, v)} ${above(v, max) ? '>' : '≤'} max ${f(ctx, max)}`));
  if (min !== null) checks.push(literal('min', above(min, v), min, `value ${f(ctx, v)} ${above(min, v) ? '<' : '≥'} min ${f(ctx, min)}`));
  if (inc !== null) {
    if (!b || b.value === null) {
      checks.push(check({ check: 'baseline', outcome: 'skipped', observed: v, limit: null, reason: 'no usable baseline' }));
    } else {
      const allowed = b.value + inc;
      const beyond = above(v - b.value, inc);
      checks.push(
        literal(
          'baseline',
          beyond,
          allowed,
          `value ${f(ctx, v)} vs baseline ${f(ctx, b.value)} + ${f(ctx, inc)}: ${beyond ? 'above' : 'within'}`,
        ),
      );
    }
  }
  return checks;
}

/** A baseline is usable when it has data and, if its sample count is known, at least minSamples. */
export function usableBaseline(
  kind: MetricKind,
  o: Observation | null,
  minSamples: number,
): { obs: Observation; p: Point } | { why: string } {
  if (!o) return { why: 'no baseline measured' };
  if (o.kind !== kind.kind) return { why: `the baseline is a ${o.kind} observation, not ${kind.kind}` };
  const p = point(kind, o);
  if (p.value === null || !Number.isFinite(p.value) || p.samples === 0) return { why: 'the baseline has no data in the window' };
  if (p.samples !== null && p.samples < minSamples) return { why: `the baseline has only ${p.samples} samples (minSamples ${minSamples})` };
  return { obs: o, p };
}
