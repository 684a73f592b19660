/**
 * `meridian rollout`, `approve`, `rollback` and `rollout status` as CI runs them (child processes, from
 * source) against a fake local fleet: exit codes by outcome, JSON lines, the Markdown summary, approvals
 * by identity, and a rollback that is itself reversible.
 */
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { render } from '../src/render/render.js';
import { loadFleet } from '../src/spec/load.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { base, FAST, fleet, type Fleet, meridian } from './support/rollout-fleet-kit.js';

afterAll(() => rmSync(base, { recursive: true, force: true }));

const run = async (f: Fleet, args: string[], actor = 'ci') => meridian(f, args, { MERIDIAN_ACTOR: actor }).done;

async function recorded(f: Fleet): Promise<Record<string, string>> {
  const store = await openSqliteStore(f.state);
  try {
    return Object.fromEntries(Object.entries(await store.clusterStates()).map(([c, s]) => [c, s.revisionId]));
  } finally {
    await store.close();
  }
}

describe('meridian rollout for CI', () => {
  it('exits 5 at an approval gate with JSON lines and a summary; the author may not approve, someone else may; --resume promotes', async () => {
    const f = await fleet('approvals', (y) =>
      y.replace('    - name: rest\n', '    - name: rest\n      approvals: { count: 1, roles: [release-manager] }\n'),
    );
    try {
      const summary = join(f.dir, 'summary.md');
      const first = await run(f, ['rollout', 'fleet', '-o', 'jsonl', '--summary', summary, ...FAST], 'alice');
      expect(first.code, first.err).toBe(5);
      const lines = first.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ type: 'rollout.event', seq: 1, event: 'created' });
      expect(lines.at(-1)).toMatchObject({ type: 'rollout.result', outcome: 'awaiting-approval', exitCode: 5 });
      expect(lines.filter((l) => l['event'] === 'verdict')).toHaveLength(2);
      const md = readFileSync(summary, 'utf8');
      expect(md).toMatch(/^## ⏳ Meridian rollout `ro-\S+`: awaiting-approval/);
      expect(md).toContain('| rest | local-b, local-c | 100% | 0/1 release-manager | awaiting-approval |');
      expect(md).toMatch(/\| 5 \| canary \| local-a \| 1 \| 50% \| pass/);

      const self = await run(f, ['approve', '--wave', 'rest', '--role', 'release-manager'], 'alice');
      expect(self.code).toBe(2);
      expect(self.err).toContain('MERIDIAN_E_APPROVAL_AUTHOR');
      const wrongRole = await run(f, ['approve', '--wave', 'rest', '--role', 'intern'], 'bob');
      expect(wrongRole.err).toMatch(/needs approval from release-manager, not intern/);
      const ok = await run(f, ['approve', '--wave', 'rest'], 'bob'); // the wave's only role is assumed
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(/approved wave rest of rollout ro-\S+ as bob \(release-manager\); bound to plan [0-9a-f]{12}/);
      expect(ok.out).toContain('1/1 approvals — the gate is open');

      const done = await run(f, ['rollout', '--resume', ...FAST]);
      expect(done.code, done.err).toBe(0);
      expect(done.out).toMatch(/rollout ro-\S+ promoted/);
      const status = await run(f, ['rollout', 'status', '-o', 'json']);
      const view = JSON.parse(status.out) as {
        state: string;
        waves: { status: string; approvals: { approvers: string[] } | null }[];
        gates: unknown[];
        locks: unknown[];
      };
      expect(view.state).toBe('promoted');
      expect(view.waves.map((w) => w.status)).toEqual(['promoted', 'promoted']);
      expect(view.waves[1]?.approvals?.approvers).toEqual(['bob']);
      expect(view.gates).toHaveLength(4); // two in wave canary, one per batch of wave rest (maxParallel 1)
      expect(view.locks).toEqual([]);
      const text = await run(f, ['rollout', 'status']);
      expect(text.out).toMatch(/rest\s+promoted\s+local-b, local-c\s+steps 100%\s+approvals 1\/1 \(release-manager\) by bob/);
    } finally {
      await f.api.close();
    }
  }, 60_000);

  it('exits 4 when a canary fails (the wave is rolled back), then `rollback` makes the fleet whole on the known-good revision', async () => {
    const f = await fleet('failing');
    try {
      const v2 = render(loadFleet(join(f.dir, 'fleet'))).revision;
      f.driver.sick.add(`local-b/web/canary@${v2.id}`);
      const res = await run(f, ['rollout', 'fleet', ...FAST, '--health-timeout', '500ms']);
      expect(res.code, res.err).toBe(4);
      expect(res.out).toMatch(
        /rolled-back: the canary did not become healthy: timed out after 1 s: local-b\/web \(canary\) runs \S+, 0\/1 ready/,
      );
      expect(await recorded(f)).toEqual({ 'local-a': v2.id, 'local-b': f.v1.id, 'local-c': f.v1.id }); // wave canary stays on 1.1.0
      const back = await run(f, ['rollback', ...FAST]);
      expect(back.code, back.err).toBe(0);
      expect(back.out).toMatch(/rollback rb-\S+ completed/);
      expect(await recorded(f)).toEqual({ 'local-a': f.v1.id, 'local-b': f.v1.id, 'local-c': f.v1.id });
      expect(f.driver.running('local-a')).toEqual({ web: f.v1.id.slice(0, 8) });
    } finally {
      await f.api.close();
    }
  }, 60_000);

  it('a rollback is itself reversible: rolling back the rollback returns', async () => {
    const f = await fleet('reversible');
    try {
      const v2 = render(loadFleet(join(f.dir, 'fleet'))).revision;
      expect((await run(f, ['rollout', 'fleet', ...FAST])).code).toBe(0);
      const all = (id: string) => ({ 'local-a': id, 'local-b': id, 'local-c': id });
      expect(await recorded(f)).toEqual(all(v2.id));
      const back = await run(f, ['rollback', ...FAST]);
      expect(back.code, back.err).toBe(0);
      expect(await recorded(f)).toEqual(all(f.v1.id));
      const forth = await run(f, ['rollback', ...FAST]);
      expect(forth.code, forth.err).toBe(0);
      expect(await recorded(f)).toEqual(all(v2.id));
      const to = await run(f, ['rollback', '--to', f.v1.id.slice(0, 6), ...FAST]);
      expect(to.code, to.err).toBe(0);
      expect(await recorded(f)).toEqual(all(f.v1.id));
      const store = await openSqliteStore(f.state);
      const audit = (await store.listAudit()).map((e) => e.action);
      expect(audit.filter((a) => a === 'rollback.start')).toHaveLength(3);
      expect(await store.verifyAudit()).toMatchObject({ ok: true });
      await store.close();
      const nothing = await run(f, ['rollback', '--to', f.v1.id, ...FAST]);
      expect(nothing.out).toMatch(/nothing to roll back/);
    } finally {
      await f.api.close();
    }
  }, 60_000);

  it('rolls out a saved plan; refuses one that was edited or that the fleet has moved past', async () => {
    const f = await fleet('saved-plan');
    try {
      const planFile = join(f.dir, 'plan.json');
      expect((await run(f, ['plan', 'fleet', '--out', planFile])).code).toBe(0);
      const plan = readFileSync(planFile, 'utf8');
      writeFileSync(join(f.dir, 'edited.json'), plan.replace('"maxParallel": 1', '"maxParallel": 9'));
      const edited = await run(f, ['rollout', 'fleet', '--plan', join(f.dir, 'edited.json'), ...FAST]);
      expect(edited.code).toBe(2);
      expect(edited.err).toContain('MERIDIAN_E_PLAN_TAMPERED');
      const ok = await run(f, ['rollout', 'fleet', '--plan', planFile, ...FAST]);
      expect(ok.code, ok.err).toBe(0);
      const store = await openSqliteStore(f.state);
      const [r] = await store.listRollouts();
      await store.close();
      expect(r?.planHash).toBe((JSON.parse(plan) as { hash: string }).hash);
      expect((await run(f, ['rollout', 'fleet', '--plan', planFile, ...FAST])).out).toMatch(/nothing to roll out/);
      expect((await run(f, ['rollback', ...FAST])).code).toBe(0);
      // the fleet is back on 1.0.0 everywhere, as when the plan was made... but through a rollback: still the same from
      const again = await run(f, ['rollout', 'fleet', '--plan', planFile, ...FAST]);
      expect(again.code, again.err).toBe(0);
      writeFileSync(
        join(f.dir, 'fleet', 'fleet.yaml'),
        readFileSync(join(f.dir, 'fleet', 'fleet.yaml'), 'utf8')
          .replace('version: 1.1.0', 'version: 1.2.0')
          .replace('web:1.1.0@', 'web:1.2.0@'),
      );
      const newer = join(f.dir, 'newer.json');
      expect((await run(f, ['plan', 'fleet', '--out', newer])).code).toBe(0);
      expect((await run(f, ['rollback', ...FAST])).code).toBe(0); // back to 1.0.0: the newer plan's "from" (1.1.0) is stale
      const stale = await run(f, ['rollout', 'fleet', '--plan', newer, ...FAST]);
      expect(stale.code).toBe(2);
      expect(stale.err).toMatch(/MERIDIAN_E_PLAN_STALE: the plan was made when cluster local-a ran \S+, but it now runs \S+/);
    } finally {
      await f.api.close();
    }
  }, 60_000);

  it('a saved plan carries its fleet: --plan alone finds it; another fleet, or the same one edited, is refused naming both', async () => {
    const f = await fleet('plan-source');
    try {
      const planFile = join(f.dir, 'plan.json');
      expect((await run(f, ['plan', 'fleet', '--out', planFile])).code).toBe(0);
      const plan = JSON.parse(readFileSync(planFile, 'utf8')) as { source: { path: string; contentHash: string } };
      expect(plan.source.path).toBe(join(f.dir, 'fleet'));
      expect(plan.source.contentHash).toMatch(/^[0-9a-f]{64}$/);
      // another fleet directory with other content: refused, naming the plan's fleet and the one given
      cpSync(join(f.dir, 'fleet'), join(f.dir, 'other'), { recursive: true });
      const otherYaml = join(f.dir, 'other', 'fleet.yaml');
      writeFileSync(otherYaml, `${readFileSync(otherYaml, 'utf8')}# a comment changes the files, not the revision\n`);
      const other = await run(f, ['rollout', 'other', '--plan', planFile, ...FAST]);
      expect(other.code).toBe(2);
      expect(other.err).toContain('MERIDIAN_E_PLAN_MISMATCH');
      expect(other.err).toContain(`made from the fleet at ${join(f.dir, 'fleet')} (files ${plan.source.contentHash.slice(0, 12)})`);
      expect(other.err).toContain(`but the fleet at ${join(f.dir, 'other')} holds other files`);
      // no fleet named, run from elsewhere: the plan's own fleet is rolled out
      rmSync(join(f.dir, 'other'), { recursive: true });
      const ok = await run(f, ['rollout', '--plan', planFile, ...FAST]);
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(/rollout ro-\S+ promoted/);
    } finally {
      await f.api.close();
    }
  }, 60_000);

  it('exits 3 when no fleet is running, having recorded nothing', async () => {
    const f = await fleet('nofleet');
    await f.api.close();
    rmSync(join(f.dir, '.meridian', 'up.json'));
    const res = await run(f, ['rollout', 'fleet', ...FAST]);
    expect(res.code).toBe(3);
    expect(res.err).toMatch(/MERIDIAN_E_ROLLOUT_NO_FLEET.*\n.*meridian up --detach/);
    const store = await openSqliteStore(f.state);
    expect(await store.listRollouts()).toEqual([]);
    await store.close();
    expect(existsSync(join(f.dir, '.meridian', 'up.json'))).toBe(false);
  }, 30_000);
});
