/**
 * The restore ramp in routing (src/routing/ramp.ts): a place ramping back at p % takes p % of the traffic
 * it takes in full, the rest goes where it went while it was evacuated — in the traffic table, in
 * `decide` (sampled) and in `explain`, which all read the same rows.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { render } from '../src/render/render.js';
import { buildRoutingTable, decide, explain, nextAttempt } from '../src/routing/index.js';
import { trafficTable } from '../src/routing/traffic-table.js';
import { loadFleet } from '../src/spec/load.js';

const revision = render(loadFleet(join(import.meta.dirname, 'golden', 'routing', 'fleet.yaml'))).revision;

/** web's share of Irish (eu-west) clients per cluster, stable and canary together. */
function irish(state: Parameters<typeof trafficTable>[1]): Record<string, number> {
  const row = trafficTable(revision, state).services['web']?.['eu-west'];
  const out: Record<string, number> = {};
  for (const [c, v] of Object.entries(row?.clusters ?? {})) if (v.stable + v.canary > 0) out[c] = v.stable + v.canary;
  return out;
}

describe('the restore ramp in routing', () => {
  const full = irish({});
  const evacuated = irish({ drained: ['eu-west'] });

  it('mixes the full and the evacuated shares by the ramp percentage, for a region', () => {
    expect(full['eu-west-1']! + full['eu-west-2']!).toBeCloseTo(1, 9);
    expect(evacuated).toEqual({ 'eu-central-1': 1 });
    for (const pct of [0, 10, 25, 50, 100]) {
      const f = pct / 100;
      const s = irish({ ramp: { 'eu-west': pct } });
      expect(s['eu-west-1'] ?? 0, `${pct}%`).toBeCloseTo(f * full['eu-west-1']!, 9);
      expect(s['eu-west-2'] ?? 0, `${pct}%`).toBeCloseTo(f * full['eu-west-2']!, 9);
      expect(s['eu-central-1'] ?? 0, `${pct}%`).toBeCloseTo(1 - f, 9);
    }
  });

  it('ramps one cluster of a region: its turned-away share goes where it went while it was drained', () => {
    const drained = irish({ drained: ['eu-west-1'] });
    const s = irish({ ramp: { 'eu-west-1': 25 } });
    const away = 0.75 * full['eu-west-1']!;
    expect(s['eu-west-1']).toBeCloseTo(0.25 * full['eu-west-1']!, 9);
    expect(s['eu-west-2']).toBeCloseTo(full['eu-west-2']! + away * (drained['eu-west-2'] ?? 0), 9);
    expect(s['eu-central-1'] ?? 0).toBeCloseTo(away * (drained['eu-central-1'] ?? 0), 9);
  });

  it('a drain wins over a ramp, and 100 % is the full table (same hash)', () => {
    expect(irish({ drained: ['eu-west'], ramp: { 'eu-west': 50 } })).toEqual(evacuated);
    expect(buildRoutingTable(revision, { ramp: { 'eu-west': 100 } }).hash).toBe(buildRoutingTable(revision, {}).hash);
    expect(buildRoutingTable(revision, { ramp: { 'eu-west': 50 } }).hash).not.toBe(buildRoutingTable(revision, {}).hash);
  });

  it('decide follows the shares (sampled) and labels turned-away requests as spill-over; explain shows the same shares', () => {
    const t = buildRoutingTable(revision, { ramp: { 'eu-west': 10 } });
    const n = 20_000;
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const d = decide(t, 'web', 'IE', undefined, (i + 0.5) / n);
      const k = `${d.region} ${d.kind}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['eu-central spillover', 'eu-west primary']);
    expect((seen.get('eu-west primary') ?? 0) / n).toBeCloseTo(0.1, 3);
    const e = explain(t, 'web', 'IE', undefined, 0.5);
    expect(e.levels[0]?.share).toBeCloseTo(0.1, 9);
    // a retry from the ramping region stays inside the row (EU only)
    const west1 = t.clusters.indexOf('eu-west-1');
    expect(nextAttempt(t, 'web', 'IE', undefined, 0.3, [west1]).region).toMatch(/^eu-/);
  });

  it('a locked jurisdiction whose only place is ramping back gets all of it (nobody is turned away with nowhere to go)', () => {
    // EU clients are locked to the EU: with both EU regions drained they would be rejected
    const s = trafficTable(revision, { drained: ['eu-central'], ramp: { 'eu-west': 10 } }).services['web']?.['eu-west'];
    expect(s?.rejected).toBe(0);
    expect((s?.clusters['eu-west-1']?.stable ?? 0) + (s?.clusters['eu-west-2']?.stable ?? 0)).toBeCloseTo(1, 9);
  });
});
