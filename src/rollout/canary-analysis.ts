/**
 * The analysis gate a rollout runs at every interval of a canary step: every canary of the batch must
 * report the new revision healthy, and each metric of the fleet's `rollout.analysis` is measured for the
 * canary and the baseline (the stable version in the same clusters, over the step's window) — from the
 * router's counters or from Prometheus — and judged by the judge (src/rollout/analysis/judge.ts).
 */
import type { Metric } from '../spec/schema.js';
import type { JsonValue } from '../store/store.js';
import {
  type Analysis as AnalysisConfig,
  type MetricSample,
  type MetricSource,
  MetricVerdict,
  type RouterCounters,
  type SampleContext,
  SAMPLE_ERROR_CODES,
  SourceSwitch,
  type StepOutcome,
  failedSample,
  formatStepVerdict,
  judgeStep,
  routerSample,
  routerSignals,
} from './analysis/index.js';
import { routerQuery } from './analysis/router-source.js';
import { HealthAnalysis } from './health-analysis.js';
import type { Analysis, ClusterDriver, StepCluster, StepContext, StepStart, StepVerdictLike } from './ports.js';

/** One measurement as the rollout records it: the judge's verdict and the service it measured. */
export const MeasurementRecord = MetricVerdict.extend({ service: MetricVerdict.shape.metric });
export type MeasurementRecord = MetricVerdict & { readonly service: string };

export interface CanaryAnalysisOptions {
  /** The fleet's `rollout.analysis` (as the rollout's spec recorded it); null: health only. */
  readonly analysis: AnalysisConfig | null | undefined;
  /** Where the canaries' health is read. */
  readonly health: Pick<ClusterDriver, 'status'>;
  /** Reads the router's counters now (for `source: router`). */
  readonly counters?: () => Promise<RouterCounters>;
  /** For `source: prometheus`. */
  readonly prometheus?: MetricSource;
  /** Significance level of each test (default the judge's). */
  readonly alpha?: number;
}

/** The worst first, as the judge folds metrics. */
const WORST: readonly StepOutcome[] = ['fail', 'error', 'inconclusive', 'running', 'pass'];

/** A service measured in a step: the clusters where it runs a canary, and its versions. */
interface Measured {
  readonly service: string;
  readonly clusters: string[];
  readonly canary: string;
  readonly baseline: string | null;
}

function measuredServices(clusters: readonly StepCluster[]): Measured[] {
  const out = new Map<string, Measured>();
  for (const c of clusters) {
    for (const svc of c.services) {
      const v = c.versions[svc];
      const m = out.get(svc);
      if (m) m.clusters.push(c.cluster);
      else out.set(svc, { service: svc, clusters: [c.cluster], canary: v?.canary ?? '', baseline: v?.baseline ?? null });
    }
  }
  return [...out.values()].sort((a, b) => a.service.localeCompare(b.service));
}

/** Reads back a persisted mark (the router's counters at the step's start); undefined when it is not one. */
function asCounters(v: JsonValue | null): RouterCounters | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, JsonValue>;
  return typeof o['at'] === 'string' && Array.isArray(o['series']) ? (v as unknown as RouterCounters) : undefined;
}

/** The recorded measurements of one service, oldest first, from a step's earlier verdicts. */
function historyOf(history: readonly JsonValue[], service: string): MetricVerdict[] {
  const out: MetricVerdict[] = [];
  for (const metrics of history) {
    if (!Array.isArray(metrics)) continue;
    for (const m of metrics) {
      const r = MeasurementRecord.safeParse(m);
      if (r.success && r.data.service === service) {
        const { service: _s, ...verdict } = r.data;
        out.push(verdict);
      }
    }
  }
  return out;
}

/** Health of the new revision, then the fleet's metrics judged over the step's window. */
export class CanaryAnalysis implements Analysis {
  readonly #o: CanaryAnalysisOptions;
  readonly #health: HealthAnalysis;

  constructor(opts: CanaryAnalysisOptions) {
    this.#o = opts;
    this.#health = new HealthAnalysis(opts.health);
  }

