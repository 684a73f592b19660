/**
 * The judge: pure functions from measurements to verdicts. `judgeMetric` decides one measurement of one
 * metric by the truth table in docs/analysis.md; `judgeStep` folds a step's measurements into the step's
 * outcome under failureLimit, inconclusiveLimit and consecutiveErrorLimit. The per-kind checks are in
 * `metric-checks.ts`.
 */
import type { Metric, Rollout } from '../../spec/schema.js';
import { metricKind, metricLimits } from '../../spec/metric-kind.js';
import { type ErrorRateObservation, type LatencyObservation, type MetricSample, type ValueObservation } from './observation.js';
import { type CanarySignals, type SignalJudgement, judgeSignals } from './canary-signals.js';
import { type Ctx, errorRateChecks, latencyChecks, measured, point, usableBaseline, valueChecks, waitingNote } from './metric-checks.js';
import {
  type Check,
  type EffectiveOutcome,
  type MetricStanding,
  type MetricVerdict,
  type StepOutcome,
  type StepVerdict,
  type VerdictCode,
} from './verdict.js';

/** A fleet's `rollout.analysis`, with its defaults applied. */
export type Analysis = NonNullable<Rollout['analysis']>;

/** Significance level of every test, per measurement (see docs/analysis.md on repeated looks). */
export const DEFAULT_ALPHA = 0.05;
/** Inconclusive measurements (other than waiting for samples) that make a step inconclusive. */
export const DEFAULT_INCONCLUSIVE_LIMIT = 3;
/** Failed measurements in a row (query errors) that make a step an error. */
export const DEFAULT_CONSECUTIVE_ERROR_LIMIT = 3;

/** How to judge one measurement. */
export interface JudgeOptions {
  /** Fewer canary samples than this cannot pass (from `rollout.analysis.minSamples`). */
  readonly minSamples: number;
  /** Significance level, default {@link DEFAULT_ALPHA}. */
  readonly alpha?: number;
}

/**
 * Judges one measurement of one metric. Never throws on bad data: a failed measurement is an `error`
 * verdict, a misconfigured metric a `config-error` one. See the truth table in docs/analysis.md.
 */
