/**
 * The embedded default store: one SQLite file (better-sqlite3), WAL journal. Writers are serialised by
 * `BEGIN IMMEDIATE`, waited for without blocking the event loop, so two stores on one file — in one
 * process or in several — keep one audit chain.
 */
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { readOnly, SqlStore } from './sql-store.js';
import type { SqlBackend, SqlConn, SqlParam } from './sql.js';
import type { Clock, Store } from './store.js';

/** The state file used when none is named, relative to the working directory. */
export const DEFAULT_STATE_PATH = '.meridian/state.db';

export interface SqliteStoreOptions {
  readonly clock?: Clock | undefined;
  /** Open for reading only (for `audit log` / `audit verify` on a copy or a read-only volume). */
  readonly readonly?: boolean | undefined;
  /** How long a writer waits for another writer before MERIDIAN_E_STORE_BUSY. Default 5000 ms. */
  readonly busyTimeoutMs?: number | undefined;
  /** Caps the database at this many pages (SQLite's `max_page_count`): a quota, and how tests fill the disk. */
  readonly maxPageCount?: number | undefined;
}

/** Opens (creating it and its directory when needed) and migrates the SQLite store at `path`. */
export async function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): Promise<Store> {
  const file = resolve(path);
  const location = display(file);
  const readonly = opts.readonly ?? false;
  const busyMs = opts.busyTimeoutMs ?? 5000;
  if (!readonly) {
    try {
      // owner only: the store holds rendered revisions (env and config), the audit log and token hashes
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError(
        'MERIDIAN_E_STORE_OPEN',
        `cannot create the state directory ${display(dirname(file))}: ${(err as Error).message}`,
        {
          cause: err,
          hint: 'make the directory writable, or point MERIDIAN_STATE (or --state) at a writable path',
        },
      );
    }
  }
  if (!readonly && !existsSync(file)) createPrivate(file);
  if (readonly && !existsSync(file)) {
    throw new StoreError('MERIDIAN_E_STORE_NOT_FOUND', `there is no state at ${location}`, {
      hint: 'run `meridian plan` once to create it, or point MERIDIAN_STATE (or --state) at the right file',
    });
  }
  try {
    return await connect(new Database(file, { readonly, fileMustExist: readonly, timeout: busyMs }), location, readonly, busyMs, opts);
  } catch (err) {
    const cause = err instanceof StoreError ? err.cause : err;
    const cantOpen = cause instanceof Database.SqliteError && cause.code.startsWith('SQLITE_CANTOPEN');
    if (!cantOpen || writable(dirname(file))) throw mapSqliteError(err, location);
    // A WAL database in a directory nobody may write to (a read-only volume) cannot be opened in place,
    // not even for reading: SQLite must create its -shm file beside it. Read-only commands read a copy.
    if (readonly && !existsSync(`${file}-wal`))
      return connect(new Database(walless(readFileSync(file)), { readonly: true }), location, true, busyMs, opts);
    throw new StoreError('MERIDIAN_E_STORE_READ_ONLY', `the directory of the state file ${location} is read-only; nothing was written`, {
      cause,
      hint: 'SQLite creates -wal and -shm files beside the state file: make its directory writable, or point MERIDIAN_STATE (or --state) at a writable place',
    });
  }
}

async function connect(
  db: Database.Database,
  location: string,
  readonly: boolean,
  busyMs: number,
  opts: SqliteStoreOptions,
): Promise<Store> {
  try {
    if (!readonly) {
      try {
        db.pragma('journal_mode = WAL');
      } catch (err) {
        // a read-only file still opens (for reading); writes will say why they fail
        if (!(err instanceof Database.SqliteError && err.code.startsWith('SQLITE_READONLY'))) throw err;
      }
      db.pragma('synchronous = FULL');
    }
    db.pragma(`busy_timeout = ${busyMs}`);
    db.pragma('foreign_keys = ON');
    if (opts.maxPageCount !== undefined) db.pragma(`max_page_count = ${Math.floor(opts.maxPageCount)}`);
    quickCheck(db, location);
    const store = new SqlStore(new SqliteBackend(db, location, readonly, busyMs), opts.clock ?? (() => new Date()));
    await store.migrate();
    return store;
  } catch (err) {
    db.close();
    throw mapSqliteError(err, location);
  }
}

/**
 * Creates an empty state file readable and writable by its owner only (SQLite gives its -wal and -shm
 * files the same mode). When another process created it first, or it cannot be created, SQLite's open
 * goes on as before (and names the problem).
 */
function createPrivate(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch {
    // taken by another process (EEXIST), or not creatable here: SQLite's own open says why
  }
}

/**
 * `PRAGMA quick_check`: reads every page and checks its structure (not the indexes against the tables),
 * so a damaged page is found when the store opens rather than when some later command happens to read
 * it. It costs one read of the file (measured in docs/security.md).
 */
function quickCheck(db: Database.Database, location: string): void {
  const rows = db.pragma('quick_check(5)') as { quick_check: string }[];
  const problems = rows.map((r) => r.quick_check).filter((p) => p !== 'ok');
  if (problems.length === 0) return;
  throw new StoreError('MERIDIAN_E_STORE_CORRUPT', `${location} is damaged: SQLite's quick_check reports ${problems.join('; ')}`, {
    hint: 'restore it from a backup (then run `meridian audit verify --checkpoint FILE` against the last checkpoint CI kept); nothing was written',
  });
}

