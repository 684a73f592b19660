/**
 * The shared store for pipelines on many machines: PostgreSQL through a pg Pool. Every write transaction
 * first takes a transaction-scoped advisory lock (one per schema), so writers on any number of machines
 * append to one audit chain in turn and can never fork it.
 */
import pg from 'pg';
import { StoreError } from '../errors.js';
import { readOnly, SqlStore } from './sql-store.js';
import type { Row, SqlBackend, SqlConn, SqlParam } from './sql.js';
import type { Clock, Store } from './store.js';

export interface PostgresStoreOptions {
  readonly clock?: Clock | undefined;
  /** The schema to keep the tables in (created when missing). Also taken from `?schema=` in the URL. Default: the server's search_path. */
  readonly schema?: string | undefined;
  /** Open for reading only. */
  readonly readonly?: boolean | undefined;
  /** Connections in the pool. Default 4. */
  readonly poolSize?: number | undefined;
  /** How long to wait for a connection. Default 5000 ms. */
  readonly connectTimeoutMs?: number | undefined;
  /** How long a writer waits for another writer before MERIDIAN_E_STORE_BUSY. Default 30000 ms. */
  readonly lockTimeoutMs?: number | undefined;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Opens and migrates the PostgreSQL store at `url` (`postgres://user@host:port/db?schema=name`). */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<Store> {
  const { connectionString, schema: urlSchema, location: base } = parseUrl(url);
  const schema = opts.schema ?? urlSchema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new StoreError('MERIDIAN_E_STORE_CONFIG', `"${schema}" is not a usable schema name`, {
      hint: 'use lowercase letters, digits and underscores, starting with a letter or underscore (at most 63)',
    });
  }
  const location = schema ? `${base} (schema ${schema})` : base;
  const pool = new pg.Pool({
    connectionString,
    max: opts.poolSize ?? 4,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('error', () => {
    // an idle connection died (server restart); the pool replaces it, and the next query reports any lasting problem
  });
  const backend = new PostgresBackend(pool, location, opts.readonly ?? false, Math.floor(opts.lockTimeoutMs ?? 30_000));
  try {
    const exists = schema ? (await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount !== 0 : true;
    if (schema && !exists && !backend.readonly) {
      // (only when missing: a user without CREATE on the database can still use a schema made for it)
      await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`).catch((err: unknown) => {
        // two processes creating it at once: the loser sees a duplicate, which is fine
        if (!(err instanceof pg.DatabaseError && (err.code === '23505' || err.code === '42P06'))) throw err;
      });
    }
    const store = new SqlStore(backend, opts.clock ?? (() => new Date()));
    await store.migrate();
    return store;
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw mapPgError(err, location);
  }
}

class PostgresBackend implements SqlBackend {
  readonly dialect = 'postgres' as const;

  constructor(
    private readonly pool: pg.Pool,
    readonly location: string,
    readonly readonly: boolean,
    private readonly lockTimeoutMs: number,
  ) {}

  read<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    return this.transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', [], fn);
  }

  write<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    if (this.readonly) return Promise.reject(readOnly(this.location));
    // One writer at a time per schema, on every machine: the lock is released at COMMIT or ROLLBACK.
    return this.transaction(
      'BEGIN',
      [`SET LOCAL lock_timeout = ${this.lockTimeoutMs}`, "SELECT pg_advisory_xact_lock(hashtext('meridian'), hashtext(current_schema()))"],
      fn,
    );
  }

  tableExists(c: SqlConn, table: string): Promise<boolean> {
    return c
      .get('SELECT 1 AS x FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?', [table])
      .then((r) => r !== undefined);
  }

  mapError(err: unknown): unknown {
    return mapPgError(err, this.location);
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  private async transaction<T>(begin: string, prelude: readonly string[], fn: (c: SqlConn) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query(begin);
      for (const sql of prelude) await client.query(sql);
      const result = await fn(connOf(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

const numbered = new Map<string, string>();

/** `?` placeholders to `$1, $2, …` (the store's SQL has no `?` inside literals). */
function toPg(sql: string): string {
  let out = numbered.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/\?/g, () => `$${++n}`);
    numbered.set(sql, out);
  }
  return out;
}

function connOf(client: pg.PoolClient): SqlConn {
  const query = (sql: string, params: readonly SqlParam[] = []): Promise<pg.QueryResult<Row>> => client.query<Row>(toPg(sql), [...params]);
  return {
    all: async (sql, params) => (await query(sql, params)).rows,
    get: async (sql, params) => (await query(sql, params)).rows[0],
    run: async (sql, params) => ({ changes: (await query(sql, params)).rowCount ?? 0 }),
  };
}

function parseUrl(url: string): { connectionString: string; schema: string | undefined; location: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new StoreError('MERIDIAN_E_STORE_CONFIG', 'the PostgreSQL URL is not a URL', {
      cause: err,
      hint: 'write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]',
    });
  }
  const schema = u.searchParams.get('schema') ?? undefined;
  u.searchParams.delete('schema');
  const shown = new URL(u.href);
  if (shown.password) shown.password = '***';
  shown.search = '';
  return { connectionString: u.href, schema, location: shown.href };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN', 'EPIPE']);

/** Turns a pg or network error the user can act on into a StoreError; anything else (a bug) is returned as it is. */
export function mapPgError(err: unknown, location: string): unknown {
  if (err instanceof StoreError || !(err instanceof Error)) return err;
  const code = errorCode(err);
  const opts = (hint: string): { cause: unknown; hint: string } => ({ cause: err, hint });
  if (
    (code !== undefined && (UNREACHABLE.has(code) || code.startsWith('08') || code === '57P01' || code === '57P03')) ||
    /timeout exceeded when trying to connect|Connection terminated/i.test(err.message)
  ) {
    return new StoreError(
      'MERIDIAN_E_STORE_UNREACHABLE',
      `cannot reach the PostgreSQL store at ${location} (${code ?? err.message}); nothing was written`,
      opts(
        'check that the server runs and accepts connections from here (`pg_isready -h HOST -p PORT`) and that the URL in MERIDIAN_STATE (or --state) is right',
      ),
    );
  }
  if (code === '28P01' || code === '28000') {
    return new StoreError(
      'MERIDIAN_E_STORE_AUTH',
      `PostgreSQL refused the login to ${location}: ${err.message}`,
      opts('check the user and password in the URL'),
    );
  }
  if (code === '3D000') {
    return new StoreError(
      'MERIDIAN_E_STORE_OPEN',
      `${err.message} (at ${location})`,
      opts('create it (`createdb NAME`) or fix the database name in the URL'),
    );
  }
  if (code === '53100') {
    return new StoreError(
      'MERIDIAN_E_STORE_FULL',
      `the PostgreSQL server at ${location} is out of disk space; the change was rolled back and nothing was written`,
      opts('free space on the database server, then run the command again'),
    );
  }
  if (code === '25006') return readOnly(location, err);
  if (code === '40001' || code === '40P01' || code === '55P03') {
    return new StoreError(
      'MERIDIAN_E_STORE_BUSY',
      `the PostgreSQL store at ${location} was busy (${err.message}); nothing was written`,
      opts('another meridian command held the write lock too long: wait for it to finish (or end its session), then run this one again'),
    );
  }
  if (code === '42P01' || code === '42703') {
    return new StoreError(
      'MERIDIAN_E_STORE_CORRUPT',
      `the PostgreSQL store at ${location} lacks a table or column meridian created (${err.message}); it was damaged or edited by hand`,
      opts('restore the schema from a backup, or point MERIDIAN_STATE (or --state) at the right database and schema'),
    );
  }
  if (code === '42501') {
    return new StoreError(
      'MERIDIAN_E_STORE_PERMISSION',
      `the PostgreSQL user may not do this at ${location}: ${err.message}`,
      opts('grant the user the rights to create and write tables in the schema, or use another schema with ?schema=NAME'),
    );
  }
  return err;
}

function errorCode(err: Error): string | undefined {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // connecting to a name with several addresses fails with an AggregateError of the attempts
  const first = err instanceof AggregateError ? (err.errors[0] as { code?: unknown } | undefined) : undefined;
  return typeof first?.code === 'string' ? first.code : undefined;
}
