import { randomBytes } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { MeridianError } from '../src/errors.js';
import { revisionJson } from '../src/render/render.js';
import { LATEST_VERSION, MIGRATIONS } from '../src/store/migrations.js';
import { openStore, resolveStoreSpec } from '../src/store/open-store.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { resolveActor } from '../src/store/store.js';
import { build, shopInput, steppingClock } from './support/plan-fixtures.js';
import { storeContract } from './store.contract.js';

const root = mkdtempSync(join(tmpdir(), 'meridian-store-'));
let n = 0;
const fresh = (): string => join(root, `t${++n}`, 'state.db');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

storeContract('sqlite', () => {
  const file = fresh();
  let raw: Database.Database | undefined;
  const rawDb = (): Database.Database => (raw ??= new Database(file));
  return Promise.resolve({
    open: (opts = {}) => openSqliteStore(file, opts),
    exec: async (sql) => void rawDb().exec(sql),
    query: async (sql) => rawDb().prepare(sql).all() as Record<string, unknown>[],
    dropAuditGuards: async () => void rawDb().exec('DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete'),
    dispose: async () => void raw?.close(),
  });
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (err instanceof MeridianError) return err.code;
    throw err;
  }
}

/**
 * Makes a file or directory read-only for this process. root ignores permission bits, so as root the
 * immutable attribute is used (the test fails, rather than skips, where that is not possible).
 */
function makeReadOnly(path: string, dir: boolean): () => void {
  if (process.getuid?.() === 0) {
    try {
      execFileSync('chattr', ['+i', path], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`cannot make ${path} read-only as root here (chattr +i failed: ${String(err)}); run the tests as a non-root user`);
    }
    return () => execFileSync('chattr', ['-i', path]);
  }
  chmodSync(path, dir ? 0o555 : 0o444);
  return () => chmodSync(path, dir ? 0o755 : 0o644);
}

