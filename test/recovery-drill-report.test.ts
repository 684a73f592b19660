/** The drill's measurement (src/recovery/drill-report.ts) and its blocked windows, pure. */
import { describe, expect, it } from 'vitest';
import { drillMarkdown, recoveryOf, servedBeforeFault, type DrillSample } from '../src/recovery/drill-report.js';
import { blockedBy } from '../src/recovery/policy.js';

const slo = { successRatio: 0.99, latencyMs: 500, windowMs: 500 };

/** 10 requests per 100 ms for `ms` milliseconds from `from`, failing while `bad(at)` holds. */
function stream(region: string, from: number, ms: number, bad: (at: number) => boolean, latency = 20): DrillSample[] {
  const out: DrillSample[] = [];
  for (let at = from; at < from + ms; at += 10)
    out.push({ atMs: at, region, ok: !bad(at), latencyMs: latency, cluster: bad(at) ? null : 'c1' });
  return out;
}

describe('recovery time per client region', () => {
  it('is the end of the last window that missed the SLO; 0 when never impacted; null when never back', () => {
    const samples = [
      ...stream('hit', -1000, 6000, (at) => at >= 0 && at < 1200),
      ...stream('spared', -1000, 6000, () => false),
      ...stream('lost', -1000, 6000, (at) => at >= 0),
    ];
    const r = recoveryOf(samples, slo, (region) => (region === 'hit' ? 1000 : 2000));
    expect(r.map((x) => [x.region, x.rtoMs, x.pass])).toEqual([
      ['hit', 1500, false], // windows 0, 1 and 2 (to 1500 ms) missed it; the policy allows 1 s
      ['lost', null, false],
      ['spared', 0, true],
    ]);
    expect(r.find((x) => x.region === 'hit')).toMatchObject({ requests: 500, failed: 120, servedBy: { c1: 380 } });
  });

  it('counts a window with a slow p99 as missed, and one with a single failure in 50 under a 99 % SLO', () => {
    const slow = stream('slow', 0, 2000, () => false).map((s) => (s.atMs < 600 ? { ...s, latencyMs: 900 } : s));
    const blip = stream('blip', 0, 2000, (at) => at === 700); // 49 of 50 in the window 500–1000 ms: 98 %
    const r = recoveryOf([...slow, ...blip], slo, () => null);
    expect(r.find((x) => x.region === 'slow')?.rtoMs).toBe(1000);
    expect(r.find((x) => x.region === 'blip')?.rtoMs).toBe(1000);
    // the report says which windows missed it, and whether by failures or by latency
    expect(r.find((x) => x.region === 'slow')?.missed).toEqual([
      { fromMs: 0, requests: 50, failed: 0, p99Ms: 900 },
      { fromMs: 500, requests: 50, failed: 0, p99Ms: 900 },
    ]);
    expect(r.find((x) => x.region === 'blip')?.missed).toEqual([{ fromMs: 500, requests: 50, failed: 1, p99Ms: 20 }]);
    expect(r.every((x) => x.pass)).toBe(true); // no policy RTO: recovering at all passes
  });

  it('tells whether the place took traffic before the fault (a drill of a place already out measures no failover)', () => {
    const served = stream('eu-west', -1000, 2000, () => false).map((s) => ({ ...s, cluster: s.atMs < 0 ? 'eu-west-2' : 'eu-central-1' }));
    const elsewhere = served.map((s) => ({ ...s, cluster: 'eu-central-1' }));
    expect(servedBeforeFault(served, ['eu-west-1', 'eu-west-2'])).toBe(true);
    expect(servedBeforeFault(elsewhere, ['eu-west-1', 'eu-west-2'])).toBe(false);
    expect(
      servedBeforeFault(
        served.map((s) => ({ ...s, cluster: null })),
        ['eu-west-1'],
      ),
    ).toBeNull(); // the data plane does not say
  });

  it('writes a report people can read', () => {
    const regions = recoveryOf(
      stream('eu-west', 0, 1000, (at) => at < 300),
      slo,
      () => 1000,
    );
    const md = drillMarkdown({
      fleet: 'shop',
      place: { kind: 'region', name: 'eu-west' },
      fault: 'kill',
      service: 'web',
      startedAt: '2026-12-07T12:00:00.000Z',
      slo,
      observedMs: 1000,
      regions,
      timeline: [{ atMs: 0, event: 'SIGKILL' }],
      pass: regions.every((x) => x.pass),
    });
    expect(md).toContain('# Drill: kill region eu-west (fleet shop)');
    expect(md).toContain('| eu-west | 500 ms | 1 s | 100 | 30 (30 × no answer) | c1 70 | pass |');
    expect(md).toContain('- +0 ms: SIGKILL');
    expect(md).toContain('- eu-west: +0–500 ms 30 of 50 failed, p99 20 ms');
  });
});

describe('blocked windows and dates', () => {
  const recovery = {
    incidents: [],
    safety: { capacityFloor: '100%', holdDown: '5m', automatedEvacuations: false },
    drills: { blockedWindows: ['Fri:16:00-Mon:08:00', 'Wed:12:00-Wed:13:00'], blockedDates: ['2026-12-24'] },
  };
  it('refuses inside a window that wraps the week, inside a plain one and on a blocked date; allows outside', () => {
    expect(blockedBy(recovery, new Date('2026-12-05T10:00:00Z'))).toContain('Fri:16:00-Mon:08:00'); // a Saturday
    expect(blockedBy(recovery, new Date('2026-12-07T07:59:00Z'))).toContain('Fri:16:00-Mon:08:00'); // Monday morning
    expect(blockedBy(recovery, new Date('2026-12-07T08:00:00Z'))).toBeNull();
    expect(blockedBy(recovery, new Date('2026-12-09T12:30:00Z'))).toContain('Wed:12:00-Wed:13:00');
    expect(blockedBy(recovery, new Date('2026-12-24T10:00:00Z'))).toContain('the blocked date 2026-12-24');
    expect(blockedBy(undefined, new Date())).toBeNull();
  });
});
