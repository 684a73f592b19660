/**
 * The judge's verdicts: self-contained, JSON-serialisable records of what was measured (query, window,
 * raw values), against which limits, with which test, and what was decided. `meridian rollout status`
 * prints them with {@link formatVerdict} and {@link formatStepVerdict}; the store keeps them as JSON and
 * reads them back with the schemas here.
 */
import { z } from 'zod';
import { SignalJudgement } from './canary-signals.js';
import { Observation, SampleError, Window } from './observation.js';

/** The outcome of one measurement, as judged. `no-data` is mapped by the metric's `onNoData`. */
export const OUTCOMES = ['pass', 'fail', 'inconclusive', 'no-data', 'error'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** The outcome once `onNoData` has been applied: what the step counts. */
export type EffectiveOutcome = Exclude<Outcome, 'no-data'>;

/**
 * Why a measurement came out as it did, in one word:
 * `within` every limit held; `exceeded` a limit was broken with significance; `unproven` a value is
 * beyond a limit but not significantly so (or the comparison has no usable baseline); `waiting` fewer than
 * `minSamples` and nothing decided yet; `no-data` no canary samples at all; `query-error` the measurement
 * failed; `config-error` the metric cannot be judged as configured.
 */
export const VERDICT_CODES = ['within', 'exceeded', 'unproven', 'waiting', 'no-data', 'query-error', 'config-error'] as const;
export type VerdictCode = (typeof VERDICT_CODES)[number];

const num = z.number().nullable();

/** A statistical test's record. p-values are one-sided. */
export const TestRecord = z.strictObject({
  name: z.enum(['binomial', 'fisher-exact', 'farrington-manning', 'quantile-binomial', 'mann-whitney', 'none']),
  statistic: num,
  pValue: num,
  alpha: z.number(),
});
export type TestRecord = z.output<typeof TestRecord>;

/** One limit of one metric, checked. */
export const Check = z.strictObject({
  check: z.enum(['max', 'min', 'baseline']),
  outcome: z.enum(['pass', 'fail', 'inconclusive', 'skipped']),
  /** The canary's value compared. */
  observed: num,
  /** The bound it was compared with (for `baseline`: the baseline's value plus the allowed increase). */
  limit: num,
  reason: z.string(),
  test: TestRecord.nullable(),
  /** A second opinion reported with latency comparisons: is the canary slower overall? It does not decide. */
  mannWhitney: z.strictObject({ u: z.number(), z: z.number(), pValue: z.number() }).nullable(),
});
export type Check = z.output<typeof Check>;

/** What one version measured, summarised for the record (raw latency samples are summarised, not kept). */
export const Measured = z.strictObject({
  /** How many observations (requests) the value stands for; `null` when the source cannot say. */
  samples: num,
  /** The value compared with the limits (a ratio, ms, or the query's number). */
  value: num,
  valueBound: z.enum(['exact', 'interpolated', 'at-least', 'given']),
  observation: Observation,
});
export type Measured = z.output<typeof Measured>;

/** The verdict on one measurement of one metric. */
export const MetricVerdict = z.strictObject({
  metric: z.string(),
  source: z.enum(['router', 'prometheus']),
  kind: z.enum(['error-rate', 'latency', 'value']).nullable(),
  unit: z.enum(['ratio', 'ms', 's', 'number']).nullable(),
  outcome: z.enum(OUTCOMES),
  effective: z.enum(['pass', 'fail', 'inconclusive', 'error']),
  code: z.enum(VERDICT_CODES),
  reason: z.string(),
  query: z.string(),
  baselineQuery: z.string().nullable(),
  window: Window,
  canary: Measured.nullable(),
  baseline: Measured.nullable(),
  thresholds: z.strictObject({
    max: num,
    min: num,
    maxIncreaseOverBaseline: num,
    minSamples: z.number(),
    alpha: z.number(),
    quantile: num,
    onNoData: z.enum(['pass', 'fail', 'inconclusive']),
  }),
  checks: z.array(Check),
  error: SampleError.nullable(),
  notes: z.array(z.string()),
});
export type MetricVerdict = z.output<typeof MetricVerdict>;

/** Where a step's analysis stands: `running` until something is decided or the step ends. */
export const STEP_OUTCOMES = ['running', 'pass', 'fail', 'inconclusive', 'error'] as const;
export type StepOutcome = (typeof STEP_OUTCOMES)[number];

/** One metric's standing over the step. */
export const MetricStanding = z.strictObject({
  metric: z.string(),
  outcome: z.enum(STEP_OUTCOMES),
  reason: z.string(),
  measurements: z.number().int(),
  failures: z.number().int(),
  inconclusive: z.number().int(),
  consecutiveErrors: z.number().int(),
  last: MetricVerdict.nullable(),
});
export type MetricStanding = z.output<typeof MetricStanding>;

/** The verdict on a canary step so far (or at its end, when `final`). */
export const StepVerdict = z.strictObject({
  outcome: z.enum(STEP_OUTCOMES),
  final: z.boolean(),
  reason: z.string(),
  limits: z.strictObject({ failureLimit: z.number(), inconclusiveLimit: z.number(), consecutiveErrorLimit: z.number() }),
  metrics: z.array(MetricStanding),
  /** The measurements judged in this call, in the order of the analysis's metrics: append them to the history. */
  measurements: z.array(MetricVerdict),
  /** How long past the step's end it measured, waiting for samples (ms; absent: not past the end). */
  waitedMs: z.number().optional(),
  /** The canary's endpoints and traffic share over the window, judged (absent: not known). */
  signals: SignalJudgement.optional(),
});
export type StepVerdict = z.output<typeof StepVerdict>;

/** Formats a number in a unit for people: `1.25%`, `312ms`, `0.31s`, `42`. Three significant digits, whole above 100. */
export function formatValue(value: number | null, unit: MetricVerdict['unit']): string {
  if (value === null) return 'none';
  switch (unit) {
    case 'ratio':
      return `${short(value * 100)}%`;
    case 'ms':
      return `${short(value)}ms`;
    case 's':
      return `${short(value)}s`;
    default:
      return short(value);
  }
}

function short(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 100) return String(Math.round(x));
  return String(Number(x.toPrecision(3)));
}

