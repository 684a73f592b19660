/**
 * The router as a metric source: the counters the router really exposes (its RouterMetrics registry, as
 * text and as prom-client JSON) become snapshots; a window is the difference of two snapshots; the
 * judge reads the result.
 */
import { describe, expect, it } from 'vitest';
import { RouterMetrics } from '../src/router/router-metrics.js';
import { Metric } from '../src/spec/schema.js';
import {
  type RouterCounters,
  RouterSource,
  type SampleContext,
  diffCounters,
  judgeMetric,
  parseExposition,
  routerCountersFromMetricsJson,
  routerCountersFromText,
  routerSample,
} from '../src/rollout/analysis/index.js';

const T0 = '2026-11-26T10:00:00.000Z';
const T1 = '2026-11-26T10:00:30.000Z';

/** A router's metrics with requests for web in two clusters, a stable and a canary version. */
function traffic(m: RouterMetrics, scale = 1): void {
  const req = (cluster: string, version: string, code: string, n: number, reason = 'primary') =>
    m.requests.inc(m.requests.series(['web', 'eu-west', cluster, version, code, reason]), n * scale);
  req('eu-west-1', '2.4.0', '2xx', 950);
  req('eu-west-1', '2.4.0', '5xx', 5);
  req('eu-west-1', '2.4.0', '4xx', 45); // client errors are not errors of the service
  req('eu-west-1', '2.5.0', '2xx', 90, 'sticky');
  req('eu-west-1', '2.5.0', '5xx', 10, 'sticky');
  req('eu-west-1', '2.5.0', 'aborted', 7); // the client went away: not counted
  req('eu-west-2', '2.5.0', '2xx', 100);
  req('us-east-1', '2.5.0', '5xx', 1000); // another cluster, not in the wave
  m.requests.inc(m.requests.series(['web', 'eu-west', 'none', 'none', '5xx', 'no-healthy']), 50); // answered by the router
  // per client region, as the router measures: half of each from two regions, summed by the source
  const lat = (cluster: string, version: string, seconds: number, n: number) => {
    for (const client of ['eu-west', 'us-east']) {
      const s = m.duration.series(['web', client, cluster, version]);
      for (let i = 0; i < (n * scale) / 2; i++) m.duration.observe(s, seconds);
    }
  };
  lat('eu-west-1', '2.4.0', 0.02, 990);
  lat('eu-west-1', '2.4.0', 0.3, 10);
  lat('eu-west-1', '2.5.0', 0.02, 90);
  lat('eu-west-1', '2.5.0', 0.7, 10);
  lat('eu-west-2', '2.5.0', 0.02, 100);
  lat('eu-west-2', '2.5.0', 30, 1); // above the last bucket (10 s)
}

const CTX: SampleContext = {
  service: 'web',
  clusters: ['eu-west-1', 'eu-west-2'],
  canaryVersion: '2.5.0',
  baselineVersion: '2.4.0',
  window: { start: T0, end: T1 },
};

const ERROR_RATE = Metric.parse({ name: 'error-rate', max: '1%', maxIncreaseOverBaseline: '0.5%' });
const P99 = Metric.parse({ name: 'p99-latency', max: '300ms' });