describe('sqlite store', () => {
  const alice = { id: 'alice' };

  it('uses WAL, a busy timeout and the full migration list', async () => {
    const file = fresh();
    const store = await openSqliteStore(file);
    await store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    db.close();
    const again = await openSqliteStore(file); // nothing to apply the second time
    await again.close();
    const db2 = new Database(file, { readonly: true });
    expect(db2.prepare('SELECT count(*) AS c FROM schema_migrations').get()).toEqual({ c: LATEST_VERSION });
    db2.close();
  });

  it('refuses a store written by a newer meridian, and one whose migrations differ', async () => {
    const file = fresh();
    await (await openSqliteStore(file)).close();
    const db = new Database(file);
    db.prepare("INSERT INTO schema_migrations VALUES (?, 'from-the-future', '2027-01-01T00:00:00Z')").run(LATEST_VERSION + 1);
    expect(await codeOf(openSqliteStore(file))).toBe('MERIDIAN_E_STORE_SCHEMA_TOO_NEW');
    db.prepare('DELETE FROM schema_migrations WHERE version = ?').run(LATEST_VERSION + 1);
    db.prepare("UPDATE schema_migrations SET name = 'something-else' WHERE version = 1").run();
    db.close();
    expect(await codeOf(openSqliteStore(file))).toBe('MERIDIAN_E_STORE_MIGRATION_MISMATCH');
  });

  it('opens the default file .meridian/state.db under the working directory, or MERIDIAN_STATE', async () => {
    const cwd = join(root, `cwd${++n}`);
    mkdirSync(cwd);
    const store = await openStore(undefined, { cwd, env: {} });
    expect(store.backend).toBe('sqlite');
    await store.close();
    expect(existsSync(join(cwd, '.meridian', 'state.db'))).toBe(true);
    expect(resolveStoreSpec(undefined, { cwd, env: { MERIDIAN_STATE: 'other/s.db' } })).toEqual({
      kind: 'sqlite',
      path: join(cwd, 'other', 's.db'),
    });
    expect(resolveStoreSpec('x.db', { cwd, env: { MERIDIAN_STATE: 'other/s.db' } })).toEqual({ kind: 'sqlite', path: join(cwd, 'x.db') });
    expect(resolveStoreSpec('postgres://u@db:5432/m?schema=x', { env: {} })).toEqual({
      kind: 'postgres',
      url: 'postgres://u@db:5432/m?schema=x',
    });
    expect(resolveStoreSpec(undefined, { env: { MERIDIAN_STATE: 'postgresql://db/m' } }).kind).toBe('postgres');
  });

  it('says clearly when the state file is read-only, and writes nothing', async () => {
    const file = fresh();
    const store = await openSqliteStore(file, { clock: steppingClock() });
    await store.appendAudit({ actor: alice, action: 'a', subject: 'b' });
    await store.close();
    const undo = makeReadOnly(file, false);
    try {
      const ro = await openSqliteStore(file);
      expect(await ro.verifyAudit()).toMatchObject({ ok: true, count: 1 }); // reading still works
      const err = await ro.putRevision(build(shopInput()).revision, alice).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MeridianError);
      expect((err as MeridianError).code).toBe('MERIDIAN_E_STORE_READ_ONLY');
      expect((err as MeridianError).message).toContain('read-only; nothing was written');
      expect((err as MeridianError).hint).toMatch(/writable/);
      expect(await ro.listRevisions()).toEqual([]);
      await ro.close();
    } finally {
      undo();
    }
  });

  it('says clearly when the state directory is read-only', async () => {
    const dir = join(root, `ro${++n}`);
    mkdirSync(dir);
    const undo = makeReadOnly(dir, true);
    try {
      const err = await openSqliteStore(join(dir, 'state.db')).catch((e: unknown) => e);
      expect((err as MeridianError).code).toBe('MERIDIAN_E_STORE_READ_ONLY');
      expect((err as MeridianError).message).toMatch(/directory of the state file .* is read-only/);
      expect((err as MeridianError).hint).toMatch(/make its directory writable/);
      expect(existsSync(join(dir, 'state.db'))).toBe(false);
      expect(await codeOf(openSqliteStore(join(dir, 'sub', 'state.db')))).toBe('MERIDIAN_E_STORE_OPEN');
    } finally {
      undo();
    }
  });

  it('reads a store on a read-only volume when opened read-only, and refuses to open it for writing', async () => {
    const file = fresh();
    const w = await openSqliteStore(file, { clock: steppingClock() });
    await w.appendAudit({ actor: alice, action: 'a', subject: 'b' });
    await w.close();
    const undo = makeReadOnly(join(file, '..'), true);
    try {
      const ro = await openSqliteStore(file, { readonly: true });
      expect(await ro.verifyAudit()).toMatchObject({ ok: true, count: 1 });
      expect(await codeOf(ro.appendAudit({ actor: alice, action: 'a', subject: 'c' }))).toBe('MERIDIAN_E_STORE_READ_ONLY');
      await ro.close();
      expect(await codeOf(openSqliteStore(file))).toBe('MERIDIAN_E_STORE_READ_ONLY');
    } finally {
      undo();
    }
  });

  it('reads a store one upgrade behind when opened read-only, if this binary can read it unmigrated', async () => {
    const file = fresh();
    const rev = build(shopInput()).revision;
    await (await openSqliteStore(file, { clock: steppingClock() })).close();
    // as schema version 5 left it: no migration 6 (nor 7), the revision as plain JSON
    const db = new Database(file);
    db.prepare('DELETE FROM schema_migrations WHERE version >= 6').run();
    db.exec('DROP INDEX revisions_by_created');
    db.exec('DROP TABLE data_migrations');
    db.prepare("INSERT INTO revisions VALUES (?, 'shop', ?, '2026-01-01T00:00:00.000Z', 'old', NULL)").run(rev.id, revisionJson(rev));
    db.close();
    const ro = await openSqliteStore(file, { readonly: true });
    expect(await ro.getRevision(rev.id)).toEqual(rev); // read as it is, not migrated
    await ro.close();
    expect(new Database(file, { readonly: true }).prepare('SELECT max(version) AS v FROM schema_migrations').get()).toEqual({ v: 5 });
    const rw = await openSqliteStore(file); // a write open migrates
    expect(await rw.getRevision(rev.id)).toEqual(rev);
    await rw.close();
    expect(new Database(file, { readonly: true }).prepare('SELECT max(version) AS v FROM schema_migrations').get()).toEqual({
      v: LATEST_VERSION,
    });

    // a missing migration it cannot read without (api-tokens' table) still needs a write first
    const older = fresh();
    await (await openSqliteStore(older)).close();
    const db2 = new Database(older);
    db2.prepare('DELETE FROM schema_migrations WHERE version >= 5').run();
    db2.exec('DROP TABLE api_tokens');
    db2.close();
    expect(await codeOf(openSqliteStore(older, { readonly: true }))).toBe('MERIDIAN_E_STORE_READ_ONLY');
  });

  it('says clearly when the path cannot be a file, or the file is not a database', async () => {
    const file = join(root, `plain${++n}`);
    writeFileSync(file, 'not a directory');
    expect(await codeOf(openSqliteStore(join(file, 'state.db')))).toBe('MERIDIAN_E_STORE_OPEN');
    writeFileSync(file, 'this is a text file, not SQLite, and it is long enough to have a header'.repeat(20));
    expect(await codeOf(openSqliteStore(file))).toBe('MERIDIAN_E_STORE_CORRUPT');
  });

  it('opens read-only on request: reads work, writes are refused, a missing file is not created', async () => {
    const file = fresh();
    expect(await codeOf(openSqliteStore(file, { readonly: true }))).toBe('MERIDIAN_E_STORE_NOT_FOUND');
    expect(existsSync(file)).toBe(false);
    const w = await openSqliteStore(file);
    await w.appendAudit({ actor: alice, action: 'a', subject: 'b' });
    await w.close();
    const ro = await openStore(file, { readonly: true });
    expect(await ro.listAudit()).toHaveLength(1);
    expect(await codeOf(ro.appendAudit({ actor: alice, action: 'a', subject: 'c' }))).toBe('MERIDIAN_E_STORE_READ_ONLY');
    await ro.close();
  });

  it('reports a full disk, rolls the whole change back, and keeps working once there is room', async () => {
    const file = fresh();
    const store = await openSqliteStore(file, { maxPageCount: 40, clock: steppingClock() });
    await store.appendAudit({ actor: alice, action: 'before', subject: 'x' });
    // a revision far larger than the 40 pages (160 KiB) the database may grow to, even compressed (random)
    const big = build({
      ...shopInput(),
      services: {
        ...shopInput().services,
        web: { ...shopInput().services?.['web'], image: 'x', version: '1', port: 1, env: { BIG: randomBytes(450_000).toString('base64') } },
      },
    }).revision;
    const err = await store.putRevision(big, alice).catch((e: unknown) => e);
    expect((err as MeridianError).code).toBe('MERIDIAN_E_STORE_FULL');
    expect((err as MeridianError).message).toMatch(/rolled back and nothing was written/);
    expect(await store.listRevisions()).toEqual([]);
    expect((await store.listAudit()).map((e) => e.action)).toEqual(['before']);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 1 });
    const small = await store.appendAudit({ actor: alice, action: 'after', subject: 'x' });
    expect(small.seq).toBe(2);
    await store.close();
  });

  it('keeps one chain when several processes append to the same file at once', async () => {
    const file = fresh();
    await (await openSqliteStore(file)).close();
    const writer = join(import.meta.dirname, 'support', 'store-writer.ts');
    const run = promisify(execFile);
    const procs = 3;
    const each = 25;
    await Promise.all(
      Array.from({ length: procs }, (_, i) =>
        run(process.execPath, ['--import', 'tsx', writer, file, `p${i}`, String(each)], { cwd: join(import.meta.dirname, '..') }),
      ),
    );
    const store = await openSqliteStore(file);
    const v = await store.verifyAudit();
    expect(v).toMatchObject({ ok: true, count: procs * each });
    const subjects = new Set((await store.listAudit()).map((e) => e.subject));
    expect(subjects.size).toBe(procs * each);
    await store.close();
  });
});

