/** Live traffic from two scrapes of the router's metrics: rates, error rates and p99 per flow. */
import { describe, expect, it } from 'vitest';
import { sampleOf, trafficBetween } from '../src/server/traffic-sampler.js';

/** The router's exposition for one cluster serving two client regions: EU fast (≤ 10 ms), US slow (≤ 250 ms). */
function scrape(n: number): string {
  const lines: string[] = [];
  const flow = (client: string, les: readonly [string, number][], errors: number): void => {
    const l = `service="web",client_region="${client}",cluster="eu-west-1",version="1.0.0"`;
    lines.push(`meridian_router_requests_total{${l},code="2xx",reason="primary"} ${n - errors}`);
    if (errors > 0) lines.push(`meridian_router_requests_total{${l},code="5xx",reason="primary"} ${errors}`);
    for (const [le, c] of les) lines.push(`meridian_router_request_duration_seconds_bucket{${l},le="${le}"} ${c}`);
  };
  flow(
    'eu-west',
    [
      ['0.01', n],
      ['0.25', n],
      ['+Inf', n],
    ],
    0,
  );
  flow(
    'us-east',
    [
      ['0.01', 0],
      ['0.25', n],
      ['+Inf', n],
    ],
    n / 100,
  );
  return `${lines.join('\n')}\n`;
}

describe('traffic between two scrapes', () => {
  it('gives each client region its own p99, not the cluster’s', () => {
    const view = trafficBetween(sampleOf(scrape(0), 0), sampleOf(scrape(1000), 10_000), () => 'eu-west');
    const eu = view.flows.find((f) => f.clientRegion === 'eu-west');
    const us = view.flows.find((f) => f.clientRegion === 'us-east');
    expect(eu).toMatchObject({ cluster: 'eu-west-1', region: 'eu-west', version: '1.0.0', rps: 100, errorRate: 0 });
    expect(us).toMatchObject({ cluster: 'eu-west-1', rps: 100, errorRate: 0.01 });
    // 99 % of 1,000 requests fall in the first bucket for EU (≤ 10 ms), in the second for US (10–250 ms)
    expect(eu?.p99Ms).toBeLessThanOrEqual(10);
    expect(us?.p99Ms).toBeGreaterThan(10);
    expect(us?.p99Ms).toBeLessThanOrEqual(250);
    expect(view.windowSeconds).toBe(10);
  });

  it('has no p99 for a flow without requests in the window, and no flow at all then', () => {
    const view = trafficBetween(sampleOf(scrape(1000), 0), sampleOf(scrape(1000), 5_000), () => 'eu-west');
    expect(view.flows).toEqual([]);
  });
});
