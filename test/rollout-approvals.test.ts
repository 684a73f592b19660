/**
 * Approvals as CI and people use them (child processes, from source, against a fake local fleet): an
 * approval is bound to the plan it was given for, so changing the fleet — a new plan — voids it, and the
 * gate waits for someone to approve the new plan. (Waiting, the author's refusal and another identity's
 * approval are in rollout-cli.test.ts; N of M, roles and expiry in rollout-engine.test.ts.)
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { base, FAST, fleet, type Fleet, meridian } from './support/rollout-fleet-kit.js';

afterAll(() => rmSync(base, { recursive: true, force: true }));

const run = async (f: Fleet, args: string[], actor = 'ci') => meridian(f, args, { MERIDIAN_ACTOR: actor }).done;

describe('approvals bound to the plan', () => {
  it('a changed plan voids an approval: abort, change the fleet, roll out again — the gate waits until someone approves the new plan', async () => {
    const f = await fleet('voided', (y) =>
      y.replace('    - name: rest\n', '    - name: rest\n      approvals: { count: 1, roles: [release-manager] }\n'),
    );
    try {
      expect((await run(f, ['rollout', 'fleet', ...FAST], 'alice')).code).toBe(5);
      expect((await run(f, ['approve', '--wave', 'rest'], 'bob')).code).toBe(0);
      const aborted = await run(f, ['rollout', 'abort', '--reason', 'a fix goes in first', '--poll', '20ms'], 'alice');
      expect(aborted.code, aborted.err).toBe(4);
      const yaml = join(f.dir, 'fleet', 'fleet.yaml');
      writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('version: 1.1.0', 'version: 1.1.1').replace('web:1.1.0@', 'web:1.1.1@'));

      const again = await run(f, ['rollout', 'fleet', ...FAST], 'alice');
      expect(again.code, again.err).toBe(5); // bob's approval was for the old plan
      const view = JSON.parse((await run(f, ['rollout', 'status', '-o', 'json'])).out) as {
        planHash: string;
        waves: { name: string; approvals: { approvers: string[] } | null }[];
      };
      expect(view.waves[1]?.approvals?.approvers).toEqual([]);
      const store = await openSqliteStore(f.state);
      const old = (await store.listRollouts({})).find((r) => r.planHash !== view.planHash);
      expect((await store.listApprovals(old?.planHash ?? '')).map((a) => a.actor)).toEqual(['bob']);
      await store.close();

      expect((await run(f, ['approve', '--wave', 'rest'], 'bob')).code).toBe(0);
      const done = await run(f, ['rollout', '--resume', ...FAST]);
      expect(done.code, done.err).toBe(0);
    } finally {
      await f.api.close();
    }
  }, 60_000);
});
