/**
 * HAProxy live during a rollout: a canary on us-east-1 stepped through HAProxy's runtime API under real
 * traffic (no reload, no failed request, shares as `route simulate` computes them), and a bad canary on
 * us-east-2 caught by the judge from HAProxy's own Prometheus exporter (per server, by version) and
 * rolled back through the runtime API.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, writeExport } from '../src/export/index.js';
import { haproxyExporter, type HaproxyServer } from '../src/export/haproxy.js';
import { haproxyCommand, setCanaryWeight } from '../src/export/haproxy-runtime.js';
import { judgeMetric } from '../src/rollout/analysis/judge.js';
import { HaproxySource } from '../src/rollout/analysis/haproxy-source.js';
import { trafficTable } from '../src/routing/index.js';
import { Metric } from '../src/spec/schema.js';
import { isHealthyAt, waitForStatus } from '../src/targets/target.js';
import type { LocalTarget } from '../src/targets/local/local-target.js';
import {
  fixtureRevision,
  freePort,
  localRevision,
  type Proc,
  spawnProc,
  startLocalFleet,
  tempDir,
  waitHttp,
} from './support/export-kit.js';
import { closeAgents, get, load } from './support/router-kit.js';

/** Sends `n` US requests; returns the versions by cluster and the failures. */
async function usTraffic(port: number, n: number): Promise<{ versions: Record<string, number>; failed: number; n: number }> {
  const versions: Record<string, number> = {};
  let failed = 0;
  await load(
    n,
    8,
    () => get(port, '/', { headers: { 'x-client-country': 'US' } }),
    (r) => {
      if (r instanceof Error || r.status !== 200) failed++;
      else {
        const b = r.json<{ cluster: string; version: string }>();
        versions[`${b.cluster}@${b.version}`] = (versions[`${b.cluster}@${b.version}`] ?? 0) + 1;
      }
    },
  );
  return { versions, failed, n };
}

describe('HAProxy live: canary weights through the runtime API, judged from HAProxy’s metrics', () => {
  const rev = fixtureRevision();
  const live = localRevision(rev);
  let target: LocalTarget;
  let haproxy: Proc;
  let port: number;
  let metricsPort: number;
  let socket: string;
  let servers: HaproxyServer[];
  const tmp = tempDir('meridian-haproxy-live-');
  const canaryState = { canary: { web: { 'us-east-1': { weight: 0, version: '2.5.0' }, 'us-east-2': { weight: 0, version: '2.5.1' } } } };

  async function startCanary(cluster: string, version: string, env: Record<string, string>): Promise<void> {
    const state = live.clusters[cluster];
    const web = state?.services['web'];
    if (!state || !web) throw new Error('fixture');
    const services = { web: { ...web, version, env: { ...web.env, ...env } } };
    await target.apply({ cluster, revisionId: `canary-${version}`, state: { ...state, services }, track: 'canary' });
    await waitForStatus(target, cluster, (s) => isHealthyAt(s, 'web', 'canary', `canary-${version}`), { timeoutMs: 30_000 });
  }

  beforeAll(async () => {
    target = await startLocalFleet(live);
    await startCanary('us-east-1', '2.5.0', {});
    await startCanary('us-east-2', '2.5.1', { FAULT_STATUS: '500' });
    port = await freePort();
    metricsPort = await freePort();
    socket = join(tmp.dir, 'admin.sock');
    const input = exportInput(
      live,
      clusterAddresses(live, (c) => target.endpoints(c)),
      {
        listen: `127.0.0.1:${port}`,
        metricsListen: `127.0.0.1:${metricsPort}`,
        runtimeApi: socket,
        checkIntervalMs: 500,
        fall: 2,
        rise: 1,
      },
      canaryState,
    );
    writeExport(tmp.dir, 'haproxy', haproxyExporter.export(input));
    servers = (JSON.parse(readFileSync(join(tmp.dir, 'servers.json'), 'utf8')) as { servers: HaproxyServer[] }).servers;
    execFileSync('haproxy', ['-c', '-q', '-f', join(tmp.dir, 'haproxy.cfg')]);
    haproxy = spawnProc('haproxy', ['-db', '-f', join(tmp.dir, 'haproxy.cfg')]);
    await waitHttp(port, haproxy);
  }, 120_000);

  afterAll(async () => {
    closeAgents();
    await haproxy?.stop();
    await target?.close();
    tmp.cleanup();
  });

  it('steps the us-east-1 canary 0 → 10 → 50 % live: shares follow route simulate, no request fails, no reload', async () => {
    const pid = /Pid: (\d+)/.exec(await haproxyCommand(socket, 'show info'))?.[1];
    expect(pid).toBe(String(haproxy.child.pid));
    const before = await usTraffic(port, 300);
    expect(before.failed).toBe(0);
    expect(Object.keys(before.versions).every((k) => k.endsWith('@2.4.0'))).toBe(true);
    for (const weight of [10, 50]) {
      const background = usTraffic(port, 300); // traffic while the weight changes
      await setCanaryWeight(socket, servers, 'web', 'us-east-1', weight);
      expect((await background).failed).toBe(0);
      const after = await usTraffic(port, 600);
      expect(after.failed).toBe(0);
      const model = trafficTable(live, { canary: { web: { 'us-east-1': { weight, version: '2.5.0' } } } }).services['web']?.['us-east'];
      const expected = model?.clusters['us-east-1']?.canary ?? 0;
      expect(Math.abs((after.versions['us-east-1@2.5.0'] ?? 0) / after.n - expected) * 100, JSON.stringify(after)).toBeLessThanOrEqual(3);
    }
    expect(/Pid: (\d+)/.exec(await haproxyCommand(socket, 'show info'))?.[1]).toBe(pid); // the same process: no reload
  }, 120_000);

  it('a bad canary on us-east-2 is caught from HAProxy’s Prometheus exporter and rolled back through the runtime API', async () => {
    const source = new HaproxySource({
      read: async () => (await get(metricsPort, '/metrics')).body,
      index: servers,
    });
    const start = await source.mark();
    await setCanaryWeight(socket, servers, 'web', 'us-east-2', 20);
    const during = await usTraffic(port, 600);
    expect(during.failed).toBeGreaterThan(0); // the bad release's 500s reach clients until HAProxy ejects it (observe layer7)
    const metric = Metric.parse({ name: 'error-rate', source: 'router', max: '5%' });
    const ctx = {
      service: 'web',
      clusters: ['us-east-2'],
      canaryVersion: '2.5.1',
      baselineVersion: '2.4.0',
      window: { start: start.at, end: new Date().toISOString() },
    };
    const sample = await source.sample(metric, ctx);
    expect(sample.error).toBeNull();
    expect(sample.canary).toMatchObject({ kind: 'error-rate' });
    const verdict = judgeMetric(metric, sample, { minSamples: 5 });
    expect(verdict.outcome, JSON.stringify({ sample, verdict })).toBe('fail');
    await setCanaryWeight(socket, servers, 'web', 'us-east-2', 0); // roll back: no reload
    const after = await usTraffic(port, 600);
    expect(after.failed).toBe(0);
    expect(Object.keys(after.versions).some((k) => k.startsWith('us-east-2@2.5.1'))).toBe(false);
  }, 120_000);
});
