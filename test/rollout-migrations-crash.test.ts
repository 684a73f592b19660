/**
 * Data migrations and a driver that dies: `meridian rollout` (a real child process, from source) runs the
 * tiny fleet's expand migration with psql against real PostgreSQL (a schema per region), is SIGKILLed
 * right after the `migrated` transition (before the canary), and `--resume` finishes without running
 * `up` again — the up log holds one row per region. The clusters are the in-memory fleet of
 * test/rollout-fleet-kit.ts behind the real control API.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { pgRegions, withMigration } from './support/migrations-pg-kit.js';
import { base, eventLog, FAST, fleet, meridian } from './support/rollout-fleet-kit.js';

afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('data migrations: crash between up and the canary', () => {
  it('SIGKILL right after `migrated`, then --resume: up ran once per region, the rollout promoted, the ledger says applied', async () => {
    const db = await pgRegions('crash', ['eu', 'us']);
    const f = await fleet('migrations-crash', withMigration(db));
    try {
      const crashed = await meridian(f, ['rollout', 'fleet', ...FAST], { MERIDIAN_TEST_CRASH_AT: '2' }).done;
      expect(crashed.signal, crashed.err).toBe('SIGKILL');
      expect((await eventLog(f)).map((e) => e.type)).toEqual(['created', 'migrated']);
      expect(await db.ups()).toEqual(['eu']);
      expect(f.driver.running('local-a', 'canary')).toEqual({}); // killed before the canary

      const resumed = await meridian(f, ['rollout', '--resume', ...FAST]).done;
      expect(resumed.code, resumed.err).toBe(0);
      const log = await eventLog(f);
      expect(log.filter((e) => e.type === 'migrated').map((e) => (e.data as { migration: string }).migration)).toEqual([
        'eu/web/add-order-note',
        'us/web/add-order-note',
      ]);
      // eu's up ran before the crash and not again; us's before the canary of [local-b, local-c]
      expect(await db.ups()).toEqual(['eu', 'us']);
      const types = log.map((e) => e.type);
      const us = types.indexOf('migrated', 2);
      expect([types[us - 1], types[us + 1]]).toEqual(['promoted', 'canary-ready']); // after wave canary, before [local-b, local-c]
      for (const schema of Object.values(db.schemas)) {
        const cols = await db.query(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = '${schema}' AND table_name = 'orders'`,
        );
        expect(cols.map((c) => c['column_name'])).toContain('note');
      }
      const store = await openSqliteStore(f.state);
      try {
        const [r] = await store.listRollouts({ limit: 1 });
        expect(r?.state).toBe('promoted');
        const ledger = await store.listDataMigrations('tiny');
        expect(ledger.map((m) => [m.region, m.name, m.status, m.rolloutId])).toEqual([
          ['eu', 'add-order-note', 'applied', r?.id],
          ['us', 'add-order-note', 'applied', r?.id],
        ]);
        expect((await store.verifyAudit()).ok).toBe(true);
      } finally {
        await store.close();
      }

      // the next rollout finds both applied: nothing runs again
      const again = await meridian(f, ['rollout', 'fleet', ...FAST]).done;
      expect(again.code, again.err).toBe(0);
      expect(await db.ups()).toEqual(['eu', 'us']);
    } finally {
      await f.api.close();
      await db.dispose();
    }
  }, 180_000);
});