/** Marks a copy of a database file as not in WAL mode (header bytes 18-19), so that it opens in memory. */
function walless(image: Buffer): Buffer {
  if (image.length >= 100 && image[18] === 2 && image[19] === 2) {
    image[18] = 1;
    image[19] = 1;
  }
  return image;
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

class SqliteBackend implements SqlBackend {
  readonly dialect = 'sqlite' as const;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly statements = new Map<string, Database.Statement>();
  private readonly conn: SqlConn;

  constructor(
    private readonly db: Database.Database,
    readonly location: string,
    readonly readonly: boolean,
    private readonly busyMs: number,
  ) {
    const stmt = (sql: string): Database.Statement => {
      let s = this.statements.get(sql);
      if (!s) {
        s = this.db.prepare(sql);
        this.statements.set(sql, s);
      }
      return s;
    };
    this.conn = {
      all: (sql, params = []) => Promise.resolve(stmt(sql).all(...(params as SqlParam[])) as Record<string, unknown>[]),
      get: (sql, params = []) => Promise.resolve(stmt(sql).get(...(params as SqlParam[])) as Record<string, unknown> | undefined),
      run: (sql, params = []) => Promise.resolve({ changes: stmt(sql).run(...(params as SqlParam[])).changes }),
    };
  }

  read<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      this.db.exec('BEGIN'); // a deferred transaction: one snapshot for every read in fn
      return this.finish(fn);
    });
  }

  write<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    if (this.readonly) return Promise.reject(readOnly(this.location));
    return this.exclusive(async () => {
      await this.beginImmediate();
      return this.finish(fn);
    });
  }

  tableExists(c: SqlConn, table: string): Promise<boolean> {
    return c.get("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).then((r) => r !== undefined);
  }

  mapError(err: unknown): unknown {
    return mapSqliteError(err, this.location);
  }

  close(): Promise<void> {
    return this.exclusive(() => {
      this.statements.clear();
      this.db.close();
      return Promise.resolve();
    });
  }

  private async finish<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    try {
      const result = await fn(this.conn);
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      // SQLite rolls back by itself on some errors (SQLITE_FULL); only roll back what is still open.
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  /** One transaction at a time on this connection; the next waits for the previous to end. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Takes the write lock. SQLite's own busy handler would sleep the whole thread, so that a second
   * connection in this process could never let go of the lock it waits for: retry here, asynchronously.
   */
  private async beginImmediate(): Promise<void> {
    const deadline = Date.now() + this.busyMs;
    let wait = 1;
    for (;;) {
      this.db.pragma('busy_timeout = 0');
      try {
        this.db.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        if (!isBusy(err) || Date.now() >= deadline) throw err;
      } finally {
        this.db.pragma(`busy_timeout = ${this.busyMs}`);
      }
      await new Promise((r) => setTimeout(r, wait + Math.random() * wait));
      wait = Math.min(wait * 2, 50);
    }
  }
}

function isBusy(err: unknown): boolean {
  return err instanceof Database.SqliteError && (err.code.startsWith('SQLITE_BUSY') || err.code.startsWith('SQLITE_LOCKED'));
}

/** Turns a SQLite error the user can act on into a StoreError; anything else (a bug) is returned as it is. */
export function mapSqliteError(err: unknown, location: string): unknown {
  if (!(err instanceof Database.SqliteError)) return err;
  const code = err.code;
  if (code.startsWith('SQLITE_READONLY')) return readOnly(location, err);
  if (code === 'SQLITE_FULL') {
    return new StoreError(
      'MERIDIAN_E_STORE_FULL',
      `the disk that holds ${location} is full (or the store reached its size limit); the change was rolled back and nothing was written`,
      {
        cause: err,
        hint: 'free some space, or move the state elsewhere with MERIDIAN_STATE (or --state), then run the command again',
      },
    );
  }
  if (isBusy(err)) {
    return new StoreError('MERIDIAN_E_STORE_BUSY', `another meridian process held ${location} locked for too long; nothing was written`, {
      cause: err,
      hint: 'wait for the other command to finish and run this one again; pipelines on several machines should share a PostgreSQL store instead',
    });
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new StoreError('MERIDIAN_E_STORE_OPEN', `cannot open the state file ${location}: ${err.message}`, {
      cause: err,
      hint: 'check that the path is a file in a directory you can write to (SQLite writes -wal and -shm files beside it), or set MERIDIAN_STATE (or --state)',
    });
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new StoreError('MERIDIAN_E_STORE_CORRUPT', `${location} is not a usable meridian state database (${err.message})`, {
      cause: err,
      hint: 'restore it from a backup, or point MERIDIAN_STATE (or --state) at the right file',
    });
  }
  if (code === 'SQLITE_ERROR' && /^no such (table|column)\b/.test(err.message)) {
    return new StoreError(
      'MERIDIAN_E_STORE_CORRUPT',
      `${location} lacks a table or column meridian created (${err.message}); it was damaged or edited by hand`,
      {
        cause: err,
        hint: 'restore it from a backup, or point MERIDIAN_STATE (or --state) at the right file',
      },
    );
  }
  if (code.startsWith('SQLITE_IOERR') || code === 'SQLITE_PERM') {
    return new StoreError(
      'MERIDIAN_E_STORE_IO',
      `reading or writing ${location} failed (${code}: ${err.message}); the change was rolled back`,
      {
        cause: err,
        hint: 'check the disk and the file permissions, then run the command again',
      },
    );
  }
  return err;
}

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}
