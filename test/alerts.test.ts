/**
 * `meridian export alerts`: the generated rules pass `promtool check rules`, and `promtool test rules`
 * (Debian's prometheus package) proves what they page for with series fed in: one bad region pages as a
 * regional incident, every region bad pages once as a global one, and so on.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadAndRender } from '../src/cli/commands/render.js';
import { alertRules, alertThresholds, type AlertingRule, type RuleFile } from '../src/export/alert-rules.js';

const root = join(import.meta.dirname, '..');
const shop = join(root, 'examples', 'shop');
const { loaded, rendered } = loadAndRender(shop);
const rev = rendered.revision;
let dir = '';

function promtool(args: string[]): { code: number; out: string } {
  const r = spawnSync('promtool', args, { cwd: dir, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is not installed (apt-get install prometheus): ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meridian-alerts-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('alert thresholds', () => {
  it('come from the fleet’s router gates: error-rate max, pNN-latency max, minSamples per window', () => {
    const t = alertThresholds(loaded.fleet);
    expect(t.errorRatio).toBeCloseTo(0.01); // examples/shop: error-rate max 1%
    expect(t.latencyQuantile).toBe(0.99);
    expect(t.latencySeconds).toBeCloseTo(1); // p99-latency max 1s
    expect(t.minRps).toBeCloseTo(100 / 300);
    expect(alertThresholds({ rollout: undefined }).errorRatio).toBe(0.05);
  });

  it('map every cluster of the fleet to its region', () => {
    const rules = alertRules(rev, loaded.fleet).groups[0]?.rules ?? [];
    const info = rules.filter((r) => 'record' in r && r.record === 'meridian:cluster_region:info');
    expect(info.map((r) => ('labels' in r ? r.labels : {}))).toEqual(
      Object.entries(rev.clusters)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([cluster, c]) => ({ cluster, region: c.region, jurisdiction: c.jurisdiction })),
    );
  });
});

describe('meridian export alerts', () => {
  const bin = join(root, 'bin', 'meridian.js');
  const run = (args: string[]): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  };

  it('writes rules that promtool check rules accepts', () => {
    if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    const file = join(dir, 'shop.rules.yaml');
    const r = run(['export', 'alerts', shop, '-o', file, '--runbook-base', 'https://runbooks.example/meridian']);
    expect(r.err).toMatch(/wrote \d+ rules to/);
    expect(r.code).toBe(0);
    const check = promtool(['check', 'rules', file]);
    expect(check.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(check.code).toBe(0);
    const parsed = parse(readFileSync(file, 'utf8')) as RuleFile;
    const alerts = parsed.groups.flatMap((g) => g.rules).filter((x): x is AlertingRule => 'alert' in x);
    for (const a of alerts) {
      expect(a.alert).toMatch(/^Meridian[A-Z][A-Za-z]+$/);
      expect(a.labels.severity).toMatch(/^(critical|warning|info)$/);
      expect(a.annotations.summary).toBeTruthy();
      expect(a.annotations.runbook_url).toMatch(/^https:\/\/runbooks\.example\/meridian#/);
    }
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'MeridianRegionalErrorRate',
        'MeridianGlobalErrorRate',
        'MeridianResidencyRejections',
        'MeridianClusterEjected',
        'MeridianRolloutRolledBack',
        'MeridianRolloutPausedTooLong',
        'MeridianRouterDown',
      ]),
    );
  });

  it('prints to stdout, and refuses a bad flag with a clear message and exit 2', () => {
    const ok = run(['export', 'alerts', shop]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^# Prometheus rules for fleet shop/);
    const bad = run(['export', 'alerts', shop, '--global-share', '2']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--global-share must be a share of regions in \(0, 1\]/);
  });
});

/** Series of a promtool test: one `values` expression per series. */
type Series = { series: string; values: string }[];

const MINUTES = 30;
/** Counter growing by `perMin` per minute for the whole test (1 m steps). */
const grow = (perMin: number): string => `0+${perMin}x${MINUTES}`;