export function judgeMetric(metric: Metric, sample: MetricSample, opts: JudgeOptions): MetricVerdict {
  const alpha = opts.alpha ?? DEFAULT_ALPHA;
  const minSamples = opts.minSamples;
  const kindOrError = metricKind(metric);
  const kind = 'error' in kindOrError ? null : kindOrError;
  const limitsOrError = kind ? metricLimits(metric, kind) : null;
  const limits = limitsOrError && !('error' in limitsOrError) ? limitsOrError : null;
  const notes = [...sample.notes];
  const base = {
    metric: metric.name,
    source: metric.source,
    kind: kind?.kind ?? null,
    unit: kind?.unit ?? null,
    query: sample.query,
    baselineQuery: sample.baselineQuery,
    window: sample.window,
    thresholds: {
      max: limits?.max ?? null,
      min: limits?.min ?? null,
      maxIncreaseOverBaseline: limits?.maxIncreaseOverBaseline ?? null,
      minSamples,
      alpha,
      quantile: kind?.kind === 'latency' ? kind.quantile : null,
      onNoData: metric.onNoData,
    },
    error: sample.error,
    notes,
  };
  const verdict = (
    outcome: MetricVerdict['outcome'],
    code: VerdictCode,
    reason: string,
    extra: Partial<Pick<MetricVerdict, 'canary' | 'baseline' | 'checks'>> = {},
  ): MetricVerdict => ({
    ...base,
    outcome,
    effective: outcome === 'no-data' ? metric.onNoData : outcome,
    code,
    reason,
    canary: extra.canary ?? null,
    baseline: extra.baseline ?? null,
    checks: extra.checks ?? [],
  });

  // 1. Configuration that cannot be judged.
  if (!kind) return verdict('error', 'config-error', (kindOrError as { error: string }).error);
  if (!limits) return verdict('error', 'config-error', (limitsOrError as { error: string }).error);
  // 2. The measurement failed.
  if (sample.error) return verdict('error', 'query-error', `${sample.error.code}: ${sample.error.message}`);
  const c = sample.canary;
  if (!c) return verdict('error', 'query-error', 'the source returned no canary observation');
  if (c.kind !== kind.kind)
    return verdict('error', 'config-error', `the source returned a ${c.kind} observation for a ${kind.kind} metric`);
  if (c.kind === 'error-rate' && (c.errors > c.requests || c.errors < 0 || c.requests < 0)) {
    return verdict('error', 'query-error', `inconsistent counts: ${c.errors} errors in ${c.requests} requests`);
  }
  const p = point(kind, c);
  if (p.value !== null && !Number.isFinite(p.value)) {
    // NaN is 0/0 (no traffic); an infinity cannot be compared with a limit.
    if (Number.isNaN(p.value)) return verdict('no-data', 'no-data', `the canary's value is NaN (no data); onNoData: ${metric.onNoData}`);
    return verdict('error', 'query-error', `the canary's value is ${p.value}; a limit cannot be checked against it`);
  }
  const canary = measured(p, c);
  const bl = usableBaseline(kind, sample.baseline, minSamples);
  const baseline = sample.baseline && sample.baseline.kind === kind.kind ? measured(point(kind, sample.baseline), sample.baseline) : null;
  const shown = { canary, baseline };
  // 3. No data.
  if (p.value === null || p.samples === 0) {
    return verdict('no-data', 'no-data', `no canary data in the window; onNoData: ${metric.onNoData}`, shown);
  }
  const enough = p.samples === null || p.samples >= minSamples;
  const ctx: Ctx = { kind, limits, minSamples, alpha, enough };
  const b = 'obs' in bl ? bl : null;
  if (!b && limits.maxIncreaseOverBaseline !== null) notes.push(`baseline comparison skipped: ${(bl as { why: string }).why}`);
  let checks: Check[];
  switch (c.kind) {
    case 'error-rate':
      checks = errorRateChecks(ctx, c, (b?.obs as ErrorRateObservation | undefined) ?? null);
      break;
    case 'latency':
      checks = latencyChecks(ctx, c, p, (b?.obs as LatencyObservation | undefined) ?? null, b?.p ?? null);
      break;
    case 'value':
      checks = valueChecks(ctx, c, (b?.obs as ValueObservation | undefined) ?? null);
      break;
  }
  const all = { ...shown, checks };
  // 4. A limit broken with evidence fails, even below minSamples (the checks only fail then when decided).
  const failed = checks.filter((x) => x.outcome === 'fail');
  if (failed.length > 0) return verdict('fail', 'exceeded', failed.map((x) => x.reason).join('; '), all);
  // 5. Not enough samples yet.
  if (!enough) {
    return verdict(
      'inconclusive',
      'waiting',
      `waiting for samples: ${waitingNote(ctx, p.samples ?? 0)}; ${checks.map((x) => x.reason).join('; ')}`,
      all,
    );
  }
  // 6. Beyond a limit without significance, or nothing left to compare with.
  const open = checks.filter((x) => x.outcome === 'inconclusive');
  if (open.length > 0) return verdict('inconclusive', 'unproven', open.map((x) => x.reason).join('; '), all);
  if (checks.every((x) => x.outcome === 'skipped')) {
    return verdict('inconclusive', 'unproven', `nothing to judge: ${checks.map((x) => x.reason).join('; ')}`, all);
  }
  // 7. Every limit held.
  const held = checks.filter((x) => x.outcome === 'pass');
  return verdict('pass', 'within', held.map((x) => x.reason).join('; '), all);
}

/** How to fold a step's measurements. */
export interface StepOptions {
  /** The step's time is up: decide pass or inconclusive instead of `running`. */
  readonly final: boolean;
  readonly alpha?: number;
  /** Default {@link DEFAULT_INCONCLUSIVE_LIMIT}. */
  readonly inconclusiveLimit?: number;
  /** Default {@link DEFAULT_CONSECUTIVE_ERROR_LIMIT}. */
  readonly consecutiveErrorLimit?: number;
  /** What the router saw of the canary's endpoints over the window (see {@link judgeSignals}). */
  readonly signals?: CanarySignals;
  /**
   * Too few samples at the step's end: how long past its end the step has measured so far (`waitedMs`)
   * and may measure (`maxWaitMs`). While `waitedMs` is below `maxWaitMs`, a final look that is short of
   * `minSamples` (and otherwise undecided) answers `running` instead of `inconclusive`.
   */
  readonly sampleWait?: { readonly waitedMs: number; readonly maxWaitMs: number };
}

/** `12 s` */
const seconds = (ms: number) => `${Number((Math.max(0, ms) / 1000).toPrecision(3))} s`;

