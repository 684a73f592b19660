/**
 * Prometheus metrics of rollouts, derived from their persisted events (the engine is not touched): cluster
 * deployments and rollbacks per region and how long they took, gate verdicts by metric, the canary
 * weight per cluster, finished rollouts by outcome, and rollouts waiting (paused, or for approvals) since
 * when. The server registers them on its registry and feeds every event it sees, in order.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Revision } from '../render/render.js';
import type { RolloutSpec } from './rollout-spec.js';
import type { RolloutEventRecord, RolloutRecord } from '../store/store.js';
import { batchClusters, gateResults, readEvent, specOf, strings, waveName, type RolloutEventView } from './event-view.js';

/** Buckets of deployment and rollback durations, seconds: 5 s … 4 h. */
export const ROLLOUT_DURATION_BUCKETS: readonly number[] = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

export interface RolloutMetricsOptions {
  readonly registry: Registry;
  /**
   * The fleet as rendered: its clusters' regions label the per-region metrics, and the per-region
   * counters start at 0 for every region (so `increase()` sees the first rollback).
   */
  readonly revision?: Pick<Revision, 'fleet' | 'clusters'>;
  /** The region of a cluster the revision does not know (default: `unknown`). */
  readonly regionOf?: (cluster: string) => string | undefined;
}

/** What is remembered of a rollout in progress. */
interface Tracked {
  readonly spec: RolloutSpec | null;
  /** cluster → when its canary (or, in a rollback, its new stable) began to deploy, epoch ms. */
  readonly deployStart: Map<string, number>;
  rollbackStart: number | null;
  /** The labels of its waiting-since series, while it waits. */
  waiting: Record<string, string> | null;
  /** Clusters with a canary weight series. */
  readonly weighted: Set<string>;
}

/** The metrics, fed with {@link RolloutMetrics.observe}. */
export class RolloutMetrics {
  readonly deployments: Counter<'fleet' | 'region'>;
  readonly rollbacks: Counter<'fleet' | 'region'>;
  readonly deploymentDuration: Histogram<'fleet' | 'region'>;
  readonly rollbackDuration: Histogram<'fleet' | 'region'>;
  readonly gateVerdicts: Counter<'fleet' | 'metric' | 'verdict'>;
  readonly stepVerdicts: Counter<'fleet' | 'wave' | 'verdict'>;
  readonly canaryWeight: Gauge<'fleet' | 'region' | 'cluster'>;
  readonly started: Counter<'fleet' | 'kind'>;
  readonly finished: Counter<'fleet' | 'kind' | 'outcome'>;
  readonly waitingSince: Gauge<'fleet' | 'rollout' | 'wave' | 'reason'>;
  readonly #regions: Map<string, string>;
  readonly #regionOf: ((cluster: string) => string | undefined) | undefined;
  readonly #rollouts = new Map<string, Tracked>();

