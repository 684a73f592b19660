/**
 * The router counts every upstream attempt (`meridian_router_upstream_attempts_total` and the attempt
 * duration histogram), beside the client-facing request counters, and the judge reads them: a canary
 * whose failures are retried elsewhere is still seen failing.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { judgeMetric, routerCountersFromText, routerSample } from '../src/rollout/analysis/index.js';
import { Metric } from '../src/spec/schema.js';
import { closeAgents, get, revision, startUpstream, type FleetSpec, type Upstream } from './support/router-kit.js';
import { TRUST_LOOPBACK } from './support/router-kit.js';

const routers: Router[] = [];
const upstreams: Upstream[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await Promise.all(upstreams.splice(0).map((u) => u.kill()));
});
afterAll(() => closeAgents());

function fleet(routing: Record<string, unknown>): FleetSpec {
  return {
    regions: {
      'eu-west': { jurisdiction: 'EU', countries: ['IE'], lat: 53.35, lon: -6.26 },
      'eu-central': { jurisdiction: 'EU', countries: ['DE'], lat: 50.11, lon: 8.68 },
    },
    clusters: { 'eu-west-1': { region: 'eu-west' }, 'eu-west-2': { region: 'eu-west' }, 'eu-central-1': { region: 'eu-central' } },
    services: { web: { version: '1.0.0' } },
    routing: { web: { clientCountryHeader: 'x-client-country', ...routing } },
  };
}

async function metricLines(port: number, name: string): Promise<string[]> {
  return (await get(port, '/_meridian/metrics')).body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .sort();
}

const IE = { headers: { 'x-client-country': 'IE' } };

describe('upstream attempts', () => {
  it('one request with two failed attempts and a success books three attempts with their labels, and one client request', async () => {
    const rev = revision(fleet({ retries: { attempts: 2, budget: '100%', perTryTimeout: '1500ms' } }));
    const [a, b, c] = await Promise.all([
      startUpstream('eu-west-1', '1.0.0'),
      startUpstream('eu-west-2', '1.1.0'),
      startUpstream('eu-central-1', '1.2.0'),
    ]);
    upstreams.push(a, b, c);
    a.status = 500; // a 5xx, retried
    b.delayMs = 10_000; // no headers within perTryTimeout: a timeout, retried (1.5 s: a starved machine still answers the 500 in time)
    const router = new Router({
      ...TRUST_LOOPBACK,
      geoip: null,
      revision: rev,
      endpoints: new StaticEndpoints([a.endpoint(), b.endpoint(), c.endpoint()]),
      healthChecks: false,
    });
    routers.push(router);
    const { port } = await router.listen(0);

    const r = await get(port, '/', IE);
    expect(r.status, r.body).toBe(200);
    expect(r.headers['x-meridian-cluster']).toBe('eu-central-1');
    expect(await metricLines(port, 'meridian_router_upstream_attempts_total')).toEqual([
      'meridian_router_upstream_attempts_total{service="web",cluster="eu-central-1",version="1.2.0",track="stable",outcome="2xx"} 1',
      'meridian_router_upstream_attempts_total{service="web",cluster="eu-west-1",version="1.0.0",track="stable",outcome="5xx"} 1',
      'meridian_router_upstream_attempts_total{service="web",cluster="eu-west-2",version="1.1.0",track="stable",outcome="timeout"} 1',
    ]);
    // the client saw one request, answered by the cluster that finally answered it
    expect(await metricLines(port, 'meridian_router_requests_total')).toEqual([
      'meridian_router_requests_total{service="web",client_region="eu-west",cluster="eu-central-1",version="1.2.0",code="2xx",reason="retry"} 1',
    ]);
    // one duration per attempt; the timed-out one took its perTryTimeout
    const counts = await metricLines(port, 'meridian_router_upstream_attempt_duration_seconds_count');
    expect(counts.map((l) => l.replace(/^.*cluster="([^"]+)".* (\d+)$/, '$1 $2'))).toEqual([
      'eu-central-1 1',
      'eu-west-1 1',
      'eu-west-2 1',
    ]);
    const slow = (await metricLines(port, 'meridian_router_upstream_attempt_duration_seconds_sum')).find((l) => l.includes('eu-west-2'));
    expect(Number(slow?.split(' ').at(-1))).toBeGreaterThanOrEqual(1.45);
  });

  it('with retries on, a canary failing 30% is judged failed on its attempts, though clients saw no error (the judge was blind to it)', async () => {
    const rev = revision(fleet({ retries: { attempts: 1, budget: '100%' } }));
    const [stable, canary, other] = await Promise.all([
      startUpstream('eu-west-1', '1.0.0'),
      startUpstream('eu-west-1', '2.0.0'),
      startUpstream('eu-west-2', '1.0.0'),
    ]);
    upstreams.push(stable, canary, other);
    canary.status = 500; // every canary attempt fails; a 30% share of eu-west-1's users get it
    const router = new Router({
      ...TRUST_LOOPBACK,
      geoip: null,
      revision: rev,
      endpoints: new StaticEndpoints([stable.endpoint(), canary.endpoint('canary'), other.endpoint()]),
      healthChecks: false,
    });
    routers.push(router);
    const { port } = await router.listen(0);
    router.setCanary('web', 'eu-west-1', { weight: 30, version: '2.0.0' });
    const counters = async () => routerCountersFromText((await get(port, '/_meridian/metrics')).body, new Date().toISOString());
    const start = await counters();
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) statuses.push((await get(port, `/?i=${i}`, { headers: { 'x-client-country': 'IE' } })).status);
    const end = await counters();
    expect(statuses.filter((s) => s !== 200)).toEqual([]); // every failed canary attempt was retried on eu-west-2
    expect(canary.hits).toBeGreaterThanOrEqual(5); // then outlier detection (5 in a row by default) ejected it

    const metric = Metric.parse({ name: 'error-rate', source: 'router', max: '1%' });
    const ctx = {
      service: 'web',
      clusters: ['eu-west-1'],
      canaryVersion: '2.0.0',
      baselineVersion: '1.0.0',
      window: { start: start.at, end: end.at },
    };
    const v = judgeMetric(metric, routerSample(metric, ctx, start, end), { minSamples: 5 });
    expect(v.outcome, v.reason).toBe('fail');
    expect(v.canary?.observation).toMatchObject({
      kind: 'error-rate',
      basis: 'attempts',
      requests: canary.hits,
      errors: canary.hits,
      clients: { errors: 0 }, // what clients saw of the canary: no error
    });
  });
});

describe('endpoints taken out of rotation', () => {
  it('counts an endpoint that was in rotation and stops answering, never one still starting (not healthy at its source yet)', async () => {
    const rev = revision(fleet({ healthCheck: { interval: '50ms', timeout: '500ms', unhealthyThreshold: 1 } }));
    const [live, starting, dying] = await Promise.all([
      startUpstream('eu-central-1', '1.0.0'),
      startUpstream('eu-west-1', '1.1.0'),
      startUpstream('eu-west-2', '1.1.0'),
    ]);
    upstreams.push(live);
    // nothing listens on either port any more: the starting replica is not listening yet, the dying one is gone
    await Promise.all([starting.kill(), dying.kill()]);
    const router = new Router({
      ...TRUST_LOOPBACK,
      geoip: null,
      revision: rev,
      endpoints: new StaticEndpoints([live.endpoint(), { ...starting.endpoint(), healthy: false }, dying.endpoint()]),
    });
    routers.push(router);
    const { port } = await router.listen(0);
    let lines: string[] = [];
    for (let i = 0; i < 100 && !lines.some((l) => l.includes('cluster="eu-west-2"')); i++) {
      await new Promise((r) => setTimeout(r, 50));
      lines = await metricLines(port, 'meridian_router_endpoints_taken_out_total');
    }
    expect(
      lines.some((l) => l.includes('cluster="eu-west-2"') && l.includes('cause="unreachable"')),
      lines.join('\n'),
    ).toBe(true);
    expect(lines.filter((l) => l.includes('cluster="eu-west-1"'))).toEqual([]);
  });
});
