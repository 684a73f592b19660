/**
 * The Prometheus source against a real Prometheus (Debian's `prometheus` package, /usr/bin/prometheus):
 * one server for the file, on a free loopback port, scraping every second a small exporter this test
 * runs, whose counters grow at rates the test chose. Prometheus is stopped by its PID afterwards. A
 * missing binary fails the run: install it with `apt-get install prometheus`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metric } from '../src/spec/schema.js';
import {
  PrometheusSource,
  type SampleContext,
  judgeMetric,
  latencyQuantile,
  parseQueryResponse,
  promDuration,
  substituteQuery,
} from '../src/rollout/analysis/index.js';

const BINARY = process.env['MERIDIAN_TEST_PROMETHEUS'] ?? '/usr/bin/prometheus';

/** Label sets and the requests per second each gets: canary 5% errors, baseline 0.5%, another cluster 50%. */
const SERIES = [
  { cluster: 'eu-west-1', version: '2.5.0', code: '2xx', rate: 95 },
  { cluster: 'eu-west-1', version: '2.5.0', code: '5xx', rate: 5 },
  { cluster: 'eu-west-2', version: '2.5.0', code: '2xx', rate: 95 },
  { cluster: 'eu-west-2', version: '2.5.0', code: '5xx', rate: 5 },
  { cluster: 'eu-west-1', version: '2.4.0+b.1', code: '2xx', rate: 995 },
  { cluster: 'eu-west-1', version: '2.4.0+b.1', code: '5xx', rate: 5 },
  { cluster: 'us-east-1', version: '2.5.0', code: '5xx', rate: 100 },
  // a version that only matches if "+" and "." are taken literally, and a quote that must be escaped
  { cluster: 'eu-west-1', version: '2x4y0+b.1', code: '5xx', rate: 500 },
  { cluster: 'eu-west-1', version: 'we"ird', code: '2xx', rate: 10 },
];
/** Cumulative latency buckets (seconds) of two versions, for histogram_quantile. */
const HISTOGRAM = {
  '2.5.0': [
    [0.1, 900],
    [0.25, 960],
    [0.5, 1000],
  ],
  '2.4.0+b.1': [
    [0.1, 990],
    [0.25, 1000],
    [0.5, 1000],
  ],
} as const;

let exporter: Server;
let prometheus: ChildProcess | undefined;
let dir = '';
let url = '';
let log = '';
const started = Date.now();

function exposition(): string {
  const t = (Date.now() - started) / 1000;
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  const lines = ['# TYPE demo_requests_total counter'];
  for (const s of SERIES) {
    lines.push(
      `demo_requests_total{service="web",cluster="${s.cluster}",version="${esc(s.version)}",code="${s.code}"} ${(s.rate * t).toFixed(3)}`,
    );
  }
  lines.push('# TYPE demo_latency_seconds histogram');
  for (const [version, buckets] of Object.entries(HISTOGRAM)) {
    for (const [le, n] of buckets) lines.push(`demo_latency_seconds_bucket{service="web",version="${version}",le="${le}"} ${n}`);
    lines.push(`demo_latency_seconds_bucket{service="web",version="${version}",le="+Inf"} ${buckets.at(-1)?.[1] ?? 0}`);
    lines.push(`demo_latency_seconds_count{service="web",version="${version}"} ${buckets.at(-1)?.[1] ?? 0}`);
  }
  lines.push('# TYPE demo_zero gauge', 'demo_zero 0');
  return `${lines.join('\n')}\n`;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

async function instant(query: string): Promise<unknown> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
  return res.json();
}

