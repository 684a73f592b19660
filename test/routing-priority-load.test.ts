/**
 * Envoy's priority-load arithmetic against the tables of Envoy's architecture docs, verbatim:
 * "Priority levels" (intro/arch_overview/upstream/load_balancing/priority) and "Panic threshold"
 * (…/load_balancing/panic_threshold). Each row: healthy percentage per level → traffic per level.
 */
import { describe, expect, it } from 'vitest';
import { capLoads } from '../src/routing/capacity.js';
import { levelHealth, priorityLoad, priorityLoadFromPercents } from '../src/routing/priority-load.js';

// The "Priority levels" page describes load without panic (its rows where every level is below 50%
// would be in total panic under the default threshold; the "Panic threshold" page covers that).
const noPanic = { panicThreshold: 0 };

describe('Envoy "Priority levels" tables', () => {
  it.each([
    [100, 100, 0],
    [72, 100, 0],
    [71, 99, 1],
    [50, 70, 30],
    [25, 35, 65],
    [0, 0, 100],
  ])('2 levels, P=1 100%% healthy: P=0 %i%% healthy → %i%% / %i%%', (p0, t0, t1) => {
    expect(priorityLoadFromPercents([p0, 100], noPanic).load).toEqual([t0, t1]);
  });

  it.each([
    [100, 100, 100, 0],
    [72, 72, 100, 0],
    [71, 71, 99, 1],
    [50, 50, 70, 30],
    [25, 100, 35, 65],
    [25, 25, 50, 50],
  ])('2 levels: P=0 %i%%, P=1 %i%% healthy → %i%% / %i%%', (p0, p1, t0, t1) => {
    expect(priorityLoadFromPercents([p0, p1], noPanic).load).toEqual([t0, t1]);
  });

  it.each([
    [100, 100, 100, 100, 0, 0],
    [72, 72, 100, 100, 0, 0],
    [71, 71, 100, 99, 1, 0],
    [50, 50, 100, 70, 30, 0],
    [25, 100, 100, 35, 65, 0],
    [25, 25, 100, 35, 35, 30],
    [25, 25, 20, 36, 36, 28],
  ])('3 levels: %i%% / %i%% / %i%% healthy → %i%% / %i%% / %i%%', (p0, p1, p2, t0, t1, t2) => {
    expect(priorityLoadFromPercents([p0, p1, p2], noPanic).load).toEqual([t0, t1, t2]);
  });

  it('normalises health scores {20, 30} (normalised total health 50) to loads {40%, 60%}', () => {
    // 1/7 and 3/14 healthy give health scores ⌊140/7⌋ = 20 and ⌊420/14⌋ = 30
    const r = priorityLoad(
      [
        { healthyWeight: 1, totalWeight: 7 },
        { healthyWeight: 3, totalWeight: 14 },
      ],
      noPanic,
    );
    expect(r.health).toEqual([20, 30]);
    expect(r.normalizedTotalHealth).toBe(50);
    expect(r.load).toEqual([40, 60]);
  });

  it('health is the integer score min(100, ⌊140 × healthy / total⌋): 80% counts as fully healthy, 71.4% is the edge', () => {
    expect(levelHealth(80, 100)).toBe(100);
    expect(levelHealth(72, 100)).toBe(100);
    expect(levelHealth(71, 100)).toBe(99);
    expect(levelHealth(5, 7)).toBe(100); // 71.43% × 1.4 = 100
    expect(levelHealth(0, 10)).toBe(0);
    expect(levelHealth(0, 0)).toBe(0);
    expect(levelHealth(1, 2, 2)).toBe(100); // overprovisioning factor 2
  });

  it('uses cluster weights where Envoy counts hosts (Envoy weighted_priority_health)', () => {
    // P0: a weight-3 cluster down, a weight-1 cluster up: 25% healthy by weight → health 35
    const r = priorityLoad(
      [
        { healthyWeight: 1, totalWeight: 4 },
        { healthyWeight: 2, totalWeight: 2 },
      ],
      noPanic,
    );
    expect(r.load).toEqual([35, 65]);
  });
});

