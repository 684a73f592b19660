/**
 * Approvals and crash safety on the live local fleet (`meridian up`: real processes behind the real router),
 * with clients from Germany and the US sending real requests through the router all along. A wave that needs
 * an approval waits and starts no canary; its author cannot approve it; a new plan voids an approval given
 * for the old one; another identity's approval lets it go on to promotion; a second rollout is refused naming
 * the holder. A driver SIGKILLed at the transitions that matter on real processes (canary started, weight
 * set mid-wave, halfway through a promotion, the next wave's canaries started) is carried on by
 * `meridian rollout --resume` to the same steps as an uninterrupted run, with no canary left running.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTraffic } from '../src/traffic/generator.js';
import type { TrafficReport } from '../src/traffic/report.js';
import { replicaPids } from './support/cli-kit.js';
import { control, get, liveFleet, withState } from './support/rollout-live-kit.js';

// clients say where they are; the router retries an idempotent request that failed on another cluster (a
// replica being stopped can reset or refuse a request sent to it: without retries, that request fails — a
// 502 and a 503 in some 15,000 requests over six runs of this file)
const live = liveFleet('rollout-live-control', (y) =>
  y.replace(
    '    match: { hosts: [tiny.example] }\n',
    '    match: { hosts: [tiny.example] }\n    clientCountryHeader: x-client-country\n    retries: { attempts: 2 }\n',
  ),
);
const FAST = ['--poll', '50ms', '--healthy-checks', '1'];
const CLUSTERS = ['local-a', 'local-b', 'local-c'];
const GATE = '      approvals: { count: 1, roles: [release-manager] }\n';

let version = '1.0.0';
/** Moves web to version `next`, with the canary wave waiting for a release manager's approval or not. */
function release(next: string, gated: boolean): void {
  live.edit((y) => {
    const out = y.replace(`version: ${version}`, `version: ${next}`).replace(`web:${version}@`, `web:${next}@`).replace(GATE, '');
    return gated ? out.replace('    - name: canary\n', `    - name: canary\n${GATE}`) : out;
  });
  version = next;
}

/** Clients from Germany and the US through the router until stopped; answers what they saw. */
function traffic(): () => Promise<TrafficReport> {
  const stop = new AbortController();
  const report = runTraffic({
    url: live.info().router,
    rps: 100,
    mix: [
      { country: 'DE', weight: 1 },
      { country: 'US', weight: 1 },
    ],
    host: 'tiny.example',
    durationMs: 120_000,
    signal: stop.signal,
  });
  return () => {
    stop.abort();
    return report;
  };
}

/** Requests that failed (not 2xx: errors, refusals, failed connections), by status, over every country. */
function failures(r: TrafficReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of Object.values(r.countries)) {
    for (const [status, n] of Object.entries(s.statuses)) if (!/^2\d\d$/.test(status)) out[status] = (out[status] ?? 0) + n;
  }
  return out;
}

interface View {
  id: string;
  state: string;
  planHash: string;
  to: string;
  weights: Record<string, number>;
  waves: { name: string; status: string; approvals: { approvers: string[] } | null }[];
}
async function status(): Promise<View> {
  const r = await live.run(['rollout', 'status', '-o', 'json']);
  return JSON.parse(r.out) as View;
}

/** What runs in a cluster, as `track version` per replica. */
async function running(cluster: string): Promise<string[]> {
  const eps = (await control(live.info(), `v1/endpoints?cluster=${cluster}`)) as { track: string; version: string }[];
  return eps.map((e) => `${e.track} ${e.version}`).sort();
}

/** A rollout's steps: each event's type and the position it led to. */
async function steps(id: string): Promise<string[]> {
  const events = await withState(live, (s) => s.listRolloutEvents(id));
  return events.map((e) => `${e.type} → ${JSON.stringify((e.data as { to?: unknown }).to)}`);
}

const recorded = () =>
  withState(live, async (s) => Object.fromEntries(Object.entries(await s.clusterStates()).map(([c, st]) => [c, st.revisionId])));

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

interface AuditRow {
  actor: { id: string };
  action: string;
  subject: string;
  data: Record<string, unknown> | null;
}

/** The replica processes of the fleet at rest (one replica per cluster, each with its watchdog). */
let replicas = 0;

beforeAll(async () => {
  await live.up();
  replicas = replicaPids(live.fleet).length;
}, 30_000);

afterAll(async () => {
  await live.down();
  live.remove();
});

