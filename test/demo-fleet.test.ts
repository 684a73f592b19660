/** The demo's overlay: a copy of the example fleet with its rollout's timings capped, nothing else changed. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { applyDemoOverlay, copyFleet, DEMO_TIMINGS } from '../src/demo/demo-fleet.js';

interface RolloutDoc {
  readonly rollout: {
    readonly analysis: { readonly warmup?: string; readonly interval?: string; readonly minSamples?: number };
    readonly waves: readonly { readonly name: string; readonly steps?: unknown[]; readonly bake?: string }[];
  };
}
const read = (dir: string) => parse(readFileSync(join(dir, 'rollout.yaml'), 'utf8')) as RolloutDoc;
const services = (dir: string) =>
  (parse(readFileSync(join(dir, 'services.yaml'), 'utf8')) as { services: Record<string, { config?: Record<string, unknown> }> }).services;

const work = mkdtempSync(join(os.tmpdir(), 'meridian-demo-fleet-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the demo overlay', () => {
  it("caps pauses, bakes, the analysis interval and the canary's warm-up, raises light steps, and keeps the waves", () => {
    const dir = join(work, 'shop');
    copyFleet(join(import.meta.dirname, '..', 'examples', 'shop'), dir);
    const before = read(dir);
    expect(before.rollout.analysis.warmup).toBe('10s');
    applyDemoOverlay(dir);
    const { rollout } = read(dir);
    expect(rollout.analysis.warmup).toBe(DEMO_TIMINGS.warmup);
    expect(rollout.analysis.interval).toBe(DEMO_TIMINGS.interval);
    expect(rollout.analysis.minSamples).toBe(DEMO_TIMINGS.minSamples);
    expect(rollout.waves.map((w) => w.name)).toEqual(before.rollout.waves.map((w) => w.name));
    expect(rollout.waves[0]?.steps).toEqual([
      { weight: 25, pause: DEMO_TIMINGS.pause },
      { weight: 25, pause: DEMO_TIMINGS.pause },
      { weight: 100 },
    ]);
    expect(rollout.waves[1]?.bake).toBe(DEMO_TIMINGS.bake);
  });

  it("slows the services' flag polling to DEMO_TIMINGS.flagsPoll, and changes nothing else of them", () => {
    const dir = join(work, 'shop-flags');
    copyFleet(join(import.meta.dirname, '..', 'examples', 'shop'), dir);
    const before = services(dir);
    expect(Object.values(before).map((s) => s.config?.['FLAGS_POLL_INTERVAL'])).toEqual(Object.values(before).map(() => undefined));
    applyDemoOverlay(dir);
    const after = services(dir);
    for (const [name, svc] of Object.entries(after)) {
      expect(svc.config?.['FLAGS_POLL_INTERVAL']).toBe(DEMO_TIMINGS.flagsPoll);
      const { FLAGS_POLL_INTERVAL: _added, ...rest } = svc.config ?? {};
      expect({ ...svc, config: rest }).toEqual({ ...before[name], config: before[name]?.config ?? {} });
    }
  });
});
