/**
 * The restore ramp's schedule (src/recovery/ramp.ts): a pure function of the restore's time, the ramp and
 * the clock; the ledger reads restores and their ramps back from the audit log, so a restarted control
 * plane finds each ramp where it stands.
 */
import { describe, expect, it } from 'vitest';
import { recoveryLedger } from '../src/recovery/ledger.js';
import { DEFAULT_RAMP, rampAt, rampJson, rampsInForce, restoreRamp } from '../src/recovery/ramp.js';
import { Recovery } from '../src/spec/schema.js';
import type { AuditEntry, JsonValue } from '../src/store/store.js';

const T0 = Date.parse('2026-12-07T18:00:00.000Z');

function entry(seq: number, atMs: number, subject: string, data: JsonValue): AuditEntry {
  return {
    seq,
    at: new Date(atMs).toISOString(),
    actor: { id: 'ops', via: 'test' },
    action: 'routing.drain',
    subject,
    reason: null,
    data,
    prevHash: '',
    hash: '',
  };
}

describe('the restore ramp schedule', () => {
  const ramp = { steps: [10, 25, 50, 100], stepMs: 10_000 };

  it('steps one `step` apart from the restore, and ends at 100 %', () => {
    expect(rampAt(ramp, T0, T0).percent).toBe(10);
    expect(rampAt(ramp, T0, T0 + 9_999)).toMatchObject({ percent: 10, step: 0, steps: 4, nextAt: T0 + 10_000, endsAt: T0 + 30_000 });
    expect(rampAt(ramp, T0, T0 + 10_000)).toMatchObject({ percent: 25, step: 1, stepAt: T0 + 10_000 });
    expect(rampAt(ramp, T0, T0 + 25_000).percent).toBe(50);
    expect(rampAt(ramp, T0, T0 + 30_000)).toMatchObject({ percent: 100, step: 3, nextAt: null });
    expect(rampAt(ramp, T0, T0 + 86_400_000).percent).toBe(100);
    // a clock behind the restore's time stays on the first step
    expect(rampAt(ramp, T0, T0 - 5_000).percent).toBe(10);
  });

  it('adds the final 100 % a ramp stops short of, and a ramp of [100] is no ramp', () => {
    expect(rampAt({ steps: [20, 60], stepMs: 1000 }, T0, T0 + 2000)).toMatchObject({ percent: 100, steps: 3 });
    expect(rampAt({ steps: [20, 60], stepMs: 1000 }, T0, T0 + 1999).percent).toBe(60);
    expect(rampAt({ steps: [100], stepMs: 1000 }, T0, T0).nextAt).toBeNull();
  });

  it('reads the policy: its ramp, the default with a recovery section that sets none, none without one', () => {
    const parse = (x: unknown): Recovery => Recovery.parse(x);
    expect(restoreRamp(parse({ restore: { ramp: [10, 50, 100], step: '10s' } }))).toEqual({ steps: [10, 50, 100], stepMs: 10_000 });
    expect(restoreRamp(parse({}))).toEqual(DEFAULT_RAMP);
    expect(restoreRamp(undefined)).toBeNull();
  });

  it('refuses a ramp that goes down, naming where', () => {
    const r = Recovery.safeParse({ restore: { ramp: [50, 10, 100], step: '10s' } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['restore', 'ramp']);
    expect(r.error?.issues[0]?.message).toMatch(/never go down/);
  });

  it('derives the ramps in force from the audit log and the clock alone (what a restarted control plane does)', () => {
    const log = [
      entry(1, T0 - 60_000, 'eu-west', { kind: 'region', drained: true, evacuation: true }),
      entry(2, T0, 'eu-west', { kind: 'region', drained: false, restore: true, ramp: rampJson(ramp) }),
      entry(3, T0 - 50_000, 'us-east-1', { kind: 'cluster', drained: true }),
      entry(4, T0 + 1000, 'us-east-1', { kind: 'cluster', drained: false, restore: true, ramp: null }),
      entry(5, T0 - 40_000, 'ap-south', { kind: 'region', drained: true }),
      entry(6, T0 + 2000, 'ap-south', { kind: 'region', drained: false, restore: true }),
    ];
    const ledger = recoveryLedger(log);
    expect(ledger.evacuated).toEqual([]);
    expect(ledger.restores.map((r) => [r.place.name, r.seq, r.ramp])).toEqual([
      ['eu-west', 2, ramp],
      ['us-east-1', 4, null],
      ['ap-south', 6, undefined],
    ]);
    const fallback = { steps: [50, 100], stepMs: 5000 };
    const at = (now: number): Record<string, number> =>
      Object.fromEntries(rampsInForce(ledger.restores, fallback, now).map((r) => [r.place.name, r.percent]));
    // us-east-1 was restored at once (ramp: null); ap-south recorded no ramp, so the policy's applies
    expect(at(T0 + 3000)).toEqual({ 'eu-west': 10, 'ap-south': 50 });
    expect(at(T0 + 12_000)).toEqual({ 'eu-west': 25 });
    expect(at(T0 + 30_000)).toEqual({});
    // evacuated again: no longer a restore
    const again = recoveryLedger([...log, entry(7, T0 + 40_000, 'eu-west', { kind: 'region', drained: true })]);
    expect(again.restores.map((r) => r.place.name)).toEqual(['us-east-1', 'ap-south']);
  });
});
