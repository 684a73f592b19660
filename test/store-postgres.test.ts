/**
 * The store contract against a real PostgreSQL (127.0.0.1:5432, trust auth; `scripts/ensure-postgres.sh`
 * starts one). Every test gets its own schema, dropped afterwards. An unreachable server fails the run.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeridianError } from '../src/errors.js';
import { MIGRATIONS } from '../src/store/migrations.js';
import { openStore } from '../src/store/open-store.js';
import { openPostgresStore } from '../src/store/postgres-store.js';
import { storeContract } from './store.contract.js';

const URL_ = process.env['MERIDIAN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const run = `mrd_test_${process.pid}_${Date.now().toString(36)}`;
let n = 0;
let admin: pg.Client | undefined;

async function sql(text: string): Promise<pg.QueryResult> {
  if (!admin) throw new Error('not connected');
  return admin.query(text);
}

beforeAll(async () => {
  const client = new pg.Client({ connectionString: URL_, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${URL_} (${(err as Error).message}). These tests need it and do not skip: ` +
        'start it with `bash scripts/ensure-postgres.sh`, or set MERIDIAN_TEST_PG_URL.',
    );
  }
  admin = client;
});

afterAll(async () => {
  if (!admin) return;
  const left = await sql(`SELECT nspname FROM pg_namespace WHERE nspname LIKE '${run}%'`);
  for (const r of left.rows as { nspname: string }[]) await sql(`DROP SCHEMA "${r.nspname}" CASCADE`);
  await admin.end();
});

storeContract('postgres', async () => {
  const schema = `${run}_${++n}`;
  const raw = new pg.Client({ connectionString: URL_, options: `-c search_path=${schema}` });
  await raw.connect();
  return {
    open: (opts = {}) => openPostgresStore(URL_, { ...opts, schema }),
    exec: async (text) => void (await raw.query(text)),
    query: async (text) => (await raw.query(text)).rows as Record<string, unknown>[],
    dropAuditGuards: async () => {
      await raw.query('DROP TRIGGER audit_log_append_only ON audit_log');
      await raw.query('DROP TRIGGER audit_log_no_truncate ON audit_log');
    },
    dispose: async () => {
      await raw.end();
      await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
});

async function errorOf(p: Promise<unknown>): Promise<MeridianError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MeridianError);
  return err as MeridianError;
}

describe('postgres store', () => {
  it('is opened by openStore from a postgres:// URL with ?schema=, and creates the schema', async () => {
    const schema = `${run}_${++n}`;
    const store = await openStore(`${URL_}?schema=${schema}`);
    try {
      expect(store.backend).toBe('postgres');
      expect(store.location).toBe(`postgres://postgres@127.0.0.1:5432/test (schema ${schema})`);
      await store.appendAudit({ actor: { id: 'alice' }, action: 'a', subject: 'b' });
      const rows = await sql(`SELECT count(*)::int AS c FROM "${schema}".audit_log`);
      expect(rows.rows[0]).toEqual({ c: 1 });
      const m = await sql(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
      expect(m.rows.map((r: { version: number }) => r.version)).toEqual(MIGRATIONS.map((x) => x.version));
    } finally {
      await store.close();
    }
  });

  it('never shows the password in messages', async () => {
    const err = await errorOf(openPostgresStore('postgres://postgres:s3cret@127.0.0.1:1/test', { connectTimeoutMs: 2000 }));
    expect(err.message).not.toContain('s3cret');
    expect(err.message).toContain('postgres://postgres:***@127.0.0.1:1/test');
  });

  it('says the database is unreachable, with how to check it', async () => {
    const err = await errorOf(openPostgresStore('postgres://postgres@127.0.0.1:1/test', { connectTimeoutMs: 2000 }));
    expect(err.code).toBe('MERIDIAN_E_STORE_UNREACHABLE');
    expect(err.hint).toMatch(/pg_isready/);
  });

  it('says when the database does not exist', async () => {
    const err = await errorOf(openPostgresStore('postgres://postgres@127.0.0.1:5432/no_such_db_meridian'));
    expect(err.code).toBe('MERIDIAN_E_STORE_OPEN');
    expect(err.hint).toMatch(/createdb/);
  });

  it('refuses a schema name that could not be used safely', async () => {
    const err = await errorOf(openPostgresStore(URL_, { schema: 'x"; DROP TABLE y; --' }));
    expect(err.code).toBe('MERIDIAN_E_STORE_CONFIG');
  });

  it('opens read-only: reads work, writes are refused', async () => {
    const schema = `${run}_${++n}`;
    const w = await openPostgresStore(URL_, { schema });
    await w.appendAudit({ actor: { id: 'alice' }, action: 'a', subject: 'b' });
    await w.close();
    const ro = await openPostgresStore(URL_, { schema, readonly: true });
    try {
      expect(await ro.verifyAudit()).toMatchObject({ ok: true, count: 1 });
      expect((await errorOf(ro.appendAudit({ actor: { id: 'alice' }, action: 'a', subject: 'c' }))).code).toBe(
        'MERIDIAN_E_STORE_READ_ONLY',
      );
    } finally {
      await ro.close();
    }
  });

  it('migrates once when several stores open a new schema at the same time', async () => {
    const schema = `${run}_${++n}`;
    const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore(URL_, { schema })));
    const m = await sql(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
    expect(m.rows.map((r: { version: number }) => r.version)).toEqual(MIGRATIONS.map((x) => x.version));
    await Promise.all(stores.map((s, i) => s.appendAudit({ actor: { id: `w${i}` }, action: 'a', subject: 'b' })));
    expect(await stores[0]?.verifyAudit()).toMatchObject({ ok: true, count: 4 });
    for (const s of stores) await s.close();
  });

  it('makes a writer wait for another machine holding the write lock, and gives up with BUSY after the lock timeout', async () => {
    const schema = `${run}_${++n}`;
    const store = await openPostgresStore(URL_, { schema, lockTimeoutMs: 300 });
    const other = new pg.Client({ connectionString: URL_ });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT pg_advisory_xact_lock(hashtext('meridian'), hashtext('${schema}'))`);
      const err = await errorOf(store.appendAudit({ actor: { id: 'alice' }, action: 'a', subject: 'b' }));
      expect(err.code).toBe('MERIDIAN_E_STORE_BUSY');
      const waiting = store.appendAudit({ actor: { id: 'alice' }, action: 'a', subject: 'c' });
      await new Promise((r) => setTimeout(r, 100));
      await other.query('COMMIT'); // the other machine finishes: the waiting writer goes ahead
      expect((await waiting).seq).toBe(1);
      expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 1 });
    } finally {
      await other.end();
      await store.close();
    }
  });
});