/** A p-value for people: `p=0.012`, `p<1e-6`. */
export function formatP(p: number | null): string {
  if (p === null) return 'p=?';
  if (p < 1e-6) return 'p<1e-6';
  return `p=${Number(p.toPrecision(2))}`;
}

function formatMeasured(m: Measured | null, unit: MetricVerdict['unit']): string {
  if (!m) return 'none';
  const o = m.observation;
  const value = `${m.valueBound === 'at-least' ? '≥' : ''}${formatValue(m.value, unit)}`;
  const c = o.kind === 'value' ? undefined : o.clients;
  const seen =
    c === undefined
      ? ''
      : o.kind === 'error-rate'
        ? `; clients saw ${c.errors}/${c.requests}`
        : `; clients saw ${formatValue(c.latencyMs ?? null, unit)} (n=${c.requests})`;
  const of = o.kind !== 'value' && o.basis === 'attempts' ? ' attempts' : '';
  if (o.kind === 'error-rate') return `${value} (${o.errors}/${o.requests}${of}${seen})`;
  return m.samples === null ? value : `${value} (n=${m.samples}${of}${seen})`;
}

/** `12:00:00Z` for a window bound on the same day as the other, else the whole instant. */
function shortTime(iso: string, other: string): string {
  return iso.slice(0, 10) === other.slice(0, 10) && iso.length > 11 ? iso.slice(11).replace(/\.\d+Z$/, 'Z') : iso;
}

/**
 * One line for a person: metric, outcome (and what `onNoData` made of no data), the reason with its numbers,
 * canary and baseline values, and the window.
 */
export function formatVerdict(v: MetricVerdict): string {
  const outcome = v.outcome === 'no-data' && v.effective !== 'inconclusive' ? `no-data→${v.effective}` : v.outcome;
  const parts = [`${v.metric} ${outcome.toUpperCase()}: ${v.reason}`];
  if (v.canary) parts.push(`canary ${formatMeasured(v.canary, v.unit)}`);
  if (v.canary || v.baseline) parts.push(`baseline ${formatMeasured(v.baseline, v.unit)}`);
  parts.push(`window ${v.window.start} → ${shortTime(v.window.end, v.window.start)}`);
  return parts.join(' · ');
}

/** One line for a step, followed by nothing: use {@link formatVerdict} on `metrics[].last` for the details. */
export function formatStepVerdict(s: StepVerdict): string {
  const counts = s.metrics.map((m) => `${m.metric} ${m.outcome}${m.failures > 0 ? ` (${m.failures} failed)` : ''}`).join(', ');
  return `step ${s.outcome.toUpperCase()}${s.final ? ' (final)' : ''}: ${s.reason}${counts ? ` — ${counts}` : ''}`;
}
