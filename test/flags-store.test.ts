/**
 * Flag settings in both store backends (SQLite in a temp file, PostgreSQL at 127.0.0.1:5432 in a schema
 * of its own): set, replace, reset, per fleet; every change audited with its actor, the chain intact.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../src/store/postgres-store.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { Clock, Store } from '../src/store/store.js';

const PG_URL = process.env['MERIDIAN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const dir = mkdtempSync(join(tmpdir(), 'meridian-flags-store-'));
const schema = `mrd_flags_${process.pid}_${Date.now().toString(36)}`;
const alice = { id: 'alice', via: 'flag' };
const bob = { id: 'bob', via: 'MERIDIAN_ACTOR' };

function clock(): Clock {
  let t = Date.parse('2026-11-26T12:00:00.000Z');
  return () => new Date((t += 1000));
}

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

describe.each([
  ['sqlite', (): Promise<Store> => openSqliteStore(join(dir, 'state.db'), { clock: clock() })],
  ['postgres', (): Promise<Store> => openPostgresStore(PG_URL, { schema, clock: clock() })],
])('flag settings on %s', (_backend, open) => {
  it('sets, replaces and resets settings per fleet, auditing each change with its actor', async () => {
    const store = await open();
    try {
      expect(await store.listFlagSettings('shop')).toEqual([]);
      const first = await store.setFlag(
        {
          fleet: 'shop',
          flag: 'new-checkout',
          region: 'eu-west',
          enabled: true,
          percent: 12.5,
          was: { enabled: true, percent: 20, source: 'fleet' },
        },
        alice,
        'ramp down',
      );
      expect(first).toEqual({
        fleet: 'shop',
        flag: 'new-checkout',
        region: 'eu-west',
        enabled: true,
        percent: 12.5,
        updatedAt: '2026-11-26T12:00:01.000Z',
        updatedBy: 'alice',
      });
      await store.setFlag({ fleet: 'shop', flag: 'new-checkout', region: 'eu-west', enabled: false, percent: 12.5 }, bob);
      await store.setFlag({ fleet: 'shop', flag: 'beta', region: 'us-east', enabled: true, percent: 100 }, bob);
      await store.setFlag({ fleet: 'other', flag: 'beta', region: 'us-east', enabled: false, percent: 0 }, bob);
      const list = await store.listFlagSettings('shop');
      expect(list.map((s) => [s.flag, s.region, s.enabled, s.percent, s.updatedBy])).toEqual([
        ['beta', 'us-east', true, 100, 'bob'],
        ['new-checkout', 'eu-west', false, 12.5, 'bob'],
      ]);
      expect(await store.resetFlag('shop', 'new-checkout', 'eu-west', alice, 'incident over')).toBe(true);
      expect(await store.resetFlag('shop', 'new-checkout', 'eu-west', alice)).toBe(false);
      expect((await store.listFlagSettings('shop')).map((s) => s.flag)).toEqual(['beta']);
      expect(await store.listFlagSettings('other')).toHaveLength(1);

      const audit = await store.listAudit();
      expect(audit.map((e) => [e.action, e.subject, e.actor.id])).toEqual([
        ['flag.set', 'shop/new-checkout/eu-west', 'alice'],
        ['flag.set', 'shop/new-checkout/eu-west', 'bob'],
        ['flag.set', 'shop/beta/us-east', 'bob'],
        ['flag.set', 'other/beta/us-east', 'bob'],
        ['flag.reset', 'shop/new-checkout/eu-west', 'alice'],
      ]);
      expect(audit[0]?.reason).toBe('ramp down');
      expect(audit[0]?.data).toMatchObject({ enabled: true, percent: 12.5, was: { enabled: true, percent: 20, source: 'fleet' } });
      expect(audit[4]?.data).toMatchObject({ was: { enabled: false, percent: 12.5, updatedBy: 'bob' } });
      expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 5 });
    } finally {
      await store.close();
    }
  });

  it('writes nothing when a transaction with a flag change fails', async () => {
    const store = await open();
    try {
      const before = (await store.listAudit()).length;
      await expect(
        store.withTransaction(async (tx) => {
          await tx.setFlag({ fleet: 'shop', flag: 'beta', region: 'eu-west', enabled: false, percent: 100 }, alice);
          throw new Error('second region refused');
        }),
      ).rejects.toThrow('second region refused');
      expect((await store.listFlagSettings('shop')).some((s) => s.region === 'eu-west')).toBe(false);
      expect(await store.listAudit()).toHaveLength(before);
    } finally {
      await store.close();
    }
  });
});
