/** Analysis, the judge of canary steps: metric sources, pure verdicts and their records. See docs/analysis.md. */
export {
  DEFAULT_ALPHA,
  DEFAULT_CONSECUTIVE_ERROR_LIMIT,
  DEFAULT_INCONCLUSIVE_LIMIT,
  judgeMetric,
  judgeStep,
  type Analysis,
  type JudgeOptions,
  type StepOptions,
} from './judge.js';
export {
  METRIC_KINDS,
  quantileOfName,
  metricKind,
  metricLimits,
  metricProblems,
  type Limits,
  type MetricKind,
  type Unit,
} from '../../spec/metric-kind.js';
export {
  Bucket,
  ErrorRateObservation,
  LatencyObservation,
  MetricSample,
  Observation,
  SAMPLE_ERROR_CODES,
  SampleError,
  ValueObservation,
  Window,
  countAbove,
  countBelow,
  latencyQuantile,
  sampleCount,
  type QuantileBound,
} from './observation.js';
export { SourceSwitch, failedSample, type MetricSource, type SampleContext } from './sources.js';
export {
  RouterSource,
  diffCounters,
  routerCountersFromMetricsJson,
  routerCountersFromSamples,
  routerCountersFromText,
  routerSample,
  routerSignals,
  type CounterReader,
  type RouterCounters,
  type RouterSeries,
} from './router-source.js';
export {
  PrometheusSource,
  escapeLabelValue,
  escapeRegexValue,
  parseQueryResponse,
  promDuration,
  substituteQuery,
  type PrometheusSourceOptions,
  type QueryAnswer,
  type QueryVariables,
} from './prometheus-source.js';
export { CanarySignals, SignalJudgement, judgeSignals } from './canary-signals.js';
export { parseExposition, type ExpositionSample } from './exposition.js';
export {
  Check,
  MetricStanding,
  MetricVerdict,
  OUTCOMES,
  STEP_OUTCOMES,
  StepVerdict,
  VERDICT_CODES,
  formatStepVerdict,
  formatValue,
  formatVerdict,
  type EffectiveOutcome,
  type Outcome,
  type StepOutcome,
} from './verdict.js';
export * as stats from './stats.js';
