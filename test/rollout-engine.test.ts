/**
 * The rollout engine in-process: against fakes of its ports (every path, with a clock that does not
 * sleep), and once against a real LocalTarget and Router (real processes, real traffic weights).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { makePlan } from '../src/plan/plan.js';
import { recordDecision } from '../src/rollout/approvals.js';
import { createRollout, type DriveResult, type EngineOptions, requestControl, RolloutEngine, takeOver } from '../src/rollout/engine.js';
import { holderFor } from '../src/rollout/lock.js';
import type { Analysis, StepContext } from '../src/rollout/ports.js';
import { RouterCanaryWeights } from '../src/router/router-canary-weights.js';
import { rolloutSpecFromPlan, type RolloutSpec } from '../src/rollout/rollout-spec.js';
import { HealthAnalysis } from '../src/rollout/health-analysis.js';
import { loadFleet } from '../src/spec/load.js';
import { render } from '../src/render/render.js';
import { Router } from '../src/router/router.js';
import pg from 'pg';
import { openPostgresStore } from '../src/store/postgres-store.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { JsonValue, Store } from '../src/store/store.js';
import { LocalTarget } from '../src/targets/local/local-target.js';
import { startClusters } from '../src/targets/local/local-fleet.js';
import { fakeClock, FakeDriver, FakeTraffic, ScriptedAnalysis, seed, world, type World } from './support/rollout-kit.js';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';
import { TRUST_LOOPBACK } from './support/router-kit.js';

const alice = { id: 'alice', via: 'flag' } as const;
const bob = { id: 'bob', via: 'flag' } as const;
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});

interface Run {
  readonly w: World;
  readonly spec: RolloutSpec;
  readonly driver: FakeDriver;
  readonly traffic: FakeTraffic;
  readonly analysis: ScriptedAnalysis;
  readonly clock: ReturnType<typeof fakeClock>;
  readonly engine: RolloutEngine;
  readonly id: string;
  drive(opts?: { actor?: { id: string; via?: string } }): Promise<DriveResult>;
  events(): Promise<string[]>;
}

async function setup(
  opts: {
    onFailure?: 'pause' | 'rollback-wave' | 'rollback-all';
    script?: (ctx: StepContext) => 'running' | 'pass' | 'fail' | 'inconclusive' | 'no-data' | 'error';
    approvals?: boolean;
    engine?: EngineOptions;
    open?: () => Promise<Store>;
    interval?: string;
    warmup?: string;
  } = {},
): Promise<Run> {
  const w = await world((f) => {
    if (f.rollout) f.rollout.onFailure = opts.onFailure ?? 'rollback-wave';
    if (f.rollout?.analysis && opts.interval) f.rollout.analysis.interval = opts.interval;
    if (f.rollout?.analysis && opts.warmup) f.rollout.analysis.warmup = opts.warmup;
    if (opts.approvals === false) for (const wave of f.rollout?.waves ?? []) delete wave.approvals;
  }, opts.open);
  stores.push(w.store);
  const spec = rolloutSpecFromPlan(w.plan, w.fleet, ['web', 'api'], ['alice', 'planner'], { healthyChecks: 2 });
  const driver = new FakeDriver();
  await seed(driver, w.rev1);
  driver.calls.length = 0;
  const traffic = new FakeTraffic();
  const analysis = new ScriptedAnalysis(opts.script);
  const clock = fakeClock();
  const engine = new RolloutEngine({ store: w.store, driver, traffic, analysis, clock }, { pollMs: 100, ...opts.engine });
  const holder = holderFor('ro-test', alice);
  await createRollout(w.store, spec, holder, { now: clock.now() });
  return {
    w,
    spec,
    driver,
    traffic,
    analysis,
    clock,
    engine,
    id: 'ro-test',
    drive: async (o = {}) => {
      const h = holderFor('ro-test', o.actor ?? alice);
      await takeOver(w.store, 'ro-test', h, { now: clock.now() });
      return engine.drive('ro-test', h);
    },
    events: async () =>
      (await w.store.listRolloutEvents('ro-test')).map((e) => {
        const to = (e.data as { to: Record<string, unknown> }).to;
        return `${e.type}>${String(to['phase'])}:${String(to['wave'])}${to['batch'] !== undefined ? `.${String(to['batch'])}` : ''}${to['step'] !== undefined ? `.${String(to['step'])}` : ''}`;
      }),
  };
}

const stableRevs = (r: Run, rev: string): Record<string, Record<string, string>> =>
  Object.fromEntries(
    Object.keys(r.w.rev2.clusters)
      .map((c) => [c, r.driver.running(c)])
      .filter(([, v]) => Object.values(v as object).some((x) => x === rev.slice(0, 8))),
  );

describe('rollout engine with port fakes', () => {
  it('promotes a good version through every wave, approvals included, and records every cluster healthy at the new revision', async () => {
    const r = await setup();
    const first = await r.drive();
    expect(first.outcome).toBe('awaiting-approval');
    expect(first.rollout.state).toBe('awaiting-approval');
    expect(r.driver.running('eu-west-1')).toEqual({ web: r.w.rev2.id.slice(0, 8), api: r.w.rev2.id.slice(0, 8) });
    expect(r.driver.running('eu-west-2')).toEqual({ web: r.w.rev1.id.slice(0, 8), api: r.w.rev1.id.slice(0, 8) }); // wave 2 untouched
    const rollout = (await r.w.store.getRollout(r.id))!;
    await recordDecision(r.w.store, {
      rollout,
      spec: r.spec,
      wave: 'europe',
      actor: bob,
      role: 'release-manager',
      decision: 'approve',
      now: r.clock.now(),
    });
    const done = await r.drive();
    expect(done.outcome).toBe('promoted');
    expect(done.rollout).toMatchObject({ state: 'promoted' });
    for (const c of Object.keys(r.w.rev2.clusters)) {
      expect(r.driver.running(c, 'stable')).toEqual(
        Object.fromEntries(Object.keys(r.w.rev2.clusters[c]!.services).map((s) => [s, r.w.rev2.id.slice(0, 8)])),
      );
      expect(r.driver.running(c, 'canary')).toEqual({});
    }
    expect(r.traffic.weights.size).toBe(0); // weights back to 0 everywhere
    // canary wave: steps 5, 25, 100 on web only (api does not change)
    expect(r.traffic.calls.filter((c) => c.includes('eu-west-1'))).toEqual([
      'canary web@eu-west-1 5% 2.5.0',
      'canary web@eu-west-1 25% 2.5.0',
      'canary web@eu-west-1 100% 2.5.0',
      'clear web@eu-west-1',
    ]);
    const states = await r.w.store.clusterStates();
    for (const c of Object.keys(r.w.rev2.clusters)) expect(states[c]).toMatchObject({ revisionId: r.w.rev2.id, status: 'healthy' });
    expect(await r.events()).toEqual([
      'created>deploy:0.0',
      'canary-ready>weight:0.0.0',
      'weight-set>pause:0.0.0',
      'timer-elapsed>analysis:0.0.0',
      'verdict>weight:0.0.1',
      'weight-set>pause:0.0.1',
      'timer-elapsed>analysis:0.0.1',
      'verdict>weight:0.0.2',
      'weight-set>pause:0.0.2',
      'timer-elapsed>analysis:0.0.2',
      'verdict>promote:0.0',
      'promoted>approval:1',
      'approvals-met>deploy:1.0',
      'canary-ready>weight:1.0.0',
      'weight-set>pause:1.0.0',
      'timer-elapsed>analysis:1.0.0',
      'verdict>weight:1.0.1',
      'weight-set>pause:1.0.1',
      'timer-elapsed>analysis:1.0.1',
      'verdict>weight:1.0.2',
      'weight-set>pause:1.0.2',
      'timer-elapsed>analysis:1.0.2',
      'verdict>promote:1.0',
      'promoted>deploy:2.0',
      'canary-ready>weight:2.0.0',
      'weight-set>pause:2.0.0',
      'timer-elapsed>analysis:2.0.0',
      'verdict>weight:2.0.1',
      'weight-set>pause:2.0.1',
      'timer-elapsed>analysis:2.0.1',
      'verdict>weight:2.0.2',
      'weight-set>pause:2.0.2',
      'timer-elapsed>analysis:2.0.2',
      'verdict>bake:2.0',
      'timer-elapsed>promote:2.0',
      'promoted>done:2',
    ]);
    expect(await r.w.store.listLocks()).toEqual([]);
    const audit = (await r.w.store.listAudit()).map((e) => e.action);
    expect(audit).toContain('rollout.start');
    expect(audit).toContain('approval.approve');
    expect(audit.filter((a) => a === 'rollout.verdict')).toHaveLength(9);
    expect(await r.w.store.verifyAudit()).toMatchObject({ ok: true });
  });

  it('rolls back only the failing wave when its analysis fails; later waves are never touched', async () => {
    const r = await setup({ approvals: false, script: (ctx) => (ctx.wave.name === 'europe' && ctx.step.index === 1 ? 'fail' : 'pass') });
    const res = await r.drive();
    expect(res.outcome).toBe('rolled-back');
    expect(res.reason).toMatch(/wave europe, step 2: the analysis says fail/);
    const v1 = r.w.rev1.id.slice(0, 8);
    const v2 = r.w.rev2.id.slice(0, 8);
    expect(r.driver.running('eu-west-1')).toEqual({ web: v2, api: v2 }); // the canary wave stays promoted
    expect(r.driver.running('eu-west-2')).toEqual({ web: v1, api: v1 });
    expect(r.driver.running('eu-central-1')).toEqual({ web: v1, api: v1 });
    expect(r.driver.running('eu-west-2', 'canary')).toEqual({});
    expect(r.driver.calls.filter((c) => c.includes('us-east-1'))).toEqual([]); // wave rest: never touched
    expect(r.traffic.weights.size).toBe(0);
    const states = await r.w.store.clusterStates();
    expect(states['eu-central-1']).toMatchObject({ revisionId: r.w.rev1.id, status: 'healthy' });
    expect(states['eu-west-1']).toMatchObject({ revisionId: r.w.rev2.id });
    expect((await r.events()).slice(-3)).toEqual(['verdict>rollback:1', 'cluster-rolled-back>rollback:1', 'cluster-rolled-back>done:1']);
  });

  it('with rollback-all, a failure in a later wave returns the earlier waves too', async () => {
    const r = await setup({ approvals: false, onFailure: 'rollback-all', script: (ctx) => (ctx.wave.name === 'rest' ? 'fail' : 'pass') });
    const res = await r.drive();
    expect(res.outcome).toBe('rolled-back');
    const v1 = r.w.rev1.id.slice(0, 8);
    for (const c of Object.keys(r.w.rev1.clusters)) {
      expect(
        Object.values(r.driver.running(c)).every((v) => v === v1),
        c,
      ).toBe(true);
      expect(r.driver.running(c, 'canary')).toEqual({});
    }
    const rolled = (await r.w.store.listRolloutEvents(r.id))
      .filter((e) => e.type === 'cluster-rolled-back')
      .map((e) => (e.data as { cluster: string }).cluster);
    expect(rolled).toEqual(['us-east-1', 'eu-west-2', 'eu-central-1', 'eu-west-1']); // the last changed first
    expect(Object.values(await r.w.store.clusterStates()).every((s) => s.revisionId === r.w.rev1.id)).toBe(true);
  });

  it('rolls back when the canary never becomes healthy (the new revision is judged, never the old one)', async () => {
    const r = await setup({ approvals: false, engine: { healthTimeoutMs: 5_000 } });
    r.driver.sick.add(`eu-west-1/web/canary@${r.w.rev2.id}`);
    const res = await r.drive();
    expect(res.outcome).toBe('rolled-back');
    expect(res.reason).toMatch(/eu-west-1\/web \(canary\) runs .* 0\/1 ready.*health check failed/);
    expect(r.analysis.asked).toEqual([]);
  });

  it('with onFailure pause, a failed gate parks the rollout; resume judges the step again and carries on', async () => {
    let failing = true;
    const r = await setup({
      approvals: false,
      onFailure: 'pause',
      script: (ctx) => (failing && ctx.wave.name === 'canary' && ctx.step.index === 1 ? 'fail' : 'pass'),
    });
    const res = await r.drive();
    expect(res.outcome).toBe('paused');
    expect(res.reason).toMatch(/failed: wave canary, step 2/);
    expect(await r.w.store.listLocks()).toEqual(expect.arrayContaining([expect.objectContaining({ rolloutId: r.id, pid: null })]));
    failing = false;
    await requestControl(r.w.store, r.id, { action: 'resume', actor: bob, now: r.clock.now() });
    const done = await r.drive({ actor: bob });
    expect(done.outcome).toBe('promoted');
    const ev = await r.events();
    expect(ev).toContain('verdict>paused:0');
    // resumed, the step starts again: its weight is set again (a new window) before it is judged
    expect(ev).toContain('control>weight:0.0.1');
  });

  it('pauses an inconclusive step for an operator whatever onFailure says; resumed, it measures the step again', async () => {
    let verdict: 'no-data' | 'pass' = 'no-data';
    const r = await setup({ approvals: false, script: (ctx) => (ctx.wave.name === 'canary' && ctx.step.index === 0 ? verdict : 'pass') });
    const res = await r.drive();
    expect(res.outcome).toBe('paused');
    expect(res.reason).toMatch(/wave canary, step 1: the analysis says no-data/);
    expect(r.analysis.asked.map((a) => a.attempt)).toEqual([0]);
    expect(r.driver.running('eu-west-1', 'canary')).not.toEqual({}); // nothing rolled back
    verdict = 'pass';
    await requestControl(r.w.store, r.id, { action: 'resume', actor: bob, now: r.clock.now() });
    expect((await r.drive({ actor: bob })).outcome).toBe('promoted');
  });

  it('measures a step every analysis interval with the history of its earlier measurements, the last one final', async () => {
    const r = await setup({
      approvals: false,
      interval: '10ms',
      script: () => 'running',
    });
    // a scripted judge that keeps saying "running" is asked again every interval until the step's end, and
    // then (as a judge short of samples does) on past it, every look final, until twice the pause has passed
    const res = await r.drive();
    expect(res.outcome).toBe('paused');
    expect(res.reason).toMatch(/still running at the step's end/);
    const asked = r.analysis.asked;
    expect(asked.map((a) => a.history.length)).toEqual(asked.map((_, i) => i));
    expect(asked.filter((a) => !a.final).length).toBe(4); // a 50 ms step, looked at every 10 ms
    const last = asked.filter((a) => a.final);
    expect(last[0]?.sampleWait).toEqual({ end: last[0]?.now, until: (last[0]?.now ?? 0) + 100, extending: false });
    expect(last.slice(1).every((a) => a.sampleWait?.extending === true)).toBe(true);
    expect(last.length).toBe(11); // at the end, then every 10 ms for 100 ms
    expect(last.at(-1)?.now).toBe(last[0]?.sampleWait?.until);
    expect(new Set(asked.map((a) => a.since)).size).toBe(1);
  });

  it("lets a new canary warm up before its first step's window and pause start (rollout.analysis.warmup), and only then", async () => {
    const r = await setup({ approvals: false, interval: '10ms', warmup: '30ms' });
    expect((await r.drive()).outcome).toBe('promoted');
    const events = await r.w.store.listRolloutEvents(r.id);
    const at = (i: number) => Date.parse(events[i]?.at ?? '');
    const firstSteps = events.flatMap((e, i) => (e.type === 'canary-ready' ? [i] : []));
    expect(firstSteps.length).toBeGreaterThan(0);
    for (const i of firstSteps) {
      const set = events.findIndex((e, j) => j > i && e.type === 'weight-set');
      expect((events[set]?.data as { warmupMs?: number }).warmupMs).toBe(30);
      expect(at(set) - at(i)).toBe(30); // the canary took traffic for 30 ms before the window began
    }
    const warmed = events.filter((e) => e.type === 'weight-set' && (e.data as { warmupMs?: number }).warmupMs !== undefined);
    const sets = events.filter((e) => e.type === 'weight-set');
    expect(warmed.length).toBe(firstSteps.length); // later steps of a wave run on a canary already warm
    expect(sets.length).toBeGreaterThan(warmed.length);
    // every step's window starts when its weight-set was recorded, so the warm-up is outside the first one
    const sinces = new Set(r.analysis.asked.map((a) => a.since));
    for (const i of firstSteps) {
      const set = events.findIndex((e, j) => j > i && e.type === 'weight-set');
      expect(sinces.has(at(set))).toBe(true);
    }
  });

  it('persists what the analysis marks when a step begins: a driver that dies mid-step is replaced by one that judges the same window', async () => {
    const r = await setup({ approvals: false, interval: '10ms' });
    let begun = 0;
    const marking = (marks: JsonValue[]): Analysis => ({
      begin: () => Promise.resolve({ step: ++begun }),
      judge: (ctx) => {
        marks.push(ctx.mark);
        return Promise.resolve({ outcome: ctx.final ? 'pass' : 'running', metrics: [] });
      },
    });
    const before: JsonValue[] = [];
    let verdicts = 0;
    const dying = new RolloutEngine(
      { store: r.w.store, driver: r.driver, traffic: r.traffic, analysis: marking(before), clock: r.clock },
      {
        pollMs: 100,
        onEvent: (e) => {
          if (e.type === 'verdict' && ++verdicts === 2) throw new Error('the driver died');
        },
      },
    );
    const take = async () => {
      const h = holderFor(r.id, alice);
      await takeOver(r.w.store, r.id, h, { now: r.clock.now() });
      return h;
    };
    await expect(dying.drive(r.id, await take())).rejects.toThrow('the driver died');
    expect(before).toEqual([{ step: 1 }, { step: 1 }]);
    const after: JsonValue[] = [];
    const next = new RolloutEngine(
      { store: r.w.store, driver: r.driver, traffic: r.traffic, analysis: marking(after), clock: r.clock },
      { pollMs: 100 },
    );
    expect((await next.drive(r.id, await take())).outcome).toBe('promoted');
    // the rest of the first step is judged against the mark the dead driver recorded; later steps get their own
    expect(after.slice(0, 3)).toEqual([{ step: 1 }, { step: 1 }, { step: 1 }]);
    expect(after.at(-1)).toEqual({ step: begun });
  });

  it('pause, resume, promote (an override with its reason) and abort from another process', async () => {
    const r = await setup({ approvals: false });
    await requestControl(r.w.store, r.id, { action: 'pause', actor: bob, reason: 'looks odd', now: r.clock.now() });
    let res = await r.drive();
    expect(res.outcome).toBe('paused');
    expect(res.reason).toBe('paused by bob: looks odd');
    await expect(requestControl(r.w.store, r.id, { action: 'pause', actor: bob, now: r.clock.now() })).rejects.toThrow(
      /only a running rollout/,
    );
    await expect(requestControl(r.w.store, r.id, { action: 'promote', actor: bob, now: r.clock.now() })).rejects.toThrow(/needs a reason/);
    await requestControl(r.w.store, r.id, { action: 'promote', actor: bob, reason: 'hotfix, canary verified by hand', now: r.clock.now() });
    // the override skips the rest of wave canary; wave europe then runs normally until we abort it
    r.analysis.asked.length = 0;
    const drive = r.drive();
    res = await drive;
    expect(res.outcome).toBe('promoted');
    expect(r.analysis.asked.every((a) => a.wave.name !== 'canary')).toBe(true);
    const audit = await r.w.store.listAudit();
    expect(audit.find((e) => e.action === 'rollout.override')).toMatchObject({
      actor: { id: 'bob' },
      reason: 'hotfix, canary verified by hand',
    });
  });

  it('abort rolls back everything touched so far', async () => {
    const r = await setup({ approvals: true });
    expect((await r.drive()).outcome).toBe('awaiting-approval');
    await requestControl(r.w.store, r.id, { action: 'abort', actor: bob, reason: 'bad idea', now: r.clock.now() });
    const res = await r.drive({ actor: bob });
    expect(res.outcome).toBe('rolled-back');
    expect(res.reason).toBe('aborted by bob: bad idea');
    expect(r.driver.running('eu-west-1')).toEqual({ web: r.w.rev1.id.slice(0, 8), api: r.w.rev1.id.slice(0, 8) });
  });
});

describe('on PostgreSQL', () => {
  /** Runs `fn` with stores on a schema of its own, dropped afterwards. */
  async function inPgSchema(prefix: string, fn: (open: () => Promise<Store>) => Promise<void>): Promise<void> {
    const url = process.env['MERIDIAN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
    try {
      await fn(() => openPostgresStore(url, { schema }));
    } finally {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  }

  it('runs the same rollout, parked at its approval gate and resumed, with the same transitions', async () => {
    await inPgSchema('mrd_rollout', async (open) => {
      const r = await setup({
        open,
        onFailure: 'rollback-all',
        script: (ctx) => (ctx.wave.name === 'rest' ? 'fail' : 'pass'),
      });
      expect((await r.drive()).outcome).toBe('awaiting-approval');
      const rollout = (await r.w.store.getRollout(r.id))!;
      await recordDecision(r.w.store, {
        rollout,
        spec: r.spec,
        wave: 'europe',
        actor: bob,
        role: 'release-manager',
        decision: 'approve',
        now: r.clock.now(),
      });
      const res = await r.drive({ actor: bob });
      expect(res.outcome).toBe('rolled-back');
      expect((await r.events()).filter((e) => e.startsWith('cluster-rolled-back'))).toHaveLength(4);
      expect(Object.values(await r.w.store.clusterStates()).every((c) => c.revisionId === r.w.rev1.id)).toBe(true);
      expect(await r.w.store.listLocks()).toEqual([]);
      expect(await r.w.store.verifyAudit()).toMatchObject({ ok: true });
    });
  });

  it('audits a refused self-approval and a refused concurrent rollout, each in its own transaction; the chain verifies', async () => {
    await inPgSchema('mrd_refused', async (open) => {
      const r = await setup({ open });
      expect((await r.drive()).outcome).toBe('awaiting-approval');
      const rollout = (await r.w.store.getRollout(r.id))!;
      const own = recordDecision(r.w.store, {
        rollout,
        spec: r.spec,
        wave: 'europe',
        actor: alice,
        decision: 'approve',
        now: r.clock.now(),
      });
      await expect(own).rejects.toMatchObject({ code: 'MERIDIAN_E_APPROVAL_AUTHOR' });
      const second = createRollout(r.w.store, r.spec, { ...holderFor('ro-second', bob), host: 'ci-7', pid: 4242 }, { now: r.clock.now() });
      await expect(second).rejects.toMatchObject({
        code: 'MERIDIAN_E_ROLLOUT_LOCKED',
        message: expect.stringMatching(/^service (api|web) is held by rollout ro-test \(started by alice, awaiting-approval, /),
      });
      const audit = await r.w.store.listAudit({ newestFirst: true, limit: 2 });
      expect(audit.map((e) => e.action)).toEqual(['rollout.lock.refused', 'approval.refused']);
      expect(audit[1]).toMatchObject({
        actor: alice,
        subject: 'ro-test',
        data: { code: 'MERIDIAN_E_APPROVAL_AUTHOR', wave: 'europe', decision: 'approve' },
      });
      expect(audit[0]).toMatchObject({
        actor: bob,
        subject: 'ro-second',
        data: {
          code: 'MERIDIAN_E_ROLLOUT_LOCKED',
          attempt: 'start',
          host: 'ci-7',
          pid: 4242,
          holder: { rollout: 'ro-test', actor: 'alice' },
        },
      });
      expect(await r.w.store.getRollout('ro-second')).toBeUndefined();
      expect(await r.w.store.listApprovals(r.spec.planHash)).toEqual([]);
      expect(await r.w.store.verifyAudit()).toMatchObject({ ok: true });
    });
  });
});

describe('locks', () => {
  it('lets one of two rollouts of the same service start when both try at once; the other is told who holds it', async () => {
    const w = await world();
    stores.push(w.store);
    const other = await openSqliteStore(w.file);
    stores.push(other);
    const spec = rolloutSpecFromPlan(w.plan, w.fleet, ['web', 'api'], ['alice'], {});
    const start = (s: Store, id: string, who: { id: string }) =>
      createRollout(s, spec, { ...holderFor(id, who), pid: id === 'ro-a' ? 111 : 222, host: 'ci-runner' }, { now: Date.now() }).then(
        () => 'started',
        (err: Error & { code?: string }) => `${err.code}: ${err.message}`,
      );
    const [a, b] = await Promise.all([start(w.store, 'ro-a', alice), start(other, 'ro-b', bob)]);
    const outcomes = [a, b].sort();
    expect(outcomes[1]).toBe('started');
    expect(outcomes[0]).toMatch(
      /^MERIDIAN_E_ROLLOUT_LOCKED: service (api|web) is held by rollout ro-[ab] \(started by (alice|bob), running, holding it since \S+; driven by pid (111|222) on host ci-runner/,
    );
    expect(await w.store.listRollouts()).toHaveLength(1);
    // the refusal is audited, in a transaction of its own (the refused one was rolled back), naming the holder
    const [winner] = await w.store.listRollouts();
    const refused = (await w.store.listAudit()).filter((e) => e.action === 'rollout.lock.refused');
    expect(refused).toHaveLength(1);
    const loser = winner?.id === 'ro-a' ? { id: 'ro-b', actor: 'bob', pid: 222 } : { id: 'ro-a', actor: 'alice', pid: 111 };
    expect(refused[0]).toMatchObject({
      actor: { id: loser.actor, via: 'flag' },
      subject: loser.id,
      reason: outcomes[0]?.replace(/^MERIDIAN_E_ROLLOUT_LOCKED: /, ''),
      data: {
        code: 'MERIDIAN_E_ROLLOUT_LOCKED',
        attempt: 'start',
        fleet: spec.fleet,
        host: 'ci-runner',
        pid: loser.pid,
        holder: { rollout: winner?.id, actor: winner?.author, state: 'running', host: 'ci-runner', pid: loser.pid === 111 ? 222 : 111 },
      },
    });
    // a second driver for the winner (resume while its live driver runs) is refused and audited too
    const carol = { id: 'carol', via: 'flag' };
    const resume = takeOver(
      w.store,
      winner?.id ?? '',
      { ...holderFor(winner?.id ?? '', carol), host: 'ci-runner', pid: 333 },
      { now: Date.now() },
    );
    await expect(resume).rejects.toMatchObject({
      code: 'MERIDIAN_E_ROLLOUT_LOCKED',
      message: expect.stringMatching(/is already being driven/),
    });
    const [last] = await w.store.listAudit({ newestFirst: true, limit: 1 });
    expect(last).toMatchObject({
      action: 'rollout.lock.refused',
      actor: carol,
      subject: winner?.id,
      data: { attempt: 'resume', pid: 333, holder: { rollout: winner?.id, pid: loser.pid === 111 ? 222 : 111 } },
    });
    expect(await w.store.verifyAudit()).toMatchObject({ ok: true });
  });
});

describe('approvals', () => {
  it('waits for N approvals from the roles, refuses the author, ignores expired ones and those of a changed plan', async () => {
    const r = await setup();
    expect((await r.drive()).outcome).toBe('awaiting-approval');
    const rollout = (await r.w.store.getRollout(r.id))!;
    const decide = (actor: { id: string }, extra: Partial<Parameters<typeof recordDecision>[1]> = {}) =>
      recordDecision(r.w.store, {
        rollout,
        spec: r.spec,
        wave: 'europe',
        actor,
        role: 'release-manager',
        decision: 'approve',
        now: r.clock.now(),
        ...extra,
      });
    const seq = (await r.w.store.listAudit()).length;
    await expect(decide(alice)).rejects.toMatchObject({
      code: 'MERIDIAN_E_APPROVAL_AUTHOR',
      message: 'alice is an author of this change (started rollout ro-test or recorded its revision) and cannot approve it',
    });
    await expect(decide({ id: 'planner' })).rejects.toMatchObject({ code: 'MERIDIAN_E_APPROVAL_AUTHOR' });
    await expect(decide(bob, { role: 'intern' })).rejects.toMatchObject({ code: 'MERIDIAN_E_APPROVAL_ROLE' });
    await expect(decide(bob, { wave: 'canary' })).rejects.toMatchObject({ code: 'MERIDIAN_E_APPROVAL_NOT_REQUIRED' });
    await expect(decide(bob, { wave: 'mars' })).rejects.toMatchObject({ code: 'MERIDIAN_E_APPROVAL_UNKNOWN_WAVE' });
    // each refusal is audited with who, the wave, the code and the message; nothing is approved
    const refusals = await r.w.store.listAudit({ afterSeq: seq });
    expect(refusals.map((e) => `${e.action} ${e.actor.id} ${e.subject} ${String((e.data as Record<string, JsonValue>)['code'])}`)).toEqual([
      'approval.refused alice ro-test MERIDIAN_E_APPROVAL_AUTHOR',
      'approval.refused planner ro-test MERIDIAN_E_APPROVAL_AUTHOR',
      'approval.refused bob ro-test MERIDIAN_E_APPROVAL_ROLE',
      'approval.refused bob ro-test MERIDIAN_E_APPROVAL_NOT_REQUIRED',
      'approval.refused bob ro-test MERIDIAN_E_APPROVAL_UNKNOWN_WAVE',
    ]);
    expect(refusals[0]).toMatchObject({
      actor: { id: 'alice', via: 'flag' },
      reason: 'alice is an author of this change (started rollout ro-test or recorded its revision) and cannot approve it',
      data: { code: 'MERIDIAN_E_APPROVAL_AUTHOR', decision: 'approve', wave: 'europe', role: 'release-manager', planHash: r.spec.planHash },
    });
    expect(refusals[4]?.data).toMatchObject({ wave: 'mars' });
    expect(await r.w.store.listApprovals(r.spec.planHash)).toEqual([]);
    expect(await r.w.store.verifyAudit()).toMatchObject({ ok: true, count: seq + 5 });
    // an approval that expires before the gate looks
    await decide(bob, { ttlMs: 1000 });
    r.clock.advance(5000);
    expect((await r.drive()).outcome).toBe('awaiting-approval');
    // an approval for another plan (the plan changed) does not count
    await r.w.store.addApproval({
      planHash: 'f'.repeat(64),
      rolloutId: r.id,
      wave: 'europe',
      actor: 'carol',
      role: 'release-manager',
      decision: 'approve',
      reason: null,
      at: 'x',
      expiresAt: '2999-01-01T00:00:00.000Z',
    });
    expect((await r.drive()).outcome).toBe('awaiting-approval');
    await decide({ id: 'carol' });
    expect((await r.drive()).outcome).toBe('promoted');
    const met = (await r.w.store.listRolloutEvents(r.id)).find((e) => e.type === 'approvals-met');
    expect(met?.data).toMatchObject({ approvers: ['carol'] });
  });

  it('a rejection fails the wave (here: nothing of it was touched, so nothing is rolled back)', async () => {
    const r = await setup();
    await r.drive();
    const rollout = (await r.w.store.getRollout(r.id))!;
    await recordDecision(r.w.store, {
      rollout,
      spec: r.spec,
      wave: 'europe',
      actor: bob,
      role: 'release-manager',
      decision: 'reject',
      reason: 'freeze week',
      now: r.clock.now(),
    });
    const res = await r.drive();
    expect(res.outcome).toBe('rolled-back');
    expect(res.reason).toBe('wave europe rejected by bob: freeze week');
    expect(r.driver.running('eu-west-1')).toEqual({ web: r.w.rev2.id.slice(0, 8), api: r.w.rev2.id.slice(0, 8) });
  });

  it('with --wait, the driver waits for the approval instead of parking', async () => {
    const r = await setup({ engine: { wait: true } });
    const driving = r.drive();
    while ((await r.w.store.getRollout(r.id))?.state !== 'awaiting-approval') await new Promise((res) => setTimeout(res, 5));
    const rollout = (await r.w.store.getRollout(r.id))!;
    await recordDecision(r.w.store, {
      rollout,
      spec: r.spec,
      wave: 'europe',
      actor: bob,
      role: 'release-manager',
      decision: 'approve',
      now: r.clock.now(),
    });
    expect((await driving).outcome).toBe('promoted');
  });
});

// ------------------------------------------------------------------------------------------------------
// Real processes: the example fleet's `web` on a LocalTarget behind a Router.

const work = mkdtempSync(join(tmpdir(), 'meridian-rollout-local-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('rollout engine with a LocalTarget and a Router', () => {
  it('moves real processes to the new version through canary weights on the router, and rolls back a bad one', async () => {
    const dir = join(work, 'shop');
    copyRolloutFleet(dir);
    const load = (version: string, faulty = false) => {
      const loaded = loadFleet(dir);
      const f = structuredClone(loaded.fleet);
      const web = f.services['web']!;
      web.version = version;
      web.image = web.image.replace(/:[0-9.]+@/, `:${version}@`);
      if (faulty) web.config = { ...web.config, FAULT_HEALTH: 'fail' };
      return { fleet: f, revision: render({ ...loaded, fleet: f }).revision };
    };
    const v1 = load('1.0.0');
    const v2 = load('1.1.0');
    const store = await openSqliteStore(join(work, 'state.db'));
    stores.push(store);
    await store.putRevision(v1.revision, { id: 'planner' });
    await store.putRevision(v2.revision, { id: 'planner' });
    const target = new LocalTarget({ fleetDir: dir, health: { intervalMs: 50, startupIntervalMs: 25 }, graceMs: 1000 });
    const clusters = Object.fromEntries(
      Object.entries(v1.revision.clusters).map(([c, state]) => [c, { revisionId: v1.revision.id, state }]),
    );
    await startClusters(target, clusters);
    for (const [c, state] of Object.entries(v1.revision.clusters))
      await store.recordClusterState(c, v1.revision.id, state, 'healthy', { id: 'up' });
    const router = new Router({ revision: v1.revision, endpoints: target, geoip: null, ...TRUST_LOOPBACK });
    const weights: string[] = [];
    const traffic = new RouterCanaryWeights(router);
    const spy = {
      setCanary: async (s: string, c: string, w: number, v: string) => {
        weights.push(`${c} ${w}% ${v}`);
        await traffic.setCanary(s, c, w, v);
      },
      clear: (s: string, c: string) => traffic.clear(s, c),
    };
    const analysis: Analysis = new HealthAnalysis(target);
    try {
      const plan = makePlan({
        fleet: v2.fleet,
        revision: v2.revision,
        previous: v1.revision,
        recorded: await store.clusterStates(),
        shares: {},
      });
      const spec = rolloutSpecFromPlan(plan, v2.fleet, ['web'], ['alice'], { healthyChecks: 2 });
      const engine = new RolloutEngine(
        {
          store,
          driver: target,
          traffic: spy,
          analysis,
          clock: { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
        },
        { pollMs: 25, healthTimeoutMs: 20_000 },
      );
      const h = holderFor('ro-local', alice);
      await createRollout(store, spec, h, { now: Date.now() });
      const res = await engine.drive('ro-local', h);
      expect(res.outcome).toBe('promoted');
      expect(weights).toEqual(['local-a 50% 1.1.0', 'local-a 100% 1.1.0', 'local-b 100% 1.1.0', 'local-c 100% 1.1.0']);
      for (const c of ['local-a', 'local-b', 'local-c']) {
        const s = await target.status(c);
        expect(s.services['web']?.stable).toMatchObject({ revisionId: v2.revision.id, version: '1.1.0', healthy: true });
        expect(s.services['web']?.canary).toBeUndefined();
        expect(target.endpoints(c).every((e) => e.version === '1.1.0' && e.track === 'stable')).toBe(true);
      }

      // a bad version: its canary never passes its health checks, so the wave is rolled back to 1.1.0
      const v3 = load('1.2.0', true);
      await store.putRevision(v3.revision, { id: 'planner' });
      const plan3 = makePlan({
        fleet: v3.fleet,
        revision: v3.revision,
        previous: v2.revision,
        recorded: await store.clusterStates(),
        shares: {},
      });
      const spec3 = rolloutSpecFromPlan(plan3, v3.fleet, ['web'], ['alice'], { healthyChecks: 2 });
      const engine3 = new RolloutEngine(
        {
          store,
          driver: target,
          traffic: spy,
          analysis,
          clock: { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
        },
        { pollMs: 25, healthTimeoutMs: 3_000 },
      );
      const h3 = holderFor('ro-local-bad', alice);
      await createRollout(store, spec3, h3, { now: Date.now() });
      const bad = await engine3.drive('ro-local-bad', h3);
      expect(bad.outcome).toBe('rolled-back');
      const s = await target.status('local-a');
      expect(s.services['web']?.stable).toMatchObject({ revisionId: v2.revision.id, version: '1.1.0', healthy: true });
      expect(s.services['web']?.canary).toBeUndefined();
      expect(router.stats().services['web']?.clusters['local-a']?.endpoints).toBeGreaterThan(0);
    } finally {
      await router.close();
      await target.close();
    }
  }, 60_000);
});

void stableRevs;
