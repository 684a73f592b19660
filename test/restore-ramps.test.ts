/**
 * The control plane's restore ramps (src/server/restore-ramps.ts) on a fake clock: each step gets its
 * turn (the routers told, the step audited) even when a recompute of the routing view reads the ramp after
 * the step fell due and before its timer ran — that recompute used to disarm the timer, and the step was
 * never audited (seen in test/recovery-haproxy.test.ts, where the fleet's look recomputes after each
 * HAProxy reload).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RestoreRamps } from '../src/server/restore-ramps.js';
import type { AuditEntry, Store } from '../src/store/store.js';

const T0 = Date.parse('2026-12-08T00:00:00.000Z');

/** The restore of eu-west at T0 with a ramp of 20 % then 100 % every 10 s, as the audit log holds it. */
const restore: AuditEntry = {
  seq: 7,
  at: new Date(T0).toISOString(),
  actor: { id: 'ops', via: 'cli' },
  action: 'routing.drain',
  subject: 'eu-west',
  reason: null,
  data: { drained: false, kind: 'region', restore: true, ramp: { steps: [20, 100], stepMs: 10_000 } },
  prevHash: '',
  hash: '',
};

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the control plane’s restore ramps', () => {
  it('runs a step that fell due when a recompute reads the ramp before the step’s timer ran', () => {
    const steps: number[] = [];
    const ramps = new RestoreRamps({ store: {} as Store, recovery: undefined, link: null, onStep: () => steps.push(Date.now()) });
    ramps.observe(restore, 'region');
    expect(ramps.at(T0, new Set())).toEqual({ 'eu-west': 20 });
    // the step falls due at T0 + 10 s; a recompute 1 ms later, before the step's timer has run
    vi.setSystemTime(T0 + 10_001);
    expect(ramps.at(T0 + 10_001, new Set())).toEqual({});
    vi.advanceTimersByTime(50);
    expect(steps).toHaveLength(1);
    // and the step's own recompute arms nothing more: the ramp is over
    ramps.at(Date.now(), new Set());
    vi.advanceTimersByTime(60_000);
    expect(steps).toHaveLength(1);
  });

  it('runs each step once on its timer when nothing recomputes in between', () => {
    const steps: number[] = [];
    const ramps = new RestoreRamps({ store: {} as Store, recovery: undefined, link: null, onStep: () => steps.push(Date.now()) });
    ramps.observe(restore, 'region');
    ramps.at(T0, new Set());
    vi.advanceTimersByTime(9_999);
    expect(steps).toEqual([]);
    vi.advanceTimersByTime(10);
    expect(steps).toEqual([T0 + 10_005]);
    ramps.at(Date.now(), new Set()); // what the step does: recompute
    vi.advanceTimersByTime(60_000);
    expect(steps).toHaveLength(1);
  });
});