const WORST: readonly StepOutcome[] = ['fail', 'error', 'inconclusive', 'running', 'pass'];

function standing(name: string, verdicts: readonly MetricVerdict[], limits: StepVerdict['limits'], final: boolean): MetricStanding {
  const failures = verdicts.filter((v) => v.effective === 'fail');
  const inconclusive = verdicts.filter((v) => v.effective === 'inconclusive' && !settledByMoreSamples(v)).length;
  let consecutiveErrors = 0;
  for (let i = verdicts.length - 1; i >= 0 && verdicts[i]?.effective === 'error'; i--) consecutiveErrors++;
  const last = verdicts.at(-1) ?? null;
  const s = (outcome: StepOutcome, reason: string): MetricStanding => ({
    metric: name,
    outcome,
    reason,
    measurements: verdicts.length,
    failures: failures.length,
    inconclusive,
    consecutiveErrors,
    last,
  });
  if (failures.length >= limits.failureLimit) {
    const lastFailure = failures.at(-1) as MetricVerdict;
    return s(
      'fail',
      `${failures.length} failed measurement${failures.length === 1 ? '' : 's'} reached failureLimit ${limits.failureLimit}: ${lastFailure.reason}`,
    );
  }
  if (last?.code === 'config-error') return s('error', last.reason);
  if (consecutiveErrors >= limits.consecutiveErrorLimit) {
    return s(
      'error',
      `${consecutiveErrors} measurements in a row failed (consecutiveErrorLimit ${limits.consecutiveErrorLimit}): ${last?.reason ?? ''}`,
    );
  }
  if (inconclusive >= limits.inconclusiveLimit) {
    return s(
      'inconclusive',
      `${inconclusive} inconclusive measurements reached inconclusiveLimit ${limits.inconclusiveLimit}: ${last?.reason ?? ''}`,
    );
  }
  if (!final) return s('running', last ? `${last.effective}: ${last.reason}` : 'not measured yet');
  if (!last) return s('inconclusive', 'never measured in this step');
  const outcome: Record<EffectiveOutcome, StepOutcome> = {
    pass: 'pass',
    error: 'error',
    inconclusive: 'inconclusive',
    fail: 'inconclusive',
  };
  const prefix: Record<EffectiveOutcome, string> = {
    pass: '',
    error: 'the last measurement failed, and a step is never passed on older data: ',
    inconclusive: 'the last measurement was inconclusive: ',
    fail: `the last measurement failed (${failures.length} of failureLimit ${limits.failureLimit}): `,
  };
  return s(outcome[last.effective], `${prefix[last.effective]}${last.reason}`);
}

/**
 * Judges the measurements taken now (`samples`, by metric name; a metric left out was not measured this
 * time) and folds them with the step's earlier verdicts (`history`, oldest first) into the step's outcome.
 * The new verdicts are returned in `measurements` for the caller to record and append to the history.
 */