  #metrics(): readonly Metric[] {
    return this.#o.analysis?.metrics ?? [];
  }

  /** The router's counters of the step's services and clusters at its start (only when a metric reads them). */
  async begin(start: StepStart): Promise<JsonValue | null> {
    if (!this.#o.counters || this.#metrics().length === 0) return null; // the counters also show the canary's endpoints taken out
    let now: RouterCounters;
    try {
      now = await this.#o.counters();
    } catch {
      return null; // judged as a failed measurement (no snapshot) at the step's first look
    }
    const wanted = new Set(start.clusters.flatMap((c) => c.services.map((s) => `${s}\u0000${c.cluster}`)));
    const series = now.series.filter((s) => wanted.has(`${s.service}\u0000${s.cluster}`));
    return JSON.parse(JSON.stringify({ at: now.at, series })) as JsonValue;
  }

  async judge(ctx: StepContext): Promise<StepVerdictLike> {
    const health = await this.#health.judge(ctx);
    const analysis = this.#o.analysis;
    if (health.outcome !== 'pass') return health;
    if (!analysis || analysis.metrics.length === 0) return health;

    const window = { start: new Date(ctx.since).toISOString(), end: new Date(ctx.now).toISOString() };
    const start = asCounters(ctx.mark);
    const sw = ctx.sampleWait;
    const wait = sw ? { waitedMs: sw.extending ? ctx.now - sw.end : 0, maxWaitMs: sw.until - sw.end } : undefined;
    let end: RouterCounters | Error | undefined;
    if (start && this.#o.counters) {
      end = await this.#o.counters().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    }
    const router: MetricSource = {
      sample: (metric: Metric, c: SampleContext): Promise<MetricSample> => {
        const failed = (code: string, message: string) =>
          Promise.resolve(failedSample(metric, routerQuery(metric, c, c.canaryVersion), c.window, { code, message }));
        if (!start) {
          return failed(
            SAMPLE_ERROR_CODES.snapshot,
            `no snapshot of the router's counters at the step's start (${c.window.start}); the step is measured again when resumed`,
          );
        }
        if (!end) return failed(SAMPLE_ERROR_CODES.config, 'this rollout has no way to read the router’s counters');
        if (end instanceof Error) return failed(SAMPLE_ERROR_CODES.http, `could not read the router's counters: ${end.message}`);
        return Promise.resolve(routerSample(metric, c, start, end));
      },
    };
    const sources = new SourceSwitch({ router, ...(this.#o.prometheus ? { prometheus: this.#o.prometheus } : {}) });

    let outcome: StepOutcome = 'pass';
    const recorded: JsonValue[] = [];
    const reasons: string[] = [];
    for (const svc of measuredServices(ctx.clusters)) {
      const same = svc.baseline !== null && svc.baseline === svc.canary;
      const c: SampleContext = {
        service: svc.service,
        clusters: svc.clusters,
        canaryVersion: svc.canary,
        // one version on both tracks cannot be told apart by version labels: no comparison then
        baselineVersion: same ? null : svc.baseline,
        window,
      };
      const samples: Record<string, MetricSample> = {};
      for (const m of analysis.metrics) {
        const s = await sources.sample(m, c);
        samples[m.name] = same
          ? { ...s, notes: [...s.notes, `canary and stable both run version ${svc.canary}: the measurement covers both`] }
          : s;
      }
      const signals = start && end && !(end instanceof Error) && !same ? routerSignals(c, start, end, ctx.step.weight) : undefined;
      const step = judgeStep(analysis, samples, historyOf(ctx.history, svc.service), {
        final: ctx.final,
        ...(this.#o.alpha === undefined ? {} : { alpha: this.#o.alpha }),
        ...(signals ? { signals } : {}),
        ...(wait ? { sampleWait: wait } : {}),
      });
      for (const v of step.measurements) recorded.push(JSON.parse(JSON.stringify({ service: svc.service, ...v })) as JsonValue);
      // what the router saw of the canary's endpoints, and how long the step waited for samples, beside the metrics
      if (step.signals || step.waitedMs !== undefined) {
        recorded.push(
          JSON.parse(
            JSON.stringify({
              name: 'canary-signals',
              service: svc.service,
              outcome: step.signals?.outcome ?? 'ok',
              reason: step.signals?.reason ?? '',
              waitedMs: step.waitedMs ?? 0,
              takenOut: step.signals?.signals.takenOut ?? [],
              share: step.signals?.signals.share ?? null,
            }),
          ) as JsonValue,
        );
      }
      if (WORST.indexOf(step.outcome) < WORST.indexOf(outcome)) outcome = step.outcome;
      reasons.push(`${svc.service}: ${formatStepVerdict(step)}`);
    }
    return { outcome, metrics: recorded, reason: reasons.join('; ') };
  }
}
