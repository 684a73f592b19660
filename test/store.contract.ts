/**
 * The store contract: one suite that every backend runs (test/store-sqlite.test.ts,
 * test/store-postgres.test.ts). Tampering is done the way an intruder would: with SQL on the database.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MeridianError } from '../src/errors.js';
import { revisionJson, type Revision } from '../src/render/render.js';
import { entryHash, GENESIS_HASH } from '../src/store/audit-chain.js';
import type { AuditEntry, Clock, LockRecord, RolloutRecord, Store } from '../src/store/store.js';
import { build, shopInput, shopNext, steppingClock } from './support/plan-fixtures.js';

/** One empty database (a file, a schema) that stores can be opened on, and raw access to it. */
export interface StoreHarness {
  /** Opens a store on this database; several may be open at once. */
  open(opts?: { clock?: Clock }): Promise<Store>;
  /** Runs SQL directly on the database, bypassing the store. */
  exec(sql: string): Promise<void>;
  query(sql: string): Promise<Record<string, unknown>[]>;
  /** Drops the append-only triggers, as an intruder with write access would. */
  dropAuditGuards(): Promise<void>;
  dispose(): Promise<void>;
}

const alice = { id: 'alice', via: 'flag' } as const;
const ci = { id: 'ci-bot', via: 'github-actions' } as const;

async function expectCode(p: Promise<unknown>, code: string): Promise<MeridianError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(MeridianError);
  expect((err as MeridianError).code).toBe(code);
  return err as MeridianError;
}