describe('Envoy "Panic threshold" tables (default 50%)', () => {
  it.each([
    [72, 100, false, 0, false, 100],
    [71, 99, false, 1, false, 100],
    [50, 70, false, 30, false, 100],
    [25, 35, false, 65, false, 100],
    [0, 0, false, 100, false, 100],
  ])('P=1 100%% healthy: P=0 %i%% → %i%% (panic %s) / %i%% (panic %s), normalised total %i%%', (p0, t0, panic0, t1, panic1, nth) => {
    const r = priorityLoadFromPercents([p0, 100]);
    expect(r.load).toEqual([t0, t1]);
    expect(r.panic).toEqual([panic0, panic1]);
    expect(r.normalizedTotalHealth).toBe(nth);
  });

  it.each([
    [72, 72, 100, false, 0, false, 100],
    [71, 71, 99, false, 1, false, 100],
    [50, 60, 70, false, 30, false, 100],
    [25, 100, 35, false, 65, false, 100],
    [25, 25, 50, true, 50, true, 70],
    [5, 65, 7, true, 93, false, 98],
  ])('P=0 %i%%, P=1 %i%% → %i%% (panic %s) / %i%% (panic %s), normalised total %i%%', (p0, p1, t0, panic0, t1, panic1, nth) => {
    const r = priorityLoadFromPercents([p0, p1]);
    expect(r.load).toEqual([t0, t1]);
    expect(r.panic).toEqual([panic0, panic1]);
    expect(r.normalizedTotalHealth).toBe(nth);
  });

  it('when every level panics, load follows the number of hosts: 5 + 5 → 50/50, 2 + 8 → 20/80', () => {
    const five = priorityLoad([
      { healthyWeight: 1, totalWeight: 5 },
      { healthyWeight: 0, totalWeight: 5 },
    ]);
    expect(five.allPanic).toBe(true);
    expect(five.load).toEqual([50, 50]);
    const r = priorityLoad([
      { healthyWeight: 0, totalWeight: 2 },
      { healthyWeight: 1, totalWeight: 8 },
    ]);
    expect(r.allPanic).toBe(true);
    expect(r.load).toEqual([20, 80]);
  });

  it('with every host unhealthy and panic enabled, traffic still flows (to all hosts); with panic disabled, nowhere (503)', () => {
    const on = priorityLoadFromPercents([0, 0]);
    expect(on.allPanic).toBe(true);
    expect(on.load).toEqual([50, 50]);
    const off = priorityLoadFromPercents([0, 0], { panicThreshold: 0 });
    expect(off.panic).toEqual([false, false]);
    expect(off.load).toEqual([0, 0]);
  });

  it('under the default threshold the 25/25/20 row is total panic: load by hosts, not by health', () => {
    const r = priorityLoadFromPercents([25, 25, 20]);
    expect(r.allPanic).toBe(true);
    expect(r.load).toEqual([34, 33, 33]);
  });
});

describe('rounding', () => {
  it('`envoy` rounding truncates and gives the remainder to the first level with health, as the C++ does', () => {
    expect(priorityLoadFromPercents([25, 25, 20], { panicThreshold: 0, rounding: 'envoy' }).load).toEqual([37, 35, 28]);
    expect(priorityLoadFromPercents([5, 65], { rounding: 'envoy' }).load).toEqual([8, 92]);
    // the two agree whenever the normalised total health is 100
    expect(priorityLoadFromPercents([50, 50, 100], { rounding: 'envoy' }).load).toEqual([70, 30, 0]);
  });

  it('loads always sum to 100 or are all zero', () => {
    for (let a = 0; a <= 100; a += 7) {
      for (let b = 0; b <= 100; b += 11) {
        for (const rounding of ['documented', 'envoy'] as const) {
          const sum = priorityLoadFromPercents([a, b, 13], { rounding }).load.reduce((x, y) => x + y, 0);
          expect(sum).toBe(100);
        }
      }
    }
  });
});

describe('capacity caps', () => {
  it('keeps each level under its cap and moves the overflow to the next level', () => {
    const r = capLoads([1, 0, 0], [0.6, 0.3, 1]);
    expect(r.shares.map((x) => +x.toFixed(12))).toEqual([0.6, 0.3, 0.1]);
    expect(r.overflow).toBe(0);
  });

  it('sends what the last level cannot take back to earlier levels with room', () => {
    const r = capLoads([0.3, 0.7], [1, 0.2]);
    expect(r.shares.map((x) => +x.toFixed(12))).toEqual([0.8, 0.2]);
  });

  it('spreads demand beyond every cap in proportion to capacity, and reports it', () => {
    const r = capLoads([1, 0], [0.3, 0.2]);
    expect(r.overflow).toBeCloseTo(0.5, 12);
    expect(r.shares.map((x) => +x.toFixed(12))).toEqual([0.6, 0.4]);
  });
});