  constructor(opts: RolloutMetricsOptions) {
    const registers = [opts.registry];
    this.#regions = new Map(Object.entries(opts.revision?.clusters ?? {}).map(([c, v]) => [c, v.region]));
    this.#regionOf = opts.regionOf;
    this.deployments = new Counter({
      name: 'meridian_rollout_deployments_total',
      help: 'Clusters moved to a new revision by a rollout (its wave promoted), by fleet and region.',
      labelNames: ['fleet', 'region'],
      registers,
    });
    this.rollbacks = new Counter({
      name: 'meridian_rollout_rollbacks_total',
      help: 'Clusters returned to their last known-good revision (by a failed gate, an abort or `meridian rollback`), by fleet and region.',
      labelNames: ['fleet', 'region'],
      registers,
    });
    this.deploymentDuration = new Histogram({
      name: 'meridian_rollout_deployment_duration_seconds',
      help: 'From a cluster’s canary deploy to its promotion (steps, analysis and bake included), by fleet and region.',
      labelNames: ['fleet', 'region'],
      buckets: [...ROLLOUT_DURATION_BUCKETS],
      registers,
    });
    this.rollbackDuration = new Histogram({
      name: 'meridian_rollout_rollback_duration_seconds',
      help: 'From the decision to roll back to a cluster reporting its known-good revision healthy, by fleet and region.',
      labelNames: ['fleet', 'region'],
      buckets: [...ROLLOUT_DURATION_BUCKETS],
      registers,
    });
    this.gateVerdicts = new Counter({
      name: 'meridian_rollout_gate_verdicts_total',
      help: 'Analysis verdicts per gate metric (error-rate, p99-latency, …) and verdict (pass, fail, inconclusive, no-data, error, …).',
      labelNames: ['fleet', 'metric', 'verdict'],
      registers,
    });
    this.stepVerdicts = new Counter({
      name: 'meridian_rollout_step_verdicts_total',
      help: 'Verdicts on canary steps (all gates together), by wave and verdict.',
      labelNames: ['fleet', 'wave', 'verdict'],
      registers,
    });
    this.canaryWeight = new Gauge({
      name: 'meridian_rollout_canary_weight_percent',
      help: 'Share of a cluster’s traffic sent to the canary by the rollout in progress, percent; absent when no canary runs.',
      labelNames: ['fleet', 'region', 'cluster'],
      registers,
    });
    this.started = new Counter({
      name: 'meridian_rollouts_started_total',
      help: 'Rollouts and rollbacks started, by fleet and kind.',
      labelNames: ['fleet', 'kind'],
      registers,
    });
    this.finished = new Counter({
      name: 'meridian_rollouts_finished_total',
      help: 'Rollouts and rollbacks finished, by fleet, kind and outcome (promoted, rolled-back, failed).',
      labelNames: ['fleet', 'kind', 'outcome'],
      registers,
    });
    this.waitingSince = new Gauge({
      name: 'meridian_rollout_waiting_since_timestamp_seconds',
      help: 'When a rollout began to wait for a person (reason paused or approval), Unix seconds; absent while it runs.',
      labelNames: ['fleet', 'rollout', 'wave', 'reason'],
      registers,
    });
    const fleet = opts.revision?.fleet;
    if (fleet !== undefined) {
      for (const region of new Set(this.#regions.values())) {
        this.deployments.inc({ fleet, region }, 0);
        this.rollbacks.inc({ fleet, region }, 0);
      }
      for (const kind of ['rollout', 'rollback'])
        for (const outcome of ['promoted', 'rolled-back', 'failed']) this.finished.inc({ fleet, kind, outcome }, 0);
    }
  }

  /** The region label of a cluster. */
  regionOf(cluster: string): string {
    return this.#regions.get(cluster) ?? this.#regionOf?.(cluster) ?? 'unknown';
  }

  /** Rollouts being followed (not finished). */
  get active(): number {
    return this.#rollouts.size;
  }

  /**
   * Feeds one persisted event of `rollout` (every event, in `seq` order, as the engine's `onEvent` or the
   * store's event log gives them). Unknown event types are ignored.
   */
  observe(event: RolloutEventRecord, rollout: Pick<RolloutRecord, 'fleet' | 'kind' | 'spec' | 'createdAt'>): void {
    const e = readEvent(event, rollout);
    let t = this.#rollouts.get(e.rollout);
    if (!t) {
      t = { spec: specOf(rollout), deployStart: new Map(), rollbackStart: null, waiting: null, weighted: new Set() };
      this.#rollouts.set(e.rollout, t);
      if (e.type === 'created') this.started.inc({ fleet: e.fleet, kind: e.kind });
    }
    this.#effects(e, t, Date.parse(rollout.createdAt));
    this.#position(e, t);
  }

  /** What the event reports as done. */
  #effects(e: RolloutEventView, t: Tracked, createdAt: number): void {
    const fleet = e.fleet;
    switch (e.type) {
      case 'weight-set': {
        const weight = typeof e.data['weight'] === 'number' ? e.data['weight'] : null;
        if (weight === null) return;
        for (const cluster of strings(e.data['clusters'])) {
          this.canaryWeight.set({ fleet, region: this.regionOf(cluster), cluster }, weight);
          t.weighted.add(cluster);
        }
        return;
      }
      case 'promoted': {
        for (const cluster of strings(e.data['clusters'])) {
          const region = this.regionOf(cluster);
          const start = t.deployStart.get(cluster) ?? (Number.isFinite(createdAt) ? createdAt : e.at);
          const seconds = Math.max(0, e.at - start) / 1000;
          if (e.kind === 'rollback') {
            this.rollbacks.inc({ fleet, region });
            this.rollbackDuration.observe({ fleet, region }, seconds);
          } else {
            this.deployments.inc({ fleet, region });
            this.deploymentDuration.observe({ fleet, region }, seconds);
          }
          t.deployStart.delete(cluster);
          this.#clearWeight(fleet, t, cluster);
        }
        return;
      }
      case 'cluster-rolled-back': {
        const cluster = typeof e.data['cluster'] === 'string' ? e.data['cluster'] : null;
        if (cluster === null) return;
        const region = this.regionOf(cluster);
        this.rollbacks.inc({ fleet, region });
        this.rollbackDuration.observe({ fleet, region }, Math.max(0, e.at - (t.rollbackStart ?? e.at)) / 1000);
        this.#clearWeight(fleet, t, cluster);
        return;
      }
      case 'verdict': {
        const verdict = typeof e.data['outcome'] === 'string' ? e.data['outcome'] : 'unknown';
        const wave = e.from?.wave ?? e.to?.wave ?? 0;
        this.stepVerdicts.inc({ fleet, wave: waveName(t.spec, wave), verdict });
        for (const g of gateResults(e.data)) this.gateVerdicts.inc({ fleet, metric: g.metric, verdict: g.outcome });
        return;
      }
      default:
        return;
    }
  }

