/** `meridian evacuate`, `restore` and `disaster` on the example fleet, against a real SQLite store. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { type CliRun, runMeridian } from './support/cli-kit.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';

const ROOT = join(import.meta.dirname, '..');
const SHOP = join(ROOT, 'examples', 'shop');
let state = '';

function meridian(args: string[], actor = 'alice'): CliRun {
  return runMeridian([...args, '-f', SHOP, '--state', state], { cwd: ROOT, actor });
}

async function actions(): Promise<string[]> {
  const store = await openSqliteStore(state, { readonly: true });
  try {
    return (await store.listAudit()).map((e) => `${e.action} ${e.subject} ${e.actor.id}`);
  } finally {
    await store.close();
  }
}

beforeEach(() => {
  state = join(mkdtempSync(join(tmpdir(), 'meridian-recovery-')), 'state.db');
});

describe('meridian evacuate and restore', { timeout: 120_000 }, () => {
  it('evacuates a region the rules allow, refuses the one that would leave EU clients nowhere to go, and audits both', async () => {
    const ok = meridian(['evacuate', 'eu-west', '--reason', 'eu-west serves errors']);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain('evacuated region eu-west: eu-west-1, eu-west-2 take no new traffic');

    const refused = meridian(['evacuate', 'eu-central', '--reason', 'and frankfurt']);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('refused: evacuating region eu-central breaks the safety rules');
    expect(refused.out).toContain('residency: EU clients of web would have no cluster left');
    expect(refused.out).toContain('capacity-floor: web could serve 4800 of 7500 rps expected (64 %)');

    // declared down on purpose, EU clients get 503 instead: the residency rule lets it through, the floor still holds it
    const down = meridian(['evacuate', 'eu-central', '--reason', 'EU is down', '--declare-down', 'EU', '-o', 'json']);
    expect(down.code).toBe(0);
    const body = JSON.parse(down.out) as { evacuated: boolean; verdict: { effects: { service: string; lockedOut: string[] }[] } };
    expect(body.evacuated).toBe(true);
    expect(body.verdict.effects.find((e) => e.service === 'web')?.lockedOut).toEqual(['EU']);

    expect(await actions()).toEqual(['routing.drain eu-west alice', 'recovery.refused eu-central alice', 'routing.drain eu-central alice']);
  });

  it('holds a restored place down, refuses automation while the switch is off, and names an unknown place', () => {
    expect(meridian(['evacuate', 'us-west-1', '--reason', 'bad node']).code).toBe(0);
    const back = meridian(['restore', 'us-west-1', '--reason', 'fixed']);
    expect(back.code).toBe(0);
    expect(back.out).toContain('restored cluster us-west-1');
    const again = meridian(['evacuate', 'us-west-1', '--reason', 'flapping']);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/hold-down: cluster us-west-1 changed \d+s ago; the hold-down of 5m has (4m\d+s|5m) left/);

    const auto = meridian(['evacuate', 'ap-south', '--reason', 'probe failed', '--automated']);
    expect(auto.code).toBe(1);
    expect(auto.out).toContain('master-switch: automated evacuations are switched off');

    const typo = meridian(['evacuate', 'eu-wset', '--reason', 'x']);
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('the fleet shop has no region or cluster "eu-wset"');
    expect(typo.err).not.toMatch(/\n\s+at /); // no stack
    expect(meridian(['evacuate', 'eu-west']).err).toContain('an evacuation needs a reason');
  });
});

describe('meridian disaster', { timeout: 180_000 }, () => {
  it('needs another approver of the policy role; the declarer cannot approve; a standing disaster overrides the hold-down', async () => {
    expect(meridian(['evacuate', 'ap-south', '--reason', 'mumbai errors']).code).toBe(0);
    expect(meridian(['restore', 'ap-south', '--reason', 'looked fine']).code).toBe(0);
    expect(meridian(['evacuate', 'ap-south', '--reason', 'errors again']).code).toBe(1); // hold-down

    const declared = meridian(['disaster', 'declare', '--incident', 'region-loss', '--reason', 'mumbai is gone', '-o', 'json']);
    expect(declared.code, declared.err).toBe(0);
    const id = String((JSON.parse(declared.out) as { id: number }).id);

    const own = meridian(['disaster', 'approve', id, '--role', 'incident-commander']);
    expect(own.code).toBe(1);
    expect(own.out).toContain(`refused: alice declared disaster ${id} and cannot approve it`);
    expect(meridian(['evacuate', 'ap-south', '--reason', 'errors again']).code).toBe(1); // not standing yet

    const wrongRole = meridian(['disaster', 'approve', id, '--role', 'release-manager'], 'bob');
    expect(wrongRole.code).toBe(2);
    expect(wrongRole.err).toContain('--role must be one of incident-commander');

    const bob = meridian(['disaster', 'approve', id], 'bob');
    expect(bob.code, bob.err).toBe(0);
    expect(bob.out).toContain(`disaster ${id} (region-loss) stands: approved by bob`);

    const now = meridian(['evacuate', 'ap-south', '--reason', 'errors again']);
    expect(now.code, now.out).toBe(0);
    expect(now.out).toContain('overridden by the declared disaster');

    expect(meridian(['disaster', 'end', id], 'carol').code).toBe(0);
    const st = meridian(['disaster', 'status']);
    expect(st.out).toContain('evacuated: region ap-south');
    expect(st.out).toContain(`disaster ${id} region-loss by alice`);
    expect(st.out).toContain('ended by carol');
    expect((await actions()).filter((a) => a.startsWith('disaster.') || a.startsWith('recovery.'))).toEqual([
      'recovery.refused ap-south alice',
      'disaster.declare region-loss alice',
      `recovery.refused ${id} alice`,
      'recovery.refused ap-south alice',
      `disaster.approve ${id} bob`,
      `disaster.end ${id} carol`,
    ]);
  });
});