beforeAll(async () => {
  if (!existsSync(BINARY)) {
    throw new Error(
      `no Prometheus at ${BINARY}: these tests need a real server and do not skip. Install it with \`apt-get install prometheus\`, or set MERIDIAN_TEST_PROMETHEUS.`,
    );
  }
  exporter = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(exposition());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not here');
    }
  });
  const exporterPort = await listen(exporter);
  dir = await mkdtemp(join(tmpdir(), 'meridian-prom-'));
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      'scrape_configs:',
      '  - job_name: demo',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${exporterPort}']`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    BINARY,
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  prometheus.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  prometheus.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  // Ready, and enough scrapes of the exporter for rate() over a few seconds.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (prometheus.exitCode !== null) throw new Error(`Prometheus exited with ${prometheus.exitCode}:\n${log.slice(-2000)}`);
    try {
      const body = (await instant('count_over_time(demo_zero[1m])')) as { data?: { result?: { value: [number, string] }[] } };
      if (Number(body.data?.result?.[0]?.value[1] ?? 0) >= 6) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`Prometheus did not scrape the exporter within 30 s:\n${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 60_000);

afterAll(async () => {
  const p = prometheus;
  if (p?.pid !== undefined && p.exitCode === null) {
    const exited = new Promise((r) => p.once('exit', r));
    process.kill(p.pid, 'SIGTERM');
    const timer = setTimeout(() => p.pid !== undefined && p.exitCode === null && process.kill(p.pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  await new Promise((r) => (exporter ? exporter.close(r) : r(undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ERROR_RATE_QUERY =
  'sum(rate(demo_requests_total{service="$service",cluster=~"$cluster",version="$version",code="5xx"}[$window]))' +
  ' / sum(rate(demo_requests_total{service="$service",cluster=~"$cluster",version="$version"}[$window]))';

function ctx(over: Partial<SampleContext> = {}): SampleContext {
  const end = new Date();
  return {
    service: 'web',
    clusters: ['eu-west-1', 'eu-west-2'],
    canaryVersion: '2.5.0',
    baselineVersion: '2.4.0+b.1',
    window: { start: new Date(end.getTime() - 5000).toISOString(), end: end.toISOString() },
    ...over,
  };
}

const metric = (m: Record<string, unknown>) => Metric.parse({ name: 'error-rate-prom', source: 'prometheus', url, ...m });

describe('query templates', () => {
  it('fill in escaped values, the clusters as a regular expression and the window in seconds', () => {
    const q = substituteQuery('x{service="$service",cluster=~"$cluster",version="$version"}[$window] $services', {
      service: 'web',
      clusters: ['eu-west-1', 'a.b'],
      version: 'we"ird\\',
      windowSeconds: 29.6,
    });
    expect(q).toBe('x{service="web",cluster=~"eu-west-1|a\\\\.b",version="we\\"ird\\\\"}[30s] $services');
    expect(promDuration(0.2)).toBe('1s');
  });

  it('parse the shapes of an answer', () => {
    expect(parseQueryResponse(200, { status: 'success', data: { resultType: 'scalar', result: [1, '0.5'] } })).toEqual({
      value: 0.5,
      notes: [],
    });
    expect(parseQueryResponse(200, { status: 'success', data: { resultType: 'vector', result: [] }, warnings: ['w'] })).toEqual({
      value: null,
      notes: ['Prometheus warning: w', 'the query returned an empty vector'],
    });
    expect(parseQueryResponse(503, 'x')).toMatchObject({ error: { code: 'MERIDIAN_E_ANALYSIS_HTTP' } });
    expect(parseQueryResponse(200, {})).toMatchObject({ error: { code: 'MERIDIAN_E_ANALYSIS_RESULT' } });
  });
});

describe('Prometheus over HTTP (a real server)', () => {
  it('measures the canary and the baseline in the wave’s clusters, and the judge fails the canary', async () => {
    const m = metric({ query: ERROR_RATE_QUERY, max: '1%', maxIncreaseOverBaseline: '0.5%' });
    const s = await new PrometheusSource().sample(m, ctx());
    expect(s.error).toBeNull();
    // eu-west-1 and eu-west-2 only: us-east-1's 100 errors/s are not in the wave; "2x4y0+b.1" is not 2.4.0+b.1
    expect(s.canary?.kind === 'value' && s.canary.value).toBeCloseTo(0.05, 4);
    expect(s.baseline?.kind === 'value' && s.baseline.value).toBeCloseTo(0.005, 4);
    expect(s.query).toContain('cluster=~"eu-west-1|eu-west-2",version="2.5.0"');
    expect(s.query).toContain('[5s]');
    expect(s.baselineQuery).toContain('version="2.4.0+b.1"');
    const v = judgeMetric(m, s, { minSamples: 200 });
    expect(v.outcome).toBe('fail');
    expect(v.reason).toMatch(/value 5% > max 1%.*value 5% vs baseline 0\.5% \+ 0\.5%: above/);
    expect(v.canary?.samples).toBeNull();
    expect(v.query).toBe(s.query);
  });

  it('passes a version within its limits; a quoted label value is escaped correctly', async () => {
    const m = metric({ query: ERROR_RATE_QUERY, max: '1%' });
    const good = await new PrometheusSource({ url }).sample(
      { ...m, url: undefined } as unknown as typeof m,
      ctx({ canaryVersion: '2.4.0+b.1', baselineVersion: null }),
    );
    expect(judgeMetric(m, good, { minSamples: 0 }).outcome).toBe('pass');
    const weird = await new PrometheusSource().sample(
      metric({ query: 'sum(rate(demo_requests_total{version="$version"}[$window]))', min: 1 }),
      ctx({ canaryVersion: 'we"ird' }),
    );
    const rate = weird.canary?.kind === 'value' ? (weird.canary.value ?? 0) : 0;
    expect(Math.abs(rate - 10)).toBeLessThan(0.5); // 10 requests/s, give or take scrape jitter
  });

  it('agrees with histogram_quantile on the same buckets', async () => {
    const q = 'histogram_quantile(0.99, sum by (le) (demo_latency_seconds_bucket{service="$service",version="$version"}))';
    const m = metric({ name: 'p99', query: q, max: '300ms', maxIncreaseOverBaseline: '50ms' });
    const s = await new PrometheusSource().sample(m, ctx());
    const prom = s.canary?.kind === 'value' ? s.canary.value : null;
    const ours = latencyQuantile(
      { kind: 'latency', count: 1000, buckets: HISTOGRAM['2.5.0'].map(([le, count]) => ({ le: le * 1000, count })) },
      0.99,
    );
    expect(prom).not.toBeNull();
    expect((prom as number) * 1000).toBeCloseTo(ours.value as number, 6);
    // durations are read in seconds for Prometheus: 0.4375 s > 0.3 s
    const v = judgeMetric(m, s, { minSamples: 0 });
    expect(v.unit).toBe('s');
    expect(v.thresholds.max).toBe(0.3);
    expect(v.outcome).toBe('fail');
  });

  it('an empty result and NaN are no data; a time before any data is no data', async () => {
    const empty = await new PrometheusSource().sample(metric({ query: 'sum(demo_requests_total{version="nope"})', max: 1 }), ctx());
    expect(empty.canary).toEqual({ kind: 'value', value: null, samples: null });
    expect(judgeMetric(metric({ query: 'x', max: 1, onNoData: 'fail' }), empty, { minSamples: 0 }).effective).toBe('fail');
    const nan = await new PrometheusSource().sample(metric({ query: 'demo_zero / demo_zero', max: 1 }), ctx());
    expect(nan.canary).toEqual({ kind: 'value', value: null, samples: null });
    expect(nan.notes.join()).toMatch(/NaN/);
    const past = new Date(Date.now() - 3_600_000);
    const old = await new PrometheusSource().sample(
      metric({ query: ERROR_RATE_QUERY, max: '1%' }),
      ctx({ window: { start: new Date(past.getTime() - 5000).toISOString(), end: past.toISOString() } }),
    );
    expect(old.error).toBeNull();
    expect(judgeMetric(metric({ query: 'x', max: '1%' }), old, { minSamples: 0 }).outcome).toBe('no-data');
  });

  it.each([
    ['a bad query', 'sum(', 'MERIDIAN_E_ANALYSIS_QUERY', /bad_data.*parse error/],
    ['several series', 'demo_requests_total', 'MERIDIAN_E_ANALYSIS_RESULT', /returned 9 series.*sum\(\.\.\.\)/],
    ['a range vector', 'demo_zero[1m]', 'MERIDIAN_E_ANALYSIS_RESULT', /returned a matrix/],
    ['+Inf', '1/0', 'MERIDIAN_E_ANALYSIS_RESULT', /returned \+Inf/],
  ])('%s is an error sample with its code', async (_name, query, code, message) => {
    const s = await new PrometheusSource().sample(metric({ query, max: 1 }), ctx());
    expect(s.error?.code).toBe(code);
    expect(s.error?.message).toMatch(message);
    const v = judgeMetric(metric({ query, max: 1 }), s, { minSamples: 0 });
    expect([v.outcome, v.code]).toEqual(['error', 'query-error']);
  });

  it('a failing baseline query fails the measurement, and a comparison needs $version', async () => {
    // one series for the canary's version (only 2xx), two for the baseline's (2xx and 5xx)
    const q = 'sum by (code) (demo_requests_total{version="$version"})';
    const s = await new PrometheusSource().sample(metric({ query: q, maxIncreaseOverBaseline: 1 }), ctx({ canaryVersion: 'we"ird' }));
    expect(s.error?.code).toBe('MERIDIAN_E_ANALYSIS_RESULT');
    expect(s.error?.message).toMatch(/^baseline query: the query returned 2 series/);
    expect(s.baselineQuery).toBe('sum by (code) (demo_requests_total{version="2.4.0+b.1"})');
    const noVersion = await new PrometheusSource().sample(metric({ query: 'demo_zero', maxIncreaseOverBaseline: 1 }), ctx());
    expect(noVersion.error?.code).toBe('MERIDIAN_E_ANALYSIS_CONFIG');
    expect(noVersion.error?.message).toMatch(/\$version/);
  });
});

describe('Prometheus unreachable or broken', () => {
  it('a closed port is an HTTP error sample', async () => {
    const port = await freePort();
    const s = await new PrometheusSource().sample(metric({ url: `http://127.0.0.1:${port}`, query: 'up', max: 1 }), ctx());
    expect(s.error?.code).toBe('MERIDIAN_E_ANALYSIS_HTTP');
    expect(s.error?.message).toMatch(/cannot reach Prometheus at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it('a server that does not answer in time is a timeout sample', async () => {
    const silent = createServer(() => undefined);
    const port = await listen(silent);
    try {
      const t0 = Date.now();
      const s = await new PrometheusSource({ timeoutMs: 300 }).sample(
        metric({ url: `http://127.0.0.1:${port}`, query: 'up', max: 1 }),
        ctx(),
      );
      expect(s.error?.code).toBe('MERIDIAN_E_ANALYSIS_TIMEOUT');
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it('something that is not Prometheus is an HTTP error sample', async () => {
    const port = (exporter.address() as AddressInfo).port;
    const s = await new PrometheusSource().sample(metric({ url: `http://127.0.0.1:${port}`, query: 'up', max: 1 }), ctx());
    expect(s.error).toEqual({
      code: 'MERIDIAN_E_ANALYSIS_HTTP',
      message: 'Prometheus answered HTTP 404 with a body that is not JSON: not here',
    });
  });
});
