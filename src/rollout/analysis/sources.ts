/**
 * Where measurements come from: one interface, implemented by the router's own counters
 * (router-source.ts) and by a Prometheus server (prometheus-source.ts).
 */
import type { Metric } from '../../spec/schema.js';
import { type MetricSample, SAMPLE_ERROR_CODES, type SampleError, type Window } from './observation.js';

/** What to measure: one service's canary and baseline versions in some clusters over a window. */
export interface SampleContext {
  readonly service: string;
  /** The clusters of the wave (or the one cluster) being judged. */
  readonly clusters: readonly string[];
  readonly canaryVersion: string;
  /** The stable version in the same clusters; `null` when there is none to compare with. */
  readonly baselineVersion: string | null;
  /** ISO 8601 instants; the recommended window runs from the step's start (its weight set) to now. */
  readonly window: Window;
}

/**
 * A metric source. `sample` never rejects for a measurement that went wrong (unreachable server, bad
 * query, no snapshot): it resolves with `error` set, so that the failure is judged and recorded like any
 * other outcome. It rejects only on programming errors.
 */
export interface MetricSource {
  sample(metric: Metric, ctx: SampleContext): Promise<MetricSample>;
}

/** A sample that records a failed measurement. */
export function failedSample(
  metric: Metric,
  query: string,
  window: Window,
  error: SampleError,
  baselineQuery: string | null = null,
): MetricSample {
  return { metric: metric.name, query, baselineQuery, window, canary: null, baseline: null, error, notes: [] };
}

/**
 * Sends each metric to the source its `source` names: the router's counters or Prometheus. A fleet that
 * names a source it was not given gets an error sample, not an exception.
 */
export class SourceSwitch implements MetricSource {
  constructor(private readonly sources: { readonly router?: MetricSource; readonly prometheus?: MetricSource }) {}

  sample(metric: Metric, ctx: SampleContext): Promise<MetricSample> {
    const source = this.sources[metric.source];
    if (!source) {
      return Promise.resolve(
        failedSample(metric, metric.query ?? metric.name, ctx.window, {
          code: SAMPLE_ERROR_CODES.config,
          message: `no ${metric.source} metric source is configured for metric ${metric.name}`,
        }),
      );
    }
    return source.sample(metric, ctx);
  }
}