describe('resolveActor', () => {
  it('takes the flag, then MERIDIAN_ACTOR, GITHUB_ACTOR, GITLAB_USER_LOGIN, USER, LOGNAME, else unknown', () => {
    const env = { MERIDIAN_ACTOR: 'm', GITHUB_ACTOR: 'gh', GITLAB_USER_LOGIN: 'gl', USER: 'u', LOGNAME: 'l' };
    expect(resolveActor('  carol ', env)).toEqual({ id: 'carol', via: 'flag' });
    expect(resolveActor(undefined, env)).toEqual({ id: 'm', via: 'MERIDIAN_ACTOR' });
    expect(resolveActor('', { ...env, MERIDIAN_ACTOR: ' ' })).toEqual({ id: 'gh', via: 'github-actions' });
    expect(resolveActor(undefined, { GITLAB_USER_LOGIN: 'gl', USER: 'u' })).toEqual({ id: 'gl', via: 'gitlab-ci' });
    expect(resolveActor(undefined, { USER: 'u', LOGNAME: 'l' })).toEqual({ id: 'u', via: 'USER' });
    expect(resolveActor(undefined, { LOGNAME: 'l' })).toEqual({ id: 'l', via: 'LOGNAME' });
    expect(resolveActor(undefined, {})).toEqual({ id: 'unknown', via: 'unknown' });
  });
});
