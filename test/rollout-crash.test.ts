/**
 * Crash safety, with the driver as a real child process (`meridian rollout` from source): SIGKILL right
 * after each persisted transition of a full rollout, then `meridian rollout --resume`, must end in the
 * same state with the same event log as an uninterrupted run. Also: a second rollout of the same
 * service is refused naming the holder, and a holder that died is taken over. The clusters are an
 * in-memory driver and router behind the real control API, in this process (as `meridian up` serves them).
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { deadHolder } from '../src/rollout/lock.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { LockRecord } from '../src/store/store.js';
import { base, eventLog, FAST, fleet, type Fleet, meridian } from './support/rollout-fleet-kit.js';

afterAll(() => rmSync(base, { recursive: true, force: true }));

async function finalState(f: Fleet): Promise<unknown> {
  const store = await openSqliteStore(f.state);
  try {
    const [r] = await store.listRollouts({ limit: 1 });
    const states = await store.clusterStates();
    return {
      rollout: { state: r?.state, machine: r?.machine },
      clusters: Object.fromEntries(Object.entries(states).map(([c, s]) => [c, [s.revisionId, s.status]])),
      locks: await store.listLocks(),
      audit: (await store.verifyAudit()).ok,
      running: Object.fromEntries(['local-a', 'local-b', 'local-c'].map((c) => [c, [f.driver.running(c), f.driver.running(c, 'canary')]])),
      weights: [...f.router.weights],
    };
  } finally {
    await store.close();
  }
}

describe('crash safety', () => {
  it('SIGKILL after every transition, then --resume: the same final state and event log as an uninterrupted run', async () => {
    const ref = await fleet('reference');
    const run = await meridian(ref, ['rollout', 'fleet', ...FAST]).done;
    expect(run.err).toContain('promoted');
    expect(run.code).toBe(0);
    const expected = await eventLog(ref);
    const expectedState = await finalState(ref);
    await ref.api.close();
    expect(expected.map((e) => e.type)).toEqual([
      'created',
      'canary-ready',
      'weight-set',
      'timer-elapsed',
      'verdict',
      'weight-set',
      'timer-elapsed',
      'verdict',
      'promoted',
      'canary-ready',
      'weight-set',
      'timer-elapsed',
      'verdict',
      'timer-elapsed',
      'promoted',
      'canary-ready',
      'weight-set',
      'timer-elapsed',
      'verdict',
      'timer-elapsed',
      'promoted',
    ]);
    expect(expectedState).toMatchObject({ rollout: { state: 'promoted' }, locks: [], audit: true, weights: [] });

    const check = async (f: Fleet, what: string): Promise<void> => {
      expect(await eventLog(f), `event log ${what}`).toEqual(expected);
      expect(await finalState(f), `state ${what}`).toEqual(expectedState);
      const store = await openSqliteStore(f.state);
      const audit = (await store.listAudit()).map((e) => e.action);
      await store.close();
      expect(audit, what).toContain('rollout.lock.takeover'); // the dead driver's lock, taken over
    };

    // A rollout whose driver is killed right after each of the transitions from..to: each
    // --resume carries on from the persisted state and is itself killed after the next transition. Two
    // such chains (run side by side, one per core) cover every transition of the rollout.
    const chain = async (from: number, to: number): Promise<void> => {
      const f = await fleet(`chain-${from}`);
      try {
        for (let at = from; at <= to; at++) {
          const args = at === from ? ['rollout', 'fleet', ...FAST] : ['rollout', '--resume', ...FAST];
          const crashed = await meridian(f, args, { MERIDIAN_TEST_CRASH_AT: String(at) }).done;
          expect(crashed.signal, `crash at ${at}: ${crashed.err}`).toBe('SIGKILL');
          expect((await eventLog(f)).length, `events after the crash at ${at}`).toBe(at);
        }
        if (to < expected.length) {
          const resumed = await meridian(f, ['rollout', '--resume', ...FAST]).done;
          expect(resumed.code, `resume after a crash at ${to}: ${resumed.err}`).toBe(0);
        }
        await check(f, `after crashes at ${from}..${to}`);
      } finally {
        await f.api.close();
      }
    };
    const half = Math.ceil(expected.length / 2);
    await Promise.all([chain(1, half), chain(half + 1, expected.length)]);
  }, 150_000);

  it('refuses a second rollout of the same service naming the holder, and takes over once the holder died', async () => {
    const f = await fleet('lock', (y) =>
      y.replace('    - name: rest\n', '    - name: rest\n      approvals: { count: 1, roles: [release-manager] }\n'),
    );
    try {
      const first = meridian(f, ['rollout', 'fleet', '--wait', ...FAST], { MERIDIAN_ACTOR: 'alice' });
      // wait until it holds the lock and waits for the approval
      for (let i = 0; i < 300; i++) {
        const store = await openSqliteStore(f.state);
        const [r] = await store.listRollouts({ limit: 1 });
        await store.close();
        if (r?.state === 'awaiting-approval') break;
        await new Promise((res) => setTimeout(res, 50));
      }
      const second = await meridian(f, ['rollout', 'fleet', ...FAST], { MERIDIAN_ACTOR: 'bob' }).done;
      expect(second.code).toBe(6);
      expect(second.err).toMatch(
        /MERIDIAN_E_ROLLOUT_LOCKED.*service web is held by rollout ro-\S+ \(started by alice, awaiting-approval, holding it since \S+; driven by pid \d+ on host \S+/,
      );
      expect(second.err).toContain(`pid ${first.pid}`);

      process.kill(first.pid, 'SIGKILL');
      const killed = await first.done;
      expect(killed.signal).toBe('SIGKILL');
      // a new rollout takes over the dead holder's lock (its pid is gone on this host); the old one is abandoned
      const third = meridian(f, ['rollout', 'fleet', '--wait', ...FAST], { MERIDIAN_ACTOR: 'bob' });
      let rollouts: { id: string; state: string }[] = [];
      for (let i = 0; i < 300; i++) {
        const store = await openSqliteStore(f.state);
        rollouts = (await store.listRollouts()).map((r) => ({ id: r.id, state: r.state }));
        await store.close();
        if (rollouts.length === 2 && rollouts[0]?.state === 'awaiting-approval') break;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(rollouts.map((r) => r.state)).toEqual(['awaiting-approval', 'failed']);
      const store = await openSqliteStore(f.state);
      const audit = await store.listAudit();
      const takeover = audit.find((e) => e.action === 'rollout.lock.takeover');
      expect(takeover?.data).toMatchObject({ from: [expect.objectContaining({ actor: 'alice', pid: first.pid })] });
      expect(audit.find((e) => e.action === 'rollout.abandoned')?.subject).toBe(rollouts[1]?.id);
      // approve as carol: bob's rollout carries on and finishes
      await store.close();
      const approve = await meridian(f, ['approve', '--wave', 'rest', '--role', 'release-manager'], { MERIDIAN_ACTOR: 'carol' }).done;
      expect(approve.code, approve.err).toBe(0);
      const done = await third.done;
      expect(done.code, done.err).toBe(0);
    } finally {
      await f.api.close();
    }
  }, 60_000);

  it('judges a lock holder dead by a stale heartbeat, or by its pid gone on this host', () => {
    const lock: LockRecord = {
      key: 'tiny/web',
      rolloutId: 'r',
      actor: 'a',
      host: 'ci-1',
      pid: 123,
      token: 't',
      acquiredAt: '2026-01-01T00:00:00.000Z',
      heartbeatAt: '2026-01-01T00:00:00.000Z',
    };
    const now = Date.parse('2026-01-01T00:00:10.000Z');
    expect(deadHolder(lock, { now, ttlMs: 30_000, host: 'ci-2' })).toBeNull();
    expect(deadHolder(lock, { now: now + 60_000, ttlMs: 30_000, host: 'ci-2' })).toMatch(/heartbeat was 70 s ago/);
    expect(deadHolder(lock, { now, ttlMs: 30_000, host: 'ci-1', isAlive: () => false })).toMatch(/pid 123 is gone on ci-1/);
    expect(deadHolder(lock, { now, ttlMs: 30_000, host: 'ci-1', isAlive: () => true })).toBeNull();
    expect(deadHolder({ ...lock, pid: null }, { now: now + 1e9, ttlMs: 30_000 })).toBeNull(); // parked: no holder to die
  });
});
