/** The demo's traffic, told: its lines, and when the first rollout may start (after traffic answered well). */
import { describe, expect, it } from 'vitest';
import { DEMO_TRAFFIC, errorShare, rolloutReadiness, trafficLine } from '../src/demo/traffic-story.js';
import { emptyStats, type TrafficReport } from '../src/traffic/report.js';

/** A period's report: per country, how many answered with each status. */
function report(statuses: Record<string, Record<string, number>>): TrafficReport {
  const countries = Object.fromEntries(
    Object.entries(statuses).map(([country, byStatus]) => {
      const c = emptyStats();
      for (const [status, n] of Object.entries(byStatus)) {
        c.sent += n;
        c.statuses[status] = n;
        if (/^2/.test(status)) {
          const cluster = country === 'DE' ? 'eu-central-1' : 'us-east-1';
          c.clusters[cluster] = (c.clusters[cluster] ?? 0) + n;
          c.versions['2.4.0'] = (c.versions['2.4.0'] ?? 0) + n;
        }
      }
      return [country, c];
    }),
  );
  return { url: 'http://127.0.0.1:8080/', durationMs: 3000, countries };
}

describe("the demo's traffic", () => {
  it('counts timeouts and 5xx as errors, 2xx and 3xx as answered', () => {
    expect(errorShare(report({ DE: { '200': 90, '302': 5 }, US: { '504': 3, timeout: 2 } }))).toBeCloseTo(0.05);
    expect(errorShare(report({}))).toBe(0);
  });

  it('starts the first rollout after a period answered well, not while the fleet still times out', () => {
    const warmingUp = report({ DE: { '200': 150, timeout: 60 }, US: { '200': 60, '504': 30 } }); // 30 % errors
    const answered = report({ DE: { '200': 150 }, US: { '200': 149, '504': 1 } }); // 0.3 %
    expect(rolloutReadiness(warmingUp, 1)).toBe('wait');
    expect(rolloutReadiness(answered, 1)).toBe('answered');
    expect(rolloutReadiness(answered, 2)).toBe('answered');
    // a machine too busy to answer well: after `patience` periods the story goes on (and says so)
    expect(rolloutReadiness(warmingUp, DEMO_TRAFFIC.patience - 1)).toBe('wait');
    expect(rolloutReadiness(warmingUp, DEMO_TRAFFIC.patience)).toBe('patience');
    // no request sent at all is not traffic answered
    expect(rolloutReadiness(report({}), 1)).toBe('wait');
  });

  it('the first period is short and tells the routing; the next are longer', () => {
    expect(DEMO_TRAFFIC.firstReportMs).toBeLessThan(DEMO_TRAFFIC.reportMs);
    const lines = trafficLine(report({ DE: { '200': 200 }, US: { '200': 99, '504': 1 } }), true);
    expect(lines[0]).toBe('traffic: 300 requests in 3 s, 0.3% errors (504 100%); versions 2.4.0 100%');
    expect(lines.slice(1)).toEqual(['  DE  → eu-central-1 100%', '  US  → us-east-1 99%']);
    expect(trafficLine(report({ DE: { '200': 1 } }), false)).toHaveLength(1);
  });
});