describe('snapshots of the router counters', () => {
  it('read the same from the Prometheus text and from prom-client JSON', async () => {
    const m = new RouterMetrics();
    traffic(m);
    const fromText = routerCountersFromText(await m.registry.metrics(), T0);
    const fromJson = routerCountersFromMetricsJson(await m.registry.getMetricsAsJSON(), T0);
    expect(fromJson).toEqual(fromText);
    const canary = fromText.series.find((s) => s.cluster === 'eu-west-1' && s.version === '2.5.0');
    expect(canary).toMatchObject({ requests: 100, errors: 10, latency: { count: 100 } });
    expect(canary?.latency.buckets.map((b) => b.le)).toEqual([0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]);
    expect(canary?.latency.buckets.find((b) => b.le === 25)?.count).toBe(90);
    expect(fromText.series.some((s) => s.cluster === 'none')).toBe(false);
  });

  it('a window is the growth between two snapshots, summed over the wave’s clusters, per version', async () => {
    const m = new RouterMetrics();
    traffic(m);
    const start = routerCountersFromText(await m.registry.metrics(), T0);
    traffic(m, 2);
    const end = routerCountersFromText(await m.registry.metrics(), T1);
    const s = routerSample(ERROR_RATE, CTX, start, end);
    expect(s.window).toEqual({ start: T0, end: T1 });
    // a router without attempt counters (older than them) is measured on the requests clients saw
    expect(s.canary).toEqual({ kind: 'error-rate', requests: 400, errors: 20, basis: 'requests' });
    expect(s.baseline).toEqual({ kind: 'error-rate', requests: 2000, errors: 10, basis: 'requests' });
    expect(s.query).toMatch(/router error-rate: failed upstream attempts .* \/ attempts .* of web 2\.5\.0 in eu-west-1, eu-west-2/);
    const l = routerSample(P99, CTX, start, end);
    expect(l.canary).toMatchObject({ kind: 'latency', count: 402 });
  });

  it('a counter that went down (the router restarted) counts from zero', () => {
    const series = (requests: number, errors: number) => ({
      service: 'web',
      cluster: 'c',
      version: 'v',
      requests,
      errors,
      latency: { count: 0, sumMs: 0, buckets: [] },
    });
    const a: RouterCounters = { at: T0, series: [series(1000, 10)] };
    const b: RouterCounters = { at: T1, series: [series(300, 3)] };
    expect(diffCounters(a, b)[0]).toMatchObject({ requests: 300, errors: 3 });
    const c: RouterCounters = { at: T1, series: [series(1300, 13)] };
    expect(diffCounters(a, c)[0]).toMatchObject({ requests: 300, errors: 3 });
  });

  it('the exposition reader handles escapes, special values and timestamps', () => {
    const samples = parseExposition(
      [
        '# HELP x help',
        '# TYPE x counter',
        'x{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 12 1700000000000',
        'y +Inf',
        'z NaN',
        'w{} -3.5e2',
      ].join('\n'),
    );
    expect(samples).toEqual([
      { name: 'x', labels: { a: 'q"uote', b: 'back\\slash', c: 'new\nline' }, value: 12 },
      { name: 'y', labels: {}, value: Infinity },
      { name: 'z', labels: {}, value: Number.NaN },
      { name: 'w', labels: {}, value: -350 },
    ]);
    expect(() => parseExposition('x{a=1} 2')).toThrow(/line 1/);
  });
});

describe('the router source, judged', () => {
  it('marks the step start, samples at the end and the judge reads canary against baseline', async () => {
    const m = new RouterMetrics();
    let now = T0;
    const source = new RouterSource({ read: async () => routerCountersFromText(await m.registry.metrics(), now) });
    traffic(m);
    const mark = await source.mark();
    now = T1;
    traffic(m, 2);
    const ctx = { ...CTX, window: { start: mark.at, end: T1 } };
    const er = await source.sample(ERROR_RATE, ctx);
    const v = judgeMetric(ERROR_RATE, er, { minSamples: 200 });
    // canary 20/400 = 5% against baseline 10/2000 = 0.5%
    expect(v.outcome).toBe('fail');
    expect(v.reason).toMatch(/error rate 5% > max 1%/);
    const lat = judgeMetric(P99, await source.sample(P99, ctx), { minSamples: 200 });
    // 20 of 402 canary requests took 700 ms and 2 took 30 s: p99 is far above 300 ms
    expect(lat.outcome).toBe('fail');
    expect(lat.canary?.valueBound).toBe('interpolated');
    expect(lat.canary?.value).toBeGreaterThan(500);
  });

  it('a window that starts before any snapshot is an error sample, not an exception', async () => {
    const m = new RouterMetrics();
    const source = new RouterSource({ read: async () => routerCountersFromText(await m.registry.metrics(), T1) });
    const s = await source.sample(ERROR_RATE, CTX);
    expect(s.error?.code).toBe('MERIDIAN_E_ANALYSIS_SNAPSHOT');
    expect(judgeMetric(ERROR_RATE, s, { minSamples: 1 }).code).toBe('query-error');
  });

  it('a reader that throws is an error sample', async () => {
    let fail = false;
    const source = new RouterSource({
      read: () => {
        if (fail) throw new Error('admin port closed');
        return { at: T0, series: [] };
      },
    });
    await source.mark();
    fail = true;
    const s = await source.sample(ERROR_RATE, { ...CTX, window: { start: T0, end: T1 } });
    expect(s.error).toEqual({ code: 'MERIDIAN_E_ANALYSIS_HTTP', message: "could not read the router's counters: admin port closed" });
  });

  it('no baseline version: no baseline observation; an unknown router metric: a config error', async () => {
    const source = new RouterSource({ read: () => ({ at: T0, series: [] }) });
    await source.mark();
    const s = await source.sample(ERROR_RATE, { ...CTX, baselineVersion: null, window: { start: T0, end: T0 } });
    expect(s.baseline).toBeNull();
    expect(s.canary).toMatchObject({ kind: 'error-rate', requests: 0, errors: 0 });
    const bad = await source.sample(Metric.parse({ name: 'cpu', max: 1 }), { ...CTX, window: { start: T0, end: T0 } });
    expect(bad.error?.code).toBe('MERIDIAN_E_ANALYSIS_CONFIG');
  });
});