function requests(labels: Record<string, string>): string {
  const all = { service: 'web', version: '2.4.0', reason: 'primary', ...labels };
  return `meridian_router_requests_total{${Object.entries(all)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;
}

/** Every cluster serves 10 req/s; clusters of `badRegions` also answer 1 req/s with 5xx (~9%). */
function traffic(badRegions: readonly string[]): Series {
  return Object.entries(rev.clusters).flatMap(([cluster, c]) => [
    { series: requests({ cluster, client_region: c.region, code: '2xx' }), values: grow(600) },
    { series: requests({ cluster, client_region: c.region, code: '5xx' }), values: grow(badRegions.includes(c.region) ? 60 : 0) },
  ]);
}

function expected(alertname: string, alerts: Record<string, string>[]): object {
  return { eval_time: '20m', alertname, exp_alerts: alerts.map((exp_labels) => ({ exp_labels })) };
}

const regional = (region: string): Record<string, string> => ({
  fleet: 'shop',
  severity: 'critical',
  scope: 'regional',
  service: 'web',
  region,
});
const global = { fleet: 'shop', severity: 'critical', scope: 'global', service: 'web' };
const regions = Object.keys(rev.regions);

/** The rules under test, without annotations (promtool compares annotations too; their templates are checked by `check rules`). */
function rulesFile(): string {
  const file = alertRules(rev, loaded.fleet);
  return stringify({
    groups: file.groups.map((g) => ({ ...g, rules: g.rules.map((r) => ('alert' in r ? { ...r, annotations: {} } : r)) })),
  });
}

function runTests(tests: object[]): { code: number; out: string } {
  writeFileSync(join(dir, 'rules.yaml'), rulesFile());
  writeFileSync(join(dir, 'tests.yaml'), stringify({ rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }));
  return promtool(['test', 'rules', 'tests.yaml']);
}

describe('promtool test rules: regional versus global incidents', () => {
  it('one bad region fires only the regional alert, with its region', () => {
    const r = runTests([
      {
        interval: '1m',
        input_series: traffic(['eu-west']),
        alert_rule_test: [
          expected('MeridianRegionalErrorRate', [regional('eu-west')]),
          expected('MeridianGlobalErrorRate', []),
          expected('MeridianRouterDown', []),
        ],
      },
    ]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });

  it('every region bad fires the global alert once and no regional ones', () => {
    const r = runTests([
      {
        interval: '1m',
        input_series: traffic(regions),
        alert_rule_test: [expected('MeridianGlobalErrorRate', [global]), expected('MeridianRegionalErrorRate', [])],
      },
    ]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });

  it('two regions of six stay regional (two pages); half of them makes it global', () => {
    const r = runTests([
      {
        interval: '1m',
        input_series: traffic(['eu-west', 'us-east']),
        alert_rule_test: [
          expected('MeridianRegionalErrorRate', [regional('eu-west'), regional('us-east')]),
          expected('MeridianGlobalErrorRate', []),
        ],
      },
      {
        interval: '1m',
        input_series: traffic(['eu-west', 'us-east', 'ap-south']),
        alert_rule_test: [expected('MeridianGlobalErrorRate', [global]), expected('MeridianRegionalErrorRate', [])],
      },
    ]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });

  it('the harness can fail: expecting regional pages during a global incident is reported as wrong', () => {
    const r = runTests([
      {
        interval: '1m',
        input_series: traffic(regions),
        alert_rule_test: [expected('MeridianRegionalErrorRate', regions.map(regional))],
      },
    ]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/MeridianRegionalErrorRate/);
  });

  it('a region with too little traffic to judge does not page', () => {
    const quiet = Object.entries(rev.clusters).flatMap(([cluster, c]) => [
      { series: requests({ cluster, client_region: c.region, code: '2xx' }), values: grow(c.region === 'eu-west' ? 3 : 600) },
      { series: requests({ cluster, client_region: c.region, code: '5xx' }), values: grow(c.region === 'eu-west' ? 3 : 0) },
    ]);
    const r = runTests([{ interval: '1m', input_series: quiet, alert_rule_test: [expected('MeridianRegionalErrorRate', [])] }]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });
});

describe('promtool test rules: latency', () => {
  /** Request durations per cluster: fast (under 100 ms) everywhere but in `slow` regions (1–2.5 s, past the gate's 1 s). */
  function durations(slow: readonly string[]): Series {
    return Object.entries(rev.clusters).flatMap(([cluster, c]) => {
      const s = slow.includes(c.region);
      // as the router exposes it: per client region too (two here, half the requests each)
      const bucket = (client: string, le: string, perMin: number) => ({
        series: `meridian_router_request_duration_seconds_bucket{service="web",client_region="${client}",cluster="${cluster}",version="2.4.0",le="${le}"}`,
        values: grow(perMin),
      });
      return ['eu-west', 'us-east'].flatMap((client) => [
        bucket(client, '0.1', s ? 0 : 300),
        bucket(client, '0.5', s ? 0 : 300),
        bucket(client, '1', s ? 0 : 300),
        bucket(client, '2.5', 300),
        bucket(client, '+Inf', 300),
      ]);
    });
  }
  const slow = (region?: string): Record<string, string> => ({
    fleet: 'shop',
    severity: 'warning',
    scope: region ? 'regional' : 'global',
    service: 'web',
    ...(region ? { region } : {}),
  });

  it('a slow region is a regional latency alert; every region slow is one global alert', () => {
    const r = runTests([
      {
        interval: '1m',
        input_series: [...traffic([]), ...durations(['ap-south'])],
        alert_rule_test: [expected('MeridianRegionalLatency', [slow('ap-south')]), expected('MeridianGlobalLatency', [])],
      },
      {
        interval: '1m',
        input_series: [...traffic([]), ...durations(regions)],
        alert_rule_test: [expected('MeridianGlobalLatency', [slow()]), expected('MeridianRegionalLatency', [])],
      },
    ]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });
});

describe('promtool test rules: residency, ejection, rollouts, scraping', () => {
  it('each fires with the labels that say where', () => {
    const now = 20 * 60;
    const r = runTests([
      {
        interval: '1m',
        input_series: [
          ...traffic([]),
          {
            series: requests({ cluster: 'none', version: 'none', client_region: 'eu-central', code: '5xx', reason: 'residency-reject' }),
            values: grow(30),
          },
          { series: 'meridian_router_endpoints{service="web",cluster="us-east-2",state="ejected"}', values: `2x${MINUTES}` },
          { series: 'meridian_router_endpoints{service="web",cluster="us-east-2",state="healthy"}', values: `0x${MINUTES}` },
          { series: 'meridian_router_endpoints{service="web",cluster="us-east-1",state="healthy"}', values: `2x${MINUTES}` },
          { series: 'meridian_rollout_rollbacks_total{fleet="shop",region="eu-west"}', values: `0x15 1x15` },
          { series: 'meridian_rollout_rollbacks_total{fleet="shop",region="us-east"}', values: `0x${MINUTES}` },
          {
            series: 'meridian_rollout_waiting_since_timestamp_seconds{fleet="shop",rollout="ro-1",wave="europe",reason="paused"}',
            values: `${now - 45 * 60}x${MINUTES}`,
          },
          {
            series: 'meridian_rollout_waiting_since_timestamp_seconds{fleet="shop",rollout="ro-2",wave="canary",reason="paused"}',
            values: `${now - 60}x${MINUTES}`,
          },
          { series: 'up{job="meridian-router",instance="r1:9901"}', values: `1x10 0x20` },
          { series: 'up{job="meridian-router",instance="r2:9901"}', values: `1x${MINUTES}` },
        ],
        alert_rule_test: [
          expected('MeridianResidencyRejections', [
            { fleet: 'shop', severity: 'critical', scope: 'regional', service: 'web', client_region: 'eu-central', region: 'eu-central' },
          ]),
          expected('MeridianClusterEjected', [
            { fleet: 'shop', severity: 'warning', scope: 'cluster', service: 'web', cluster: 'us-east-2', region: 'us-east' },
          ]),
          expected('MeridianRolloutRolledBack', [{ fleet: 'shop', severity: 'warning', scope: 'regional', region: 'eu-west' }]),
          expected('MeridianRolloutPausedTooLong', [
            { fleet: 'shop', severity: 'warning', scope: 'global', rollout: 'ro-1', wave: 'europe', reason: 'paused' },
          ]),
          expected('MeridianRouterDown', [{ fleet: 'shop', severity: 'critical', job: 'meridian-router', instance: 'r1:9901' }]),
          expected('MeridianRouterMetricsAbsent', []),
          expected('MeridianRegionalErrorRate', []),
          expected('MeridianGlobalErrorRate', []),
        ],
      },
    ]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });
});

describe('promtool test rules: is a version failing (upstream attempts)', () => {
  it('a canary whose failed attempts are all retried elsewhere fires MeridianVersionFailing, though clients saw no 5xx', () => {
    const attempts = (cluster: string, version: string, outcome: string): string =>
      `meridian_router_upstream_attempts_total{service="web",cluster="${cluster}",version="${version}",track="${version === '2.5.0' ? 'canary' : 'stable'}",outcome="${outcome}"}`;
    const r = runTests([
      {
        interval: '1m',
        input_series: [
          ...traffic([]), // every client request answered 2xx
          { series: attempts('eu-west-1', '2.4.0', '2xx'), values: grow(6000) },
          { series: attempts('eu-west-1', '2.5.0', '2xx'), values: grow(540) },
          { series: attempts('eu-west-1', '2.5.0', '5xx'), values: grow(60) }, // 10%, retried on another cluster
          { series: attempts('eu-west-1', '2.5.0', 'aborted'), values: grow(600) }, // the client's doing: left out
        ],
        alert_rule_test: [
          expected('MeridianVersionFailing', [{ fleet: 'shop', severity: 'critical', scope: 'version', service: 'web', version: '2.5.0' }]),
          expected('MeridianRegionalErrorRate', []),
        ],
      },
    ]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });
});