  /** What the position the rollout moved to starts or ends. */
  #position(e: RolloutEventView, t: Tracked): void {
    const to = e.to;
    if (to === null) return;
    if (to.phase === 'deploy')
      for (const c of batchClusters(t.spec, to.wave, to.batch)) if (!t.deployStart.has(c)) t.deployStart.set(c, e.at);
    if (to.phase === 'rollback' && e.from?.phase !== 'rollback') t.rollbackStart = e.at;
    const waitReason = to.phase === 'paused' ? 'paused' : to.phase === 'approval' ? 'approval' : null;
    const labels = waitReason === null ? null : { fleet: e.fleet, rollout: e.rollout, wave: waveName(t.spec, to.wave), reason: waitReason };
    if (t.waiting !== null && (labels === null || JSON.stringify(labels) !== JSON.stringify(t.waiting))) {
      this.waitingSince.remove(t.waiting);
      t.waiting = null;
    }
    if (labels !== null && t.waiting === null) {
      this.waitingSince.set(labels, e.at / 1000);
      t.waiting = labels;
    }
    if (to.phase === 'done') {
      this.finished.inc({ fleet: e.fleet, kind: e.kind, outcome: to.outcome ?? 'unknown' });
      for (const c of [...t.weighted]) this.#clearWeight(e.fleet, t, c);
      this.#rollouts.delete(e.rollout);
    }
  }

  #clearWeight(fleet: string, t: Tracked, cluster: string): void {
    if (!t.weighted.delete(cluster)) return;
    this.canaryWeight.remove({ fleet, region: this.regionOf(cluster), cluster });
  }
}

/** Registers the rollout metrics on `registry`; feed them with `.observe(event, rollout)`. */
export function registerRolloutMetrics(registry: Registry, opts: Omit<RolloutMetricsOptions, 'registry'> = {}): RolloutMetrics {
  return new RolloutMetrics({ registry, ...opts });
}