describe('rollout controls on the live local fleet with real traffic', () => {
  it('approvals: a gated wave waits; the author cannot approve; a new plan voids an approval; another identity’s approval promotes it', async () => {
    const stopTraffic = traffic();
    release('1.1.0', true);
    const parked = await live.run(['rollout', 'tiny', ...FAST], { MERIDIAN_ACTOR: 'alice' });
    expect(parked.code, parked.err).toBe(5);
    expect(parked.out).toMatch(/awaiting-approval: wave canary waits for approvals\n {2}approve it \(someone other than alice/);
    const first = await status();
    expect(first.state).toBe('awaiting-approval');
    // while it waits, clients are served by the stable version and no canary runs anywhere
    for (const c of CLUSTERS) expect(await running(c), c).toEqual(['stable 1.0.0']);
    for (const country of ['DE', 'US', 'DE', 'US']) {
      expect(JSON.parse((await get(live.info().router, country)).body)).toMatchObject({ version: '1.0.0', track: 'stable' });
    }

    const own = await live.run(['approve', '--role', 'release-manager'], { MERIDIAN_ACTOR: 'alice' });
    expect(own.code).toBe(2);
    expect(own.err).toMatch(/MERIDIAN_E_APPROVAL_AUTHOR.*alice is an author of this change/);
    const bob = await live.run(['approve', '--role', 'release-manager'], { MERIDIAN_ACTOR: 'bob' });
    expect(bob.code, bob.err).toBe(0);

    // the fleet changes before it goes on: abort, and roll the fix out — bob's approval was for the old plan
    const aborted = await live.run(['rollout', 'abort', '--reason', 'a fix goes in first', '--poll', '50ms'], { MERIDIAN_ACTOR: 'alice' });
    expect(aborted.code, aborted.err).toBe(4);
    release('1.1.1', true);
    const waiting = live.start(['rollout', 'tiny', '--wait', ...FAST], { MERIDIAN_ACTOR: 'alice' });
    const second = await until('the new rollout to wait for its approval', async () => {
      const s = await status();
      return s.id !== first.id && s.state === 'awaiting-approval' ? s : undefined;
    });
    expect(second.planHash).not.toBe(first.planHash);
    expect(second.waves[0]?.approvals?.approvers).toEqual([]);
    for (const c of CLUSTERS) expect(await running(c), c).toEqual(['stable 1.0.0']);

    // a second rollout while alice's driver waits is refused, naming the holder
    const other = await live.run(['rollout', 'tiny', ...FAST], { MERIDIAN_ACTOR: 'carol' });
    expect(other.code, other.err).toBe(6);
    expect(other.err).toMatch(
      new RegExp(
        `MERIDIAN_E_ROLLOUT_LOCKED.*service web is held by rollout ${second.id} \\(started by alice, awaiting-approval, .*driven by pid ${waiting.pid} on host`,
      ),
    );

    const approved = await live.run(['approve', '--role', 'release-manager'], { MERIDIAN_ACTOR: 'bob' });
    expect(approved.code, approved.err).toBe(0);
    expect(approved.out).toContain('1/1 approvals — the gate is open');
    const done = await waiting.done;
    expect(done.code, done.err).toBe(0);
    const end = await status();
    expect(end.state).toBe('promoted');
    expect(await recorded()).toEqual({ 'local-a': end.to, 'local-b': end.to, 'local-c': end.to });
    for (const country of ['DE', 'US']) {
      expect(JSON.parse((await get(live.info().router, country)).body)).toMatchObject({ version: '1.1.1', track: 'stable' });
    }
    expect(replicaPids(live.fleet)).toHaveLength(replicas); // no canary left by the abort or the promotion
    const seen = await stopTraffic();
    expect(seen.countries['DE']?.sent).toBeGreaterThan(100);
    expect(failures(seen)).toEqual({});
    expect(Object.keys(seen.countries['DE']?.versions ?? {}).sort()).toEqual(['1.0.0', '1.1.1']); // 1.1.0 never ran

    // the audit log has each decision, bound to its plan, and the chain verifies
    const audit = JSON.parse((await live.run(['audit', 'log', '-o', 'json'])).out) as AuditRow[];
    const which = (id: string) => (id === first.id ? 'first' : id === second.id ? 'second' : 'other');
    expect(
      audit
        .filter(
          (e) =>
            e.action.startsWith('approval.') || ['rollout.start', 'rollout.abort-requested', 'rollout.approvals-met'].includes(e.action),
        )
        .map((e) => `${which(e.subject)} ${e.action} ${e.actor.id}`),
    ).toEqual([
      'first rollout.start alice',
      'first approval.refused alice', // the author's own approval, refused
      'first approval.approve bob',
      'first rollout.abort-requested alice',
      'second rollout.start alice',
      'second approval.approve bob',
      'second rollout.approvals-met alice',
    ]);
    // carol's refused rollout names the holder: alice's waiting driver of the second rollout
    expect(audit.find((e) => e.action === 'rollout.lock.refused')).toMatchObject({
      actor: { id: 'carol' },
      data: { code: 'MERIDIAN_E_ROLLOUT_LOCKED', holder: { rollout: second.id, actor: 'alice', pid: waiting.pid } },
    });
    const approvals = audit.filter((e) => e.action === 'approval.approve');
    expect(approvals.map((e) => e.data?.['planHash'])).toEqual([first.planHash, second.planHash]);
    expect(audit.find((e) => e.action === 'rollout.approvals-met')?.data).toMatchObject({ approvers: ['bob'] });
    expect((await live.run(['audit', 'verify'])).code).toBe(0);
  }, 60_000);

  it('SIGKILL of the driver at transitions that matter, then --resume: promoted, the same steps as an uninterrupted run, no canary left', async () => {
    const stopTraffic = traffic();
    release('1.2.0', false);
    const reference = await live.run(['rollout', 'tiny', ...FAST]);
    expect(reference.code, reference.err).toBe(0);
    const expected = await steps((await status()).id);
    const types = expected.map((s) => s.slice(0, s.indexOf(' ')));
    expect(types).toEqual([
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
      'promoted',
    ]);
    const seq = (type: string, nth: number) => String(types.map((t, i) => (t === type ? i + 1 : 0)).filter((i) => i > 0)[nth]);

    release('1.3.0', false);
    // right after the canary is started: its process outlives the driver
    const k1 = await live.start(['rollout', 'tiny', ...FAST], { MERIDIAN_TEST_CRASH_AT: seq('canary-ready', 0) }).done;
    expect(k1.signal, k1.err).toBe('SIGKILL');
    const id = (await status()).id;
    expect(await running('local-a')).toEqual(['canary 1.3.0', 'stable 1.2.0']);

    // right after a weight is set, mid-wave: with no driver, the router still sends all of local-a's traffic to the canary
    const k2 = await live.start(['rollout', '--resume', ...FAST], { MERIDIAN_TEST_CRASH_AT: seq('weight-set', 1) }).done;
    expect(k2.signal, k2.err).toBe('SIGKILL');
    expect((await status()).weights).toEqual({ 'local-a': 100 });
    // (the router serves a cluster's stable replicas while its canary is not usable — on a starved machine a
    // health check can time out — so the request is sent once the router counts the canary usable; what it
    // said about local-a goes with a failure)
    const localA = async () => {
      const stats = (await control(live.info(), 'v1/router/stats')) as {
        services: Record<string, { clusters: Record<string, { detail: { track: string; version: string; usable: boolean }[] }> }>;
      };
      return stats.services['web']?.clusters['local-a']?.detail ?? [];
    };
    await until('the router to count local-a’s canary usable', async () =>
      (await localA()).some((u) => u.track === 'canary' && u.version === '1.3.0' && u.usable) ? true : undefined,
    );
    const fromA = await until('a German client served by local-a', async () => {
      const body = JSON.parse((await get(live.info().router, 'DE')).body) as { cluster: string; track: string; version: string };
      return body.cluster === 'local-a' ? body : undefined;
    });
    expect(fromA, JSON.stringify(await localA())).toMatchObject({ track: 'canary', version: '1.3.0' });

    // halfway through the promotion: the new stable replicas run, the promotion is not recorded yet
    const r3 = live.start(['rollout', '--resume', ...FAST]);
    await until('the promotion to start', async () => ((await running('local-a')).includes('stable 1.3.0') ? true : undefined));
    process.kill(r3.pid, 'SIGKILL');
    const k3 = await r3.done;
    expect(k3.signal, k3.err).toBe('SIGKILL');
    expect((await steps(id)).length, 'the kill landed before the promotion was recorded').toBe(Number(seq('promoted', 0)) - 1);

    // right after the next wave's canaries are started, in two clusters at once
    const k4 = await live.start(['rollout', '--resume', ...FAST], { MERIDIAN_TEST_CRASH_AT: seq('canary-ready', 1) }).done;
    expect(k4.signal, k4.err).toBe('SIGKILL');
    expect(await running('local-c')).toEqual(['canary 1.3.0', 'stable 1.2.0']);

    const resumed = await live.run(['rollout', '--resume', ...FAST]);
    expect(resumed.code, resumed.err).toBe(0);
    expect(await steps(id)).toEqual(expected); // no step repeated, none skipped

    // no canary left running, no replica process more or less than before
    for (const c of CLUSTERS) expect(await running(c), c).toEqual(['stable 1.3.0']);
    expect(replicaPids(live.fleet)).toHaveLength(replicas);
    const end = await status();
    expect(await recorded()).toEqual({ 'local-a': end.to, 'local-b': end.to, 'local-c': end.to });
    const audit = JSON.parse((await live.run(['audit', 'log', '-o', 'json'])).out) as AuditRow[];
    expect(audit.filter((e) => e.subject === id && e.action === 'rollout.resume')).toHaveLength(4);
    expect(audit.filter((e) => e.action === 'rollout.lock.takeover').length).toBeGreaterThanOrEqual(4); // each dead driver's lock

    const seen = await stopTraffic();
    expect(seen.countries['US']?.sent).toBeGreaterThan(100);
    expect(failures(seen), 'requests that failed while drivers were killed and resumed').toEqual({});
    expect(Object.keys(seen.countries['US']?.versions ?? {}).sort()).toEqual(['1.1.1', '1.2.0', '1.3.0']);
  }, 60_000);
});
