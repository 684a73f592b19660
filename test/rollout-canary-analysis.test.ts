/**
 * The analysis a rollout runs at each look of a canary step (src/rollout/canary-analysis.ts): health of
 * the new revision first, then the judge over the router's counters between the step's start (recorded by
 * `begin`) and now, canary against baseline, with the step's earlier measurements as history.
 */
import { describe, expect, it } from 'vitest';
import type { RouterCounters, RouterSeries } from '../src/rollout/analysis/index.js';
import { CanaryAnalysis, MeasurementRecord } from '../src/rollout/canary-analysis.js';
import type { StepCluster, StepContext } from '../src/rollout/ports.js';
import { Metric } from '../src/spec/schema.js';
import type { JsonValue } from '../src/store/store.js';
import { FakeDriver, seed } from './support/rollout-kit.js';
import { build, shopInput } from './support/plan-fixtures.js';

const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const analysis = {
  interval: '10s',
  minSamples: 100,
  failureLimit: 1,
  metrics: [Metric.parse({ name: 'error-rate', source: 'router', max: '1%', maxIncreaseOverBaseline: '0.5%' })],
};

function series(cluster: string, version: string, requests: number, errors: number): RouterSeries {
  return { service: 'web', cluster, version, requests, errors, latency: { count: requests, sumMs: 0, buckets: [] } };
}

/** Router counters that the test moves forward. */
class Counters {
  now = T0;
  rows: RouterSeries[] = [];
  read = (): Promise<RouterCounters> => Promise.resolve({ at: new Date(this.now).toISOString(), series: this.rows });
}

const rev = build(shopInput()).revision;
const cluster = Object.keys(rev.clusters).find((c) => rev.clusters[c]?.services['web']) as string;

function step(versions: { canary: string; baseline: string | null }, over: Partial<StepContext> = {}): StepContext {
  const c: StepCluster = { cluster, services: ['web'], toRevision: 'r2', fromRevision: rev.id, versions: { web: versions } };
  return {
    rolloutId: 'ro-1',
    fleet: 'shop',
    wave: { index: 0, name: 'canary' },
    step: { index: 0, weight: 25 },
    attempt: 0,
    clusters: [c],
    toRevision: 'r2',
    now: T0 + 10_000,
    since: T0,
    mark: null,
    history: [],
    final: false,
    ...over,
  };
}

async function healthyCanary(): Promise<FakeDriver> {
  const driver = new FakeDriver();
  await seed(driver, rev);
  const state = rev.clusters[cluster];
  if (!state) throw new Error('no cluster');
  await driver.apply({ cluster, revisionId: 'r2', state, track: 'canary', services: ['web'] });
  return driver;
}

describe('CanaryAnalysis', () => {
  it('judges canary against baseline over the step window from the counters recorded at its start, with history', async () => {
    const counters = new Counters();
    counters.rows = [series(cluster, '2.4.0', 1000, 5), series(cluster, '2.5.0', 0, 0), series('elsewhere', '2.5.0', 50, 50)];
    const a = new CanaryAnalysis({ analysis, health: await healthyCanary(), counters: counters.read });
    const mark = await a.begin({ rolloutId: 'ro-1', clusters: step({ canary: '2.5.0', baseline: '2.4.0' }).clusters, now: T0 });
    expect((mark as unknown as { series: RouterSeries[] }).series.map((s) => s.cluster)).toEqual([cluster, cluster]); // only the step's clusters

    // 10 s later: the canary answered 60 requests, 1 error — not enough to decide
    counters.now = T0 + 10_000;
    counters.rows = [series(cluster, '2.4.0', 1300, 6), series(cluster, '2.5.0', 60, 1)];
    const first = await a.judge(step({ canary: '2.5.0', baseline: '2.4.0' }, { mark }));
    expect(first.outcome).toBe('running');
    const m = MeasurementRecord.parse(first.metrics[0]);
    expect(m).toMatchObject({ service: 'web', metric: 'error-rate', code: 'waiting', window: { start: new Date(T0).toISOString() } });
    expect(m.canary?.observation).toMatchObject({ kind: 'error-rate', requests: 60, errors: 1 });
    expect(m.baseline?.observation).toMatchObject({ kind: 'error-rate', requests: 300, errors: 1 });
    expect(m.query).toMatch(/web 2\.5\.0 in /);

    // 10 s more: 120 requests, 7 errors (5.8%): failed, with the first look in its history
    counters.now = T0 + 20_000;
    counters.rows = [series(cluster, '2.4.0', 1600, 7), series(cluster, '2.5.0', 120, 7)];
    const second = await a.judge(step({ canary: '2.5.0', baseline: '2.4.0' }, { mark, history: [first.metrics as JsonValue], attempt: 1 }));
    expect(second.outcome).toBe('fail');
    expect(second.reason).toMatch(/^web: step FAIL: error-rate: 1 failed measurement reached failureLimit 1: error rate 5\.83% > max 1%/);
  });

  it('fails on health before reading any metric, and passes a fleet without metrics on health alone', async () => {
    const counters = new Counters();
    let reads = 0;
    const read = () => {
      reads++;
      return counters.read();
    };
    const sick = new FakeDriver();
    await seed(sick, rev); // no canary running
    const failed = await new CanaryAnalysis({ analysis, health: sick, counters: read }).judge(step({ canary: '2.5.0', baseline: '2.4.0' }));
    expect(failed.outcome).toBe('fail');
    expect(failed.reason).toMatch(/canary unhealthy/);
    expect(reads).toBe(0);
    const none = await new CanaryAnalysis({ analysis: { ...analysis, metrics: [] }, health: await healthyCanary() }).judge(
      step({ canary: '2.5.0', baseline: '2.4.0' }),
    );
    expect(none).toMatchObject({ outcome: 'pass', reason: expect.stringMatching(/^health only/) });
  });

  it('records a measurement without a start snapshot as an error, and a version shared by both tracks without a baseline', async () => {
    const counters = new Counters();
    const a = new CanaryAnalysis({ analysis, health: await healthyCanary(), counters: counters.read });
    const noMark = await a.judge(step({ canary: '2.5.0', baseline: '2.4.0' }, { final: true }));
    expect(noMark.outcome).toBe('error');
    expect(MeasurementRecord.parse(noMark.metrics[0]).error?.code).toBe('MERIDIAN_E_ANALYSIS_SNAPSHOT');

    counters.rows = [series(cluster, '2.4.0', 0, 0)];
    const mark = await a.begin({ rolloutId: 'ro-1', clusters: step({ canary: '2.4.0', baseline: '2.4.0' }).clusters, now: T0 });
    counters.rows = [series(cluster, '2.4.0', 500, 0)];
    const same = await a.judge(step({ canary: '2.4.0', baseline: '2.4.0' }, { mark, final: true }));
    const v = MeasurementRecord.parse(same.metrics[0]);
    expect(v.baselineQuery).toBeNull();
    expect(v.notes.join(' ')).toMatch(/canary and stable both run version 2\.4\.0/);
    expect(same.outcome).toBe('pass');
  });
});