function q(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Registers the contract suite for one backend. */
export function storeContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`store contract: ${name}`, () => {
    let h: StoreHarness;
    let store: Store;
    const opened: Store[] = [];
    let rev1: Revision;
    let rev2: Revision;

    const open = async (clock: Clock = steppingClock()): Promise<Store> => {
      const s = await h.open({ clock });
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      h = await makeHarness();
      store = await open();
      rev1 = build(shopInput()).revision;
      rev2 = build(shopNext()).revision;
    });

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      await h.dispose();
    });

    /** Five audit entries with varied content. */
    async function seed(): Promise<AuditEntry[]> {
      const out: AuditEntry[] = [];
      for (let i = 1; i <= 5; i++) {
        out.push(
          await store.appendAudit({
            actor: i % 2 ? alice : ci,
            action: 'test.step',
            subject: `s${i}`,
            reason: `step ${i}`,
            data: { i, tags: ['a', 'b'] },
          }),
        );
      }
      return out;
    }

    describe('revisions', () => {
      it('records a revision once: the same content is the same revision, and only the first write is audited', async () => {
        expect(await store.putRevision(rev1, alice, 'first plan')).toEqual({ created: true });
        expect(await store.putRevision(rev1, ci, 'again')).toEqual({ created: false });
        expect(await store.putRevision(build(shopInput()).revision, ci)).toEqual({ created: false });
        expect(await store.getRevision(rev1.id)).toEqual(rev1);
        const list = await store.listRevisions();
        expect(list).toEqual([
          { id: rev1.id, fleet: 'shop', createdAt: '2026-01-01T00:00:01.000Z', createdBy: 'alice', reason: 'first plan' },
        ]);
        const audit = await store.listAudit();
        expect(audit.map((e) => [e.action, e.subject, e.actor.id, e.reason])).toEqual([
          ['revision.create', rev1.id, 'alice', 'first plan'],
        ]);
        expect(audit[0]?.data).toEqual({ fleet: 'shop', clusters: 4 });
      });

      it('keeps several revisions in the order they were recorded, and returns undefined for an unknown id', async () => {
        await store.putRevision(rev1, alice);
        await store.putRevision(rev2, alice);
        expect((await store.listRevisions()).map((r) => r.id)).toEqual([rev1.id, rev2.id]);
        expect(await store.getRevision(rev2.id)).toEqual(rev2);
        expect(await store.getRevision('0000000000000000')).toBeUndefined();
      });

      it('keeps a revision compressed, and still reads one kept as plain JSON by an older store', async () => {
        await store.putRevision(rev1, alice);
        const [row] = await h.query(`SELECT content FROM revisions WHERE id = ${q(rev1.id)}`);
        const stored = String(row?.['content']);
        const json = revisionJson(rev1);
        expect(stored.startsWith('br1:')).toBe(true);
        expect(stored.length).toBeLessThan(json.length / 2); // four clusters already repeat themselves
        expect(await store.getRevision(rev1.id)).toEqual(rev1);
        // a row as schema version 5 wrote it: plain canonical JSON
        await h.exec(
          `INSERT INTO revisions (id, fleet, content, created_at, created_by, reason) VALUES (${q(rev2.id)}, 'shop', ${q(revisionJson(rev2))}, '2026-01-01T00:00:00.000Z', 'old', NULL)`,
        );
        expect(await store.getRevision(rev2.id)).toEqual(rev2);
        expect(await store.putRevision(rev2, alice)).toEqual({ created: false }); // same content: no conflict
      });

      it('refuses a revision whose id is already recorded with other content', async () => {
        await store.putRevision(rev1, alice);
        const forged = { ...rev2, id: rev1.id };
        await expectCode(store.putRevision(forged, alice), 'MERIDIAN_E_STORE_REVISION_CONFLICT');
        expect(await store.listAudit()).toHaveLength(1);
      });
    });

    describe('cluster states', () => {
      it('records what each cluster runs, replaces it on update, and audits both with what it was before', async () => {
        await store.putRevision(rev1, alice);
        await store.putRevision(rev2, alice);
        const s1 = rev1.clusters['eu-west-1'];
        const s2 = rev2.clusters['eu-west-1'];
        if (!s1 || !s2) throw new Error('fixture');
        await store.recordClusterState('eu-west-1', rev1.id, s1, 'healthy', ci, 'deployed');
        await store.recordClusterState('us-east-1', rev1.id, rev1.clusters['us-east-1'] ?? s1, 'healthy', ci);
        await store.recordClusterState('eu-west-1', rev2.id, s2, 'deploying', ci, 'wave canary');
        const states = await store.clusterStates();
        expect(Object.keys(states)).toEqual(['eu-west-1', 'us-east-1']);
        expect(states['eu-west-1']).toMatchObject({
          cluster: 'eu-west-1',
          revisionId: rev2.id,
          clusterHash: s2.hash,
          status: 'deploying',
          updatedBy: 'ci-bot',
        });
        expect(states['eu-west-1']?.state).toEqual(s2);
        expect(states['us-east-1']?.revisionId).toBe(rev1.id);
        const audit = (await store.listAudit()).filter((e) => e.action === 'cluster.state');
        expect(audit.map((e) => e.subject)).toEqual(['eu-west-1', 'us-east-1', 'eu-west-1']);
        expect(audit[2]?.data).toEqual({
          revision: rev2.id,
          clusterHash: s2.hash,
          status: 'deploying',
          from: { revision: rev1.id, status: 'healthy' },
        });
        expect(audit[2]?.reason).toBe('wave canary');
      });

      it('refuses a state for a revision that is not recorded, and writes nothing', async () => {
        const s = rev1.clusters['eu-west-1'];
        if (!s) throw new Error('fixture');
        await expectCode(store.recordClusterState('eu-west-1', rev1.id, s, 'healthy', ci), 'MERIDIAN_E_STORE_UNKNOWN_REVISION');
        expect(await store.clusterStates()).toEqual({});
        expect(await store.listAudit()).toEqual([]);
      });
    });

    describe('audit log', () => {
      it('appends entries that chain by hash, with time from the clock and who did it', async () => {
        const entries = await seed();
        expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(entries[0]?.prevHash).toBe(GENESIS_HASH);
        for (let i = 1; i < entries.length; i++) expect(entries[i]?.prevHash).toBe(entries[i - 1]?.hash);
        expect(entries[0]).toMatchObject({ at: '2026-01-01T00:00:01.000Z', actor: { id: 'alice', via: 'flag' }, reason: 'step 1' });
        const e = entries[1];
        if (!e) throw new Error('seed');
        expect(e.hash).toBe(entryHash(e.prevHash, e));
        expect(await store.listAudit()).toEqual(entries);
      });

      it('lists with limit, after a sequence number, and newest first', async () => {
        await seed();
        expect((await store.listAudit({ limit: 2 })).map((e) => e.seq)).toEqual([1, 2]);
        expect((await store.listAudit({ afterSeq: 3 })).map((e) => e.seq)).toEqual([4, 5]);
        expect((await store.listAudit({ newestFirst: true, limit: 2 })).map((e) => e.seq)).toEqual([5, 4]);
        expect((await store.listAudit({ afterSeq: 1, limit: 1 })).map((e) => e.seq)).toEqual([2]);
      });

      it('keeps data as JSON whatever its key order, and stores an absent reason and data as null', async () => {
        const e = await store.appendAudit({ actor: { id: 'bob' }, action: 'x.y', subject: 'z', data: { b: 1, a: { d: [1, 2], c: null } } });
        const [back] = await store.listAudit();
        expect(back).toEqual(e);
        expect(back?.actor).toEqual({ id: 'bob' });
        const bare = await store.appendAudit({ actor: { id: 'bob' }, action: 'x.y', subject: 'z' });
        expect(bare).toMatchObject({ reason: null, data: null });
        expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 2 });
      });

      it('verifies an empty log and a good one, and reports the head hash', async () => {
        expect(await store.verifyAudit()).toEqual({ ok: true, count: 0, headHash: GENESIS_HASH });
        const entries = await seed();
        expect(await store.verifyAudit()).toEqual({ ok: true, count: 5, headHash: entries[4]?.hash });
      });

      it('continues the same chain after the store is closed and opened again', async () => {
        const entries = await seed();
        await store.close();
        const again = await open(steppingClock('2026-02-01T00:00:00.000Z'));
        const next = await again.appendAudit({ actor: alice, action: 'test.more', subject: 's6' });
        expect(next).toMatchObject({ seq: 6, prevHash: entries[4]?.hash });
        expect(await again.verifyAudit()).toMatchObject({ ok: true, count: 6, headHash: next.hash });
      });

      it('refuses UPDATE and DELETE on the audit log through SQL (append-only guard)', async () => {
        await seed();
        await expect(h.exec("UPDATE audit_log SET reason = 'x' WHERE seq = 1")).rejects.toThrow(/append-only/);
        await expect(h.exec('DELETE FROM audit_log WHERE seq = 5')).rejects.toThrow(/append-only/);
        expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 5 });
      });
    });

    describe('tampering through the database is found and the entry named', () => {
      interface Case {
        name: string;
        tamper: (entries: AuditEntry[]) => Promise<void>;
        seq: number;
        problem: string;
        message: RegExp;
      }
      const forge = (seq: number, prevHash: string, over: Partial<AuditEntry> = {}): { sql: string } => {
        const body = {
          seq,
          at: '2026-01-01T00:00:09.000Z',
          actor: { id: 'mallory' },
          action: 'test.step',
          subject: 'forged',
          reason: null,
          data: { i: 99 },
          ...over,
        };
        const hash = over.hash ?? entryHash(prevHash, body);
        return {
          sql:
            `INSERT INTO audit_log (seq, at, actor, actor_via, action, subject, reason, data, prev_hash, hash) VALUES ` +
            `(${seq}, ${q(body.at)}, 'mallory', NULL, 'test.step', 'forged', NULL, '{"i":99}', ${q(prevHash)}, ${q(hash)})`,
        };
      };
      const cases: Case[] = [
        {
          name: 'data of an entry changed',
          tamper: () => h.exec(`UPDATE audit_log SET data = '{"i":3,"tags":["a"]}' WHERE seq = 3`),
          seq: 3,
          problem: 'edited',
          message: /entry 3 .*was edited/,
        },
        {
          name: 'actor of an entry changed',
          tamper: () => h.exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"),
          seq: 2,
          problem: 'edited',
          message: /entry 2/,
        },
        {
          name: 'time of the first entry changed',
          tamper: () => h.exec("UPDATE audit_log SET at = '2025-12-31T00:00:00.000Z' WHERE seq = 1"),
          seq: 1,
          problem: 'edited',
          message: /entry 1/,
        },
        {
          name: 'data replaced by something that is not JSON',
          tamper: () => h.exec("UPDATE audit_log SET data = '{oops' WHERE seq = 4"),
          seq: 4,
          problem: 'edited',
          message: /entry 4/,
        },
        {
          name: 'a middle entry deleted',
          tamper: () => h.exec('DELETE FROM audit_log WHERE seq = 3'),
          seq: 3,
          problem: 'deleted',
          message: /entry 3 is missing/,
        },
        {
          name: 'the first entry deleted',
          tamper: () => h.exec('DELETE FROM audit_log WHERE seq = 1'),
          seq: 1,
          problem: 'deleted',
          message: /entry 1 is missing/,
        },
        {
          name: 'the newest entry deleted',
          tamper: () => h.exec('DELETE FROM audit_log WHERE seq = 5'),
          seq: 5,
          problem: 'deleted',
          message: /entry 5 was deleted/,
        },
        {
          name: 'the two newest entries deleted',
          tamper: () => h.exec('DELETE FROM audit_log WHERE seq >= 4'),
          seq: 4,
          problem: 'deleted',
          message: /entries 4\.\.5 were deleted/,
        },
        {
          name: 'a forged entry appended with a valid link',
          tamper: (e) => h.exec(forge(6, e[4]?.hash ?? '').sql),
          seq: 6,
          problem: 'inserted',
          message: /entry 6 was added outside Meridian/,
        },
        {
          name: 'a forged entry appended with a made-up hash',
          tamper: (e) => h.exec(forge(6, e[4]?.hash ?? '', { hash: 'f'.repeat(64) }).sql),
          seq: 6,
          problem: 'edited',
          message: /entry 6/,
        },
        {
          name: 'a forged entry inserted in the middle (later entries renumbered)',
          tamper: async (e) => {
            await h.exec('UPDATE audit_log SET seq = -seq - 1 WHERE seq >= 3');
            await h.exec('UPDATE audit_log SET seq = -seq WHERE seq < 0');
            await h.exec(forge(3, e[1]?.hash ?? '').sql);
          },
          seq: 4, // the forged entry links correctly; the first entry that no longer follows is named
          problem: 'inserted',
          message: /entry 4 does not follow entry 3/,
        },
        {
          name: 'two entries swapped',
          tamper: async () => {
            await h.exec('UPDATE audit_log SET seq = -1 WHERE seq = 2');
            await h.exec('UPDATE audit_log SET seq = 2 WHERE seq = 3');
            await h.exec('UPDATE audit_log SET seq = 3 WHERE seq = -1');
          },
          seq: 2,
          problem: 'inserted',
          message: /entry 2 does not follow entry 1/,
        },
        {
          name: 'an entry rewritten and rehashed (but not the ones after it)',
          tamper: async (e) => {
            const x = e[2];
            if (!x) throw new Error('seed');
            const hash = entryHash(x.prevHash, { ...x, reason: 'nothing to see' });
            await h.exec(`UPDATE audit_log SET reason = 'nothing to see', hash = ${q(hash)} WHERE seq = 3`);
          },
          seq: 4,
          problem: 'inserted',
          message: /entry 4 does not follow entry 3/,
        },
        {
          name: 'the newest entry rewritten and rehashed',
          tamper: async (e) => {
            const x = e[4];
            if (!x) throw new Error('seed');
            const hash = entryHash(x.prevHash, { ...x, subject: 'other' });
            await h.exec(`UPDATE audit_log SET subject = 'other', hash = ${q(hash)} WHERE seq = 5`);
          },
          seq: 5,
          problem: 'anchor',
          message: /head anchor names/,
        },
        {
          name: 'the head anchor deleted',
          tamper: () => h.exec('DELETE FROM audit_head'),
          seq: 5,
          problem: 'anchor',
          message: /anchor is missing/,
        },
      ];

      for (const c of cases) {
        it(c.name, async () => {
          const entries = await seed();
          await h.dropAuditGuards();
          await c.tamper(entries);
          const v = await store.verifyAudit();
          expect(v.ok).toBe(false);
          if (v.ok) return;
          expect({ seq: v.seq, problem: v.problem }).toEqual({ seq: c.seq, problem: c.problem });
          expect(v.message).toMatch(c.message);
        });
      }

      it('does not catch someone who rewrites every later hash and the anchor: only the head hash printed elsewhere does', async () => {
        const entries = await seed();
        const printed = (await store.verifyAudit()) as { headHash: string };
        await h.dropAuditGuards();
        let prev = entries[1]?.hash ?? '';
        for (const e of entries.slice(2)) {
          const changed = { ...e, prevHash: prev, reason: e.seq === 3 ? 'rewritten' : e.reason };
          const hash = entryHash(prev, changed);
          await h.exec(
            `UPDATE audit_log SET reason = ${q(changed.reason ?? '')}, prev_hash = ${q(prev)}, hash = ${q(hash)} WHERE seq = ${e.seq}`,
          );
          prev = hash;
        }
        await h.exec(`UPDATE audit_head SET hash = ${q(prev)} WHERE id = 1`);
        const v = await store.verifyAudit();
        expect(v.ok).toBe(true); // the documented limit of a chain kept inside the same database
        expect(v.headHash).not.toBe(printed.headHash); // what an external anchor (the CI log) catches
      });

      it('refuses to append when the head anchor is gone, instead of starting a second chain', async () => {
        await seed();
        await h.exec('DELETE FROM audit_head');
        await expectCode(store.appendAudit({ actor: alice, action: 'x', subject: 'y' }), 'MERIDIAN_E_STORE_AUDIT_ANCHOR_MISSING');
        expect(await h.query('SELECT seq FROM audit_log')).toHaveLength(5);
      });
    });

    describe('transactions', () => {
      it('lands a change and its audit entries together', async () => {
        const s = rev1.clusters['eu-west-1'];
        if (!s) throw new Error('fixture');
        await store.withTransaction(async (tx) => {
          await tx.putRevision(rev1, alice, 'plan');
          await tx.recordClusterState('eu-west-1', rev1.id, s, 'planned', alice);
          await tx.appendAudit({ actor: alice, action: 'plan.create', subject: rev1.id });
        });
        expect((await store.listAudit()).map((e) => e.action)).toEqual(['revision.create', 'cluster.state', 'plan.create']);
        expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 3 });
      });

      it('leaves no revision, state or audit entry when the work throws mid-way', async () => {
        const s = rev1.clusters['eu-west-1'];
        if (!s) throw new Error('fixture');
        await store.appendAudit({ actor: alice, action: 'before', subject: 'x' });
        await expect(
          store.withTransaction(async (tx) => {
            await tx.putRevision(rev1, alice);
            await tx.recordClusterState('eu-west-1', rev1.id, s, 'planned', alice);
            throw new Error('the pipeline was cancelled');
          }),
        ).rejects.toThrow('the pipeline was cancelled');
        expect(await store.listRevisions()).toEqual([]);
        expect(await store.clusterStates()).toEqual({});
        expect((await store.listAudit()).map((e) => e.action)).toEqual(['before']);
        expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 1 });
        const next = await store.appendAudit({ actor: alice, action: 'after', subject: 'x' });
        expect(next.seq).toBe(2);
      });

      it('refuses a call to the store itself inside its own transaction (it would wait forever)', async () => {
        await expect(store.withTransaction(() => store.appendAudit({ actor: alice, action: 'x', subject: 'y' }))).rejects.toThrow(
          /use the `tx` argument/,
        );
        expect(await store.listAudit()).toEqual([]);
      });
    });

    describe('rollouts, events, approvals and locks', () => {
      const rollout = (id: string, over: Partial<RolloutRecord> = {}): RolloutRecord => ({
        id,
        fleet: 'shop',
        kind: 'rollout',
        services: ['web', 'api'],
        planHash: 'p'.repeat(64),
        fromRevision: 'rev-a',
        toRevision: 'rev-b',
        author: 'alice',
        state: 'running',
        wave: 0,
        step: null,
        machine: { phase: { kind: 'deploy', wave: 0, batch: 0 }, touched: [] },
        spec: { waves: [{ name: 'canary' }] },
        control: null,
        createdAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
        finishedAt: null,
        ...over,
      });

      it('records a rollout, reads it back with its JSON intact, updates its running columns, and lists newest first', async () => {
        await store.insertRollout(rollout('r1'));
        await store.insertRollout(rollout('r2', { fleet: 'other', createdAt: '2026-01-02T00:00:00.000Z' }));
        await store.insertRollout(rollout('r3', { createdAt: '2026-01-03T00:00:00.000Z', state: 'promoted' }));
        expect(await store.getRollout('r1')).toEqual(rollout('r1', { services: ['api', 'web'] }));
        await store.updateRollout('r1', {
          state: 'paused',
          wave: 1,
          step: 2,
          machine: { phase: { kind: 'paused' }, touched: ['eu-west-1'] },
          control: { action: 'resume', actor: 'bob' },
          updatedAt: '2026-01-01T00:00:05.000Z',
        });
        expect(await store.getRollout('r1')).toMatchObject({
          state: 'paused',
          wave: 1,
          step: 2,
          machine: { phase: { kind: 'paused' }, touched: ['eu-west-1'] },
          control: { action: 'resume', actor: 'bob' },
          updatedAt: '2026-01-01T00:00:05.000Z',
          finishedAt: null,
        });
        await store.updateRollout('r1', { control: null, step: null });
        expect(await store.getRollout('r1')).toMatchObject({ control: null, step: null });
        expect((await store.listRollouts()).map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
        expect((await store.listRollouts({ fleet: 'shop' })).map((r) => r.id)).toEqual(['r3', 'r1']);
        expect((await store.listRollouts({ fleet: 'shop', active: true })).map((r) => r.id)).toEqual(['r1']);
        expect((await store.listRollouts({ limit: 1 })).map((r) => r.id)).toEqual(['r3']);
        expect(await store.getRollout('nope')).toBeUndefined();
      });

      it('refuses a second rollout with the same id, and an update of one that does not exist', async () => {
        await store.insertRollout(rollout('r1'));
        await expectCode(store.insertRollout(rollout('r1', { author: 'mallory' })), 'MERIDIAN_E_STORE_ROLLOUT_EXISTS');
        expect((await store.getRollout('r1'))?.author).toBe('alice');
        await expectCode(store.updateRollout('ghost', { state: 'paused' }), 'MERIDIAN_E_STORE_UNKNOWN_ROLLOUT');
      });

      it("numbers each rollout's events from 1, keeps them in order, and refuses to edit or delete them", async () => {
        await store.insertRollout(rollout('r1'));
        await store.insertRollout(rollout('r2'));
        const a = await store.appendRolloutEvent({ rolloutId: 'r1', at: 't1', type: 'created', actor: 'alice', data: { b: 1, a: [1] } });
        await store.appendRolloutEvent({ rolloutId: 'r2', at: 't1', type: 'created', actor: 'bob', data: null });
        const b = await store.appendRolloutEvent({ rolloutId: 'r1', at: 't2', type: 'canary-ready', actor: 'alice', data: {} });
        expect([a.seq, b.seq]).toEqual([1, 2]);
        expect(await store.listRolloutEvents('r1')).toEqual([a, b]);
        expect(await store.listRolloutEvents('r1', { afterSeq: 1 })).toEqual([b]);
        expect((await store.listRolloutEvents('r2')).map((e) => [e.seq, e.actor, e.data])).toEqual([[1, 'bob', null]]);
        await expect(h.exec("UPDATE rollout_events SET type = 'forged' WHERE seq = 1")).rejects.toThrow(/append-only/);
        await expect(h.exec('DELETE FROM rollout_events')).rejects.toThrow(/append-only/);
        expect(await store.listRolloutEvents('r1')).toHaveLength(2);
      });

      it('keeps approvals per plan hash and wave, append-only', async () => {
        const base = { planHash: 'h1', rolloutId: 'r1', wave: 'europe', role: 'release-manager', reason: null, at: 't1', expiresAt: 't9' };
        const one = await store.addApproval({ ...base, actor: 'bob', decision: 'approve' });
        const two = await store.addApproval({ ...base, actor: 'carol', decision: 'reject', reason: 'not today', rolloutId: null });
        await store.addApproval({ ...base, planHash: 'h2', actor: 'dave', decision: 'approve' });
        await store.addApproval({ ...base, wave: 'rest', actor: 'erin', decision: 'approve' });
        expect(two.id).toBe(one.id + 1);
        expect(await store.listApprovals('h1', 'europe')).toEqual([one, two]);
        expect((await store.listApprovals('h1')).map((a) => a.actor)).toEqual(['bob', 'carol', 'erin']);
        expect(await store.listApprovals('h3')).toEqual([]);
        await expect(h.exec("UPDATE approvals SET actor = 'alice'")).rejects.toThrow(/append-only/);
        await expect(h.exec('DELETE FROM approvals')).rejects.toThrow(/append-only/);
      });

      it('creates, replaces and releases locks by key; a lock taken in a failed transaction is not there', async () => {
        const lock = (key: string, over: Partial<LockRecord> = {}): LockRecord => ({
          key,
          rolloutId: 'r1',
          actor: 'alice',
          host: 'ci-1',
          pid: 4242,
          token: 'tok',
          acquiredAt: 't1',
          heartbeatAt: 't1',
          ...over,
        });
        await store.putLock(lock('shop/web'));
        await store.putLock(lock('shop/api', { pid: null, token: null }));
        expect(await store.listLocks()).toEqual([lock('shop/api', { pid: null, token: null }), lock('shop/web')]);
        await store.putLock(lock('shop/web', { rolloutId: 'r2', actor: 'bob', heartbeatAt: 't2' }));
        expect(await store.listLocks(['shop/web', 'shop/none'])).toEqual([
          lock('shop/web', { rolloutId: 'r2', actor: 'bob', heartbeatAt: 't2' }),
        ]);
        expect(await store.listLocks([])).toEqual([]);
        await expect(
          store.withTransaction(async (tx) => {
            await tx.putLock(lock('shop/payments'));
            throw new Error('crashed before commit');
          }),
        ).rejects.toThrow('crashed before commit');
        expect(await store.listLocks(['shop/payments'])).toEqual([]);
        expect(await store.releaseLocks('r1')).toBe(1);
        expect((await store.listLocks()).map((l) => l.key)).toEqual(['shop/web']);
      });

      it('lets exactly one of two stores take a free lock when both check and take it in a transaction at once', async () => {
        const other = await open();
        const take = (s: Store, rolloutId: string) =>
          s
            .withTransaction(async (tx) => {
              const held = await tx.listLocks(['shop/web']);
              if (held.length > 0) throw new Error(`held by ${held[0]?.rolloutId}`);
              await tx.putLock({
                key: 'shop/web',
                rolloutId,
                actor: rolloutId,
                host: 'h',
                pid: 1,
                token: rolloutId,
                acquiredAt: 't',
                heartbeatAt: 't',
              });
              return rolloutId;
            })
            .then(
              (id) => ({ ok: id }),
              (err: Error) => ({ refused: err.message }),
            );
        const results = await Promise.all([take(store, 'ra'), take(other, 'rb'), take(store, 'rc'), take(other, 'rd')]);
        const winners = results.filter((r) => 'ok' in r);
        expect(winners).toHaveLength(1);
        const winner = (winners[0] as { ok: string }).ok;
        expect(results.filter((r) => 'refused' in r).map((r) => (r as { refused: string }).refused)).toEqual([
          `held by ${winner}`,
          `held by ${winner}`,
          `held by ${winner}`,
        ]);
        expect((await other.listLocks()).map((l) => l.rolloutId)).toEqual([winner]);
      });
    });

    describe('data-migration ledger', () => {
      it('keeps one row per fleet, region, service and migration; replaces it; rolls back with its transaction', async () => {
        const row = {
          fleet: 'shop',
          region: 'eu',
          service: 'web',
          name: 'add-col',
          phase: 'expand' as const,
          status: 'running' as const,
          rolloutId: 'ro-1',
          updatedAt: '2026-01-01T00:00:00.000Z',
          appliedAt: null,
        };
        await store.putDataMigration(row);
        await store.putDataMigration({ ...row, region: 'us' });
        await store.putDataMigration({ ...row, fleet: 'other' });
        await store.putDataMigration({ ...row, status: 'applied', appliedAt: '2026-01-01T00:00:01.000Z' });
        expect(await store.listDataMigrations('shop')).toEqual([
          { ...row, status: 'applied', appliedAt: '2026-01-01T00:00:01.000Z' },
          { ...row, region: 'us' },
        ]);
        await expect(
          store.withTransaction(async (tx) => {
            await tx.putDataMigration({ ...row, status: 'reverted', rolloutId: 'ro-2' });
            throw new Error('the transition failed');
          }),
        ).rejects.toThrow('the transition failed');
        expect((await store.listDataMigrations('shop'))[0]).toMatchObject({ status: 'applied', rolloutId: 'ro-1' });
        expect(await store.listDataMigrations('none')).toEqual([]);
      });
    });

    describe('concurrency', () => {
      it('keeps one unbroken chain when two stores on the same database append at once', async () => {
        const other = await open(steppingClock('2026-03-01T00:00:00.000Z'));
        const n = 40;
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < n; i++) {
          writes.push(store.appendAudit({ actor: alice, action: 'a.write', subject: `a${i}` }));
          writes.push(other.appendAudit({ actor: ci, action: 'b.write', subject: `b${i}` }));
          if (i % 10 === 0) {
            writes.push(store.putRevision(rev1, alice));
            writes.push(other.putRevision(rev1, ci));
          }
        }
        await Promise.all(writes);
        const v = await other.verifyAudit();
        expect(v).toMatchObject({ ok: true, count: 2 * n + 1 }); // one revision.create, however many tried
        const all = await store.listAudit();
        expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 2 * n + 1 }, (_, i) => i + 1));
        expect(all.filter((e) => e.action === 'revision.create')).toHaveLength(1);
      });

      it('runs concurrent transactions of one store one after the other', async () => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.withTransaction(async (tx) => {
              const a = await tx.appendAudit({ actor: alice, action: 'pair.first', subject: `t${i}` });
              const b = await tx.appendAudit({ actor: alice, action: 'pair.second', subject: `t${i}` });
              return [a.seq, b.seq];
            }),
          ),
        );
        for (const [a, b] of results) expect(b).toBe((a ?? 0) + 1); // never interleaved
        expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 20 });
      });
    });
  });
}
