/**
 * Rollout metrics from a real engine's events (the engine against its port fakes, a real SQLite store):
 * deployments and rollbacks per region with durations, gate verdicts, the canary weight while it runs,
 * rollouts waiting for approval, and an exposition that `promtool check metrics` accepts.
 */
import { spawnSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { recordDecision } from '../src/rollout/approvals.js';
import { createRollout, RolloutEngine, takeOver } from '../src/rollout/engine.js';
import { holderFor } from '../src/rollout/lock.js';
import type { StepContext } from '../src/rollout/ports.js';
import { rolloutSpecFromPlan } from '../src/rollout/rollout-spec.js';
import type { RolloutEventRecord, RolloutRecord, Store } from '../src/store/store.js';
import { RolloutMetrics, registerRolloutMetrics } from '../src/rollout/rollout-metrics.js';
import { fakeClock, FakeDriver, FakeTraffic, ScriptedAnalysis, seed, world } from './support/rollout-kit.js';

const alice = { id: 'alice', via: 'flag' } as const;
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});

type Value = { value: number; labels: Record<string, string | number>; metricName?: string };
async function values(m: { get(): Promise<{ values: Value[] }> }): Promise<Value[]> {
  return (await m.get()).values;
}
async function valueOf(
  m: { get(): Promise<{ values: Value[] }> },
  labels: Record<string, string>,
  metricName?: string,
): Promise<number | undefined> {
  return (await values(m)).find(
    (v) => (metricName === undefined || v.metricName === metricName) && Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x),
  )?.value;
}

/** A rollout of the shop fixture driven by the real engine; the metrics are fed as the server would: every event, in order. */
async function run(opts: { approvals: boolean; script?: (ctx: StepContext) => 'pass' | 'fail' }) {
  const w = await world((f) => {
    if (!opts.approvals) for (const wave of f.rollout?.waves ?? []) delete wave.approvals;
  });
  stores.push(w.store);
  const spec = rolloutSpecFromPlan(w.plan, w.fleet, ['web', 'api'], ['alice', 'planner'], { healthyChecks: 1 });
  const driver = new FakeDriver();
  await seed(driver, w.rev1);
  const clock = fakeClock();
  const registry = new Registry();
  const metrics = registerRolloutMetrics(registry, { revision: w.rev2 });
  const seen: { event: RolloutEventRecord; weights: Value[] }[] = [];
  let fed = 0;
  const feed = async (): Promise<void> => {
    const ro = (await w.store.getRollout('ro-m'))!;
    for (const e of await w.store.listRolloutEvents('ro-m', { afterSeq: fed })) {
      metrics.observe(e, ro);
      fed = e.seq;
    }
  };
  const engine = new RolloutEngine(
    { store: w.store, driver, traffic: new FakeTraffic(), analysis: new ScriptedAnalysis(opts.script), clock },
    {
      pollMs: 100,
      onEvent: (event: RolloutEventRecord, rollout: RolloutRecord) => {
        metrics.observe(event, rollout); // live, as the engine reports them
        fed = event.seq;
        void values(metrics.canaryWeight).then((weights) => seen.push({ event, weights }));
      },
    },
  );
  await createRollout(w.store, spec, holderFor('ro-m', alice), { now: clock.now() });
  await feed(); // the `created` event comes from the log
  const drive = async () => {
    const h = holderFor('ro-m', alice);
    await takeOver(w.store, 'ro-m', h, { now: clock.now() });
    const r = await engine.drive('ro-m', h);
    await feed();
    return r;
  };
  const approve = async () =>
    recordDecision(w.store, {
      rollout: (await w.store.getRollout('ro-m'))!,
      spec,
      wave: 'europe',
      actor: { id: 'bob', via: 'flag' },
      role: 'release-manager',
      decision: 'approve',
      now: clock.now(),
    });
  return { w, metrics, registry, seen, drive, approve, events: () => w.store.listRolloutEvents('ro-m') };
}