export function judgeStep(
  analysis: Analysis,
  samples: Readonly<Record<string, MetricSample>>,
  history: readonly MetricVerdict[],
  opts: StepOptions,
): StepVerdict {
  const limits = {
    failureLimit: analysis.failureLimit,
    inconclusiveLimit: opts.inconclusiveLimit ?? DEFAULT_INCONCLUSIVE_LIMIT,
    consecutiveErrorLimit: opts.consecutiveErrorLimit ?? DEFAULT_CONSECUTIVE_ERROR_LIMIT,
  };
  const judgeOpts: JudgeOptions =
    opts.alpha === undefined ? { minSamples: analysis.minSamples } : { minSamples: analysis.minSamples, alpha: opts.alpha };
  const seen = new Map<string, number>();
  for (const m of analysis.metrics) seen.set(m.name, (seen.get(m.name) ?? 0) + 1);
  const measurements: MetricVerdict[] = [];
  const metrics: MetricStanding[] = [];
  for (const metric of analysis.metrics) {
    if ((seen.get(metric.name) ?? 0) > 1) {
      metrics.push({
        metric: metric.name,
        outcome: 'error',
        reason: `metric ${metric.name} is listed twice in rollout.analysis.metrics; give each a unique name`,
        measurements: 0,
        failures: 0,
        inconclusive: 0,
        consecutiveErrors: 0,
        last: null,
      });
      continue;
    }
    const mine = history.filter((v) => v.metric === metric.name);
    const sample = samples[metric.name];
    if (sample) {
      const v = judgeMetric(metric, sample, judgeOpts);
      measurements.push(v);
      mine.push(v);
    }
    metrics.push(standing(metric.name, mine, limits, opts.final));
  }
  let outcome: StepOutcome = 'pass';
  for (const m of metrics) if (WORST.indexOf(m.outcome) < WORST.indexOf(outcome)) outcome = m.outcome;
  const named = metrics.filter((m) => m.outcome === outcome).map((m) => `${m.metric}: ${m.reason}`);
  let reason: string;
  if (metrics.length === 0) reason = 'no metrics configured; nothing to judge';
  else if (outcome === 'pass') reason = `every metric passed its last measurement (${metrics.map((m) => m.metric).join(', ')})`;
  else if (outcome === 'running') reason = 'still measuring';
  else reason = named.join('; ');

  // undecided at the step's end — too few samples, or a limit crossed without significance: keep measuring
  // up to the bound (more samples decide it either way), then say how long it waited
  const wait = opts.sampleWait;
  const waitedMs = opts.final && wait ? Math.max(0, wait.waitedMs) : 0;
  const undecided = opts.final && wait && outcome === 'inconclusive' ? undecidedFor(metrics, limits.inconclusiveLimit) : null;
  if (wait && undecided !== null) {
    const what = undecided === 'waiting' ? 'too few samples' : 'a limit crossed but not significantly';
    if (waitedMs < wait.maxWaitMs) {
      outcome = 'running';
      reason = `${what} at the step's end: measuring on (${seconds(waitedMs)} of at most ${seconds(wait.maxWaitMs)} past its end); ${reason}`;
    } else {
      reason = `still ${what} after waiting ${seconds(waitedMs)} past the step's end (the bound, rollout.analysis.sampleWait): ${reason}`;
    }
  } else if (outcome === 'pass' && waitedMs > 0) {
    reason = `${reason}, after waiting ${seconds(waitedMs)} past the step's end for samples`;
  }

  // signals that hide a canary's failures: taken out of rotation fails the step; a lost share cannot pass
  let signals: SignalJudgement | undefined;
  if (opts.signals) {
    signals = judgeSignals(opts.signals, { alpha: opts.alpha ?? DEFAULT_ALPHA, minSamples: analysis.minSamples });
    if (signals.outcome === 'fail') {
      reason = outcome === 'fail' ? `${signals.reason}; ${reason}` : signals.reason;
      outcome = 'fail';
    } else if (signals.outcome === 'hold' && outcome === 'pass') {
      outcome = 'inconclusive';
      reason = signals.reason;
    }
  }
  return {
    outcome,
    final: opts.final,
    reason,
    limits,
    metrics,
    measurements,
    ...(waitedMs > 0 ? { waitedMs } : {}),
    ...(signals ? { signals } : {}),
  };
}

/**
 * An inconclusive measurement that more samples settle either way: short of minSamples (`waiting`), or
 * beyond a limit by a statistical test that is not significant yet (`unproven` with a test behind every
 * open check). Such looks do not count towards inconclusiveLimit: the step measures on, and `sampleWait`
 * bounds how long past its end. An `unproven` with nothing to compare, or a quantile beyond the last
 * histogram bucket, is not settled by waiting and counts.
 */
export function settledByMoreSamples(v: MetricVerdict): boolean {
  if (v.effective !== 'inconclusive') return false;
  if (v.code === 'waiting') return true;
  if (v.code !== 'unproven') return false;
  const open = v.checks.filter((c) => c.outcome === 'inconclusive');
  return open.length > 0 && open.every((c) => c.test !== null && c.test.pValue !== null);
}

/**
 * Why a step is undecided when every metric that keeps it from passing is so only for want of samples:
 * `waiting` (short of minSamples), `unproven` (beyond a limit, not significantly; also when some only
 * wait), or null when one is inconclusive for another reason or reached its inconclusiveLimit.
 */
function undecidedFor(metrics: readonly MetricStanding[], inconclusiveLimit: number): 'waiting' | 'unproven' | null {
  const open = metrics.filter((m) => m.outcome !== 'pass');
  const undecided = (m: MetricStanding): boolean =>
    m.outcome === 'inconclusive' && m.last !== null && settledByMoreSamples(m.last) && m.inconclusive < inconclusiveLimit;
  if (open.length === 0 || !open.every(undecided)) return null;
  return open.every((m) => m.last?.code === 'waiting') ? 'waiting' : 'unproven';
}