describe('rollout metrics', () => {
  it('count deployments per region with their durations, gate verdicts and the wait for approval', async () => {
    const r = await run({ approvals: true });
    expect((await r.drive()).outcome).toBe('awaiting-approval');
    const m = r.metrics;
    // the canary wave (eu-west-1) is promoted; europe waits for approval
    expect(await valueOf(m.deployments, { fleet: 'shop', region: 'eu-west' })).toBe(1);
    expect(await valueOf(m.deployments, { fleet: 'shop', region: 'us-east' })).toBe(0); // every region starts at 0
    expect(await valueOf(m.gateVerdicts, { fleet: 'shop', metric: 'error-rate', verdict: 'pass' })).toBe(3);
    expect(await valueOf(m.stepVerdicts, { fleet: 'shop', wave: 'canary', verdict: 'pass' })).toBe(3);
    const events = await r.events();
    const promoted = events.find((e) => e.type === 'promoted')!;
    expect(await valueOf(m.waitingSince, { fleet: 'shop', rollout: 'ro-m', wave: 'europe', reason: 'approval' })).toBe(
      Date.parse(promoted.at) / 1000,
    );
    // the canary's weight was visible while it ran, and is gone after promotion
    const weights = r.seen.filter((s) => s.event.type === 'weight-set').map((s) => s.weights.map((v) => [v.labels['cluster'], v.value]));
    expect(weights).toEqual([[['eu-west-1', 5]], [['eu-west-1', 25]], [['eu-west-1', 100]]]);
    expect(await values(m.canaryWeight)).toEqual([]);
    // the deployment took from the canary's deploy (created) to its promotion
    const created = events.find((e) => e.type === 'created')!;
    const took = (Date.parse(promoted.at) - Date.parse(created.at)) / 1000;
    expect(took).toBeGreaterThan(0);
    expect(
      await valueOf(m.deploymentDuration, { fleet: 'shop', region: 'eu-west' }, 'meridian_rollout_deployment_duration_seconds_sum'),
    ).toBe(took);

    await r.approve();
    expect((await r.drive()).outcome).toBe('promoted');
    expect(await valueOf(m.deployments, { region: 'eu-west' })).toBe(2);
    expect(await valueOf(m.deployments, { region: 'eu-central' })).toBe(1);
    expect(await valueOf(m.deployments, { region: 'us-east' })).toBe(1);
    expect(await valueOf(m.deploymentDuration, { region: 'eu-west' }, 'meridian_rollout_deployment_duration_seconds_count')).toBe(2);
    expect(await values(m.waitingSince)).toEqual([]);
    expect(await valueOf(m.finished, { fleet: 'shop', kind: 'rollout', outcome: 'promoted' })).toBe(1);
    expect(await valueOf(m.started, { fleet: 'shop', kind: 'rollout' })).toBe(1);
    expect(await valueOf(m.rollbacks, { region: 'eu-west' })).toBe(0);
    expect(m.active).toBe(0);
  });

  it('count rollbacks per region when a gate fails, with the failing verdict', async () => {
    const r = await run({ approvals: false, script: (ctx) => (ctx.wave.name === 'europe' && ctx.step.index === 1 ? 'fail' : 'pass') });
    expect((await r.drive()).outcome).toBe('rolled-back');
    const m = r.metrics;
    expect(await valueOf(m.rollbacks, { region: 'eu-west' })).toBe(1); // eu-west-2 (eu-west-1's canary wave stays)
    expect(await valueOf(m.rollbacks, { region: 'eu-central' })).toBe(1);
    expect(await valueOf(m.rollbacks, { region: 'us-east' })).toBe(0);
    expect(await valueOf(m.deployments, { region: 'eu-west' })).toBe(1);
    expect(await valueOf(m.gateVerdicts, { metric: 'error-rate', verdict: 'fail' })).toBe(1);
    expect(await valueOf(m.stepVerdicts, { wave: 'europe', verdict: 'fail' })).toBe(1);
    expect(await valueOf(m.finished, { kind: 'rollout', outcome: 'rolled-back' })).toBe(1);
    const events = await r.events();
    const decided = events.find((e) => (e.data as { to?: { phase?: string } }).to?.phase === 'rollback')!;
    const last = events.filter((e) => e.type === 'cluster-rolled-back').at(-1)!;
    expect(await valueOf(m.rollbackDuration, { region: 'eu-central' }, 'meridian_rollout_rollback_duration_seconds_count')).toBe(1);
    const sum =
      ((await valueOf(m.rollbackDuration, { region: 'eu-central' }, 'meridian_rollout_rollback_duration_seconds_sum')) ?? 0) +
      ((await valueOf(m.rollbackDuration, { region: 'eu-west' }, 'meridian_rollout_rollback_duration_seconds_sum')) ?? 0);
    const expected = events
      .filter((e) => e.type === 'cluster-rolled-back')
      .reduce((s, e) => s + (Date.parse(e.at) - Date.parse(decided.at)) / 1000, 0);
    expect(last.seq).toBeGreaterThan(decided.seq);
    expect(sum).toBeCloseTo(expected, 6);
    expect(await values(m.canaryWeight)).toEqual([]);
  });

  it('expose names and labels that promtool check metrics accepts', async () => {
    const r = await run({ approvals: false, script: (ctx) => (ctx.wave.name === 'rest' ? 'fail' : 'pass') });
    await r.drive();
    const text = await r.registry.metrics();
    for (const name of [
      'meridian_rollout_deployments_total',
      'meridian_rollout_rollbacks_total',
      'meridian_rollout_deployment_duration_seconds_bucket',
      'meridian_rollout_rollback_duration_seconds_bucket',
      'meridian_rollout_gate_verdicts_total',
      'meridian_rollouts_finished_total',
    ]) {
      expect(text).toContain(name);
    }
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (lint.error) throw new Error(`promtool is not installed (apt-get install prometheus): ${lint.error.message}`);
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
    expect(lint.status).toBe(0);
  });

  it('ignore events they do not know and label unknown clusters as such', async () => {
    const registry = new Registry();
    const m = new RolloutMetrics({ registry, regionOf: (c) => (c === 'x-1' ? 'x' : undefined) });
    const ro = { fleet: 'f', kind: 'rollout' as const, spec: null, createdAt: '2026-01-01T00:00:00.000Z' };
    const ev = (seq: number, type: string, data: object): RolloutEventRecord => ({
      rolloutId: 'r',
      seq,
      at: `2026-01-01T00:0${seq}:00.000Z`,
      type,
      actor: 'a',
      data: data as RolloutEventRecord['data'],
    });
    m.observe(ev(1, 'something-new', { to: { phase: 'warp', wave: 0 } }), ro);
    m.observe(ev(2, 'weight-set', { weight: 10, clusters: ['x-1', 'y-1'], to: { phase: 'pause', wave: 0 } }), ro);
    expect((await values(m.canaryWeight)).map((v) => [v.labels['region'], v.value])).toEqual([
      ['x', 10],
      ['unknown', 10],
    ]);
    m.observe(ev(3, 'promoted', { clusters: ['x-1', 'y-1'], to: { phase: 'done', wave: 0, outcome: 'promoted' } }), ro);
    expect(await valueOf(m.deployments, { region: 'x' })).toBe(1);
    expect(await valueOf(m.deploymentDuration, { region: 'x' }, 'meridian_rollout_deployment_duration_seconds_sum')).toBe(180); // from createdAt
    expect(await values(m.canaryWeight)).toEqual([]);
  });
});
