/**
 * The store's logic over any {@link SqlBackend}: each operation (`sql-ops.ts`) in a read snapshot or a write
 * transaction, the audit verification and migrations. SQLite and PostgreSQL differ only in their backend adapter.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { StoreError } from '../errors.js';
import { ChainWalker } from './audit-chain.js';
import { LATEST_VERSION, MIGRATIONS, statementsFor } from './migrations.js';
import { SqlOps } from './sql-ops.js';
import { AUDIT_COLUMNS, auditFromRow } from './sql-rows.js';
import type { SqlBackend, SqlConn } from './sql.js';
import type { AuditVerification, Clock, Store, StoreOps, StoreTx } from './store.js';

/** The store whose transaction the current async context is in (to catch calls that would deadlock). */
const insideTx = new AsyncLocalStorage<SqlStore>();

const PAGE = 1000;

/**
 * How the store runs each operation of {@link StoreOps}: `read` in a read snapshot, `write` in a write
 * transaction (refused on a read-only store). Every operation is listed (the type says so), and
 * {@link SqlStore} gets one method per entry that runs it so.
 */
const ACCESS: { readonly [K in keyof StoreOps]-?: 'read' | 'write' } = {
  putRevision: 'write',
  getRevision: 'read',
  listRevisions: 'read',
  clusterStates: 'read',
  recordClusterState: 'write',
  appendAudit: 'write',
  listAudit: 'read',
  insertRollout: 'write',
  getRollout: 'read',
  listRollouts: 'read',
  updateRollout: 'write',
  appendRolloutEvent: 'write',
  listRolloutEvents: 'read',
  addApproval: 'write',
  listApprovals: 'read',
  listLocks: 'read',
  putLock: 'write',
  releaseLocks: 'write',
  createApiToken: 'write',
  apiTokenByHash: 'read',
  listApiTokens: 'read',
  revokeApiToken: 'write',
  listFlagSettings: 'read',
  setFlag: 'write',
  resetFlag: 'write',
  listDataMigrations: 'read',
  putDataMigration: 'write',
};

/** The operations of {@link StoreOps} as methods that run each on a connection of its own ({@link ACCESS}). */
abstract class ForwardedOps {
  /** Runs `fn` on a connection: a read snapshot or a write transaction. */
  protected abstract run<T>(access: 'read' | 'write', fn: (ops: StoreOps) => Promise<T>): Promise<T>;
}
for (const [name, access] of Object.entries(ACCESS) as [keyof StoreOps, 'read' | 'write'][]) {
  Object.defineProperty(ForwardedOps.prototype, name, {
    value: function (this: ForwardedOps, ...args: unknown[]): Promise<unknown> {
      return this.run(access, (ops) => (ops[name] as (...a: unknown[]) => Promise<unknown>).apply(ops, args));
    },
    writable: true,
    configurable: true,
  });
}
const StoreOpsBase = ForwardedOps as abstract new () => ForwardedOps & StoreOps;

/** A {@link Store} over a SQL backend. Create it with `openSqliteStore` or `openPostgresStore`. */
export class SqlStore extends StoreOpsBase implements Store {
  readonly backend: Store['backend'];
  readonly location: string;

  constructor(
    private readonly db: SqlBackend,
    private readonly clock: Clock,
  ) {
    super();
    this.backend = db.dialect;
    this.location = db.location;
  }

  /** Applies the migrations this store lacks; refuses a store made by a newer binary. */
  async migrate(): Promise<void> {
    const applied = await this.guarded(() => this.db.read((c) => readApplied(this.db, c)));
    checkApplied(applied, this.location);
    if (applied.length >= MIGRATIONS.length) return;
    // a read-only open reads a store whose missing migrations this binary can read without
    if (this.db.readonly && MIGRATIONS.slice(applied.length).every((m) => m.readCompatible === true)) return;
    if (this.db.readonly) {
      throw new StoreError('MERIDIAN_E_STORE_READ_ONLY', `the state at ${this.location} needs migrating, but it was opened read-only`, {
        hint: 'run any meridian command that writes (e.g. `meridian plan`) with write access to it once, then read it',
      });
    }
    await this.guarded(() =>
      this.db.write(async (c) => {
        await c.run(
          'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
        );
        const now = await readApplied(this.db, c); // another process may have migrated meanwhile
        checkApplied(now, this.location);
        const at = new Date().toISOString(); // wall time: migrations are not audited, so the injected clock stays the audit's
        for (const m of MIGRATIONS.slice(now.length)) {
          for (const sql of statementsFor(m, this.db.dialect)) await c.run(sql);
          await c.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, at]);
        }
      }),
    );
  }

  withTransaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return this.guarded(() => this.db.write((c) => insideTx.run(this, () => fn(this.ops(c)))));
  }

  verifyAudit(opts: { readonly from?: { readonly count: number; readonly hash: string } | undefined } = {}): Promise<AuditVerification> {
    return this.reading(async (_ops, c) => {
      let from = opts.from && opts.from.count > 0 ? opts.from : undefined;
      if (from) {
        const at = await c.get('SELECT hash FROM audit_log WHERE seq = ?', [from.count]);
        if (at?.['hash'] !== from.hash) from = undefined; // changed under us: walk it all, to say where
      }
      const walker = new ChainWalker(from);
      let after = from ? from.count : Number.NEGATIVE_INFINITY;
      for (;;) {
        const rows = await c.all(
          `SELECT ${AUDIT_COLUMNS} FROM audit_log ${after === Number.NEGATIVE_INFINITY ? '' : 'WHERE seq > ?'} ORDER BY seq LIMIT ${PAGE}`,
          after === Number.NEGATIVE_INFINITY ? [] : [after],
        );
        let broken = false;
        for (const r of rows) {
          if (!walker.push(auditFromRow(r))) {
            broken = true;
            break;
          }
        }
        if (broken || rows.length < PAGE) break;
        after = Number(rows[rows.length - 1]?.['seq']);
      }
      const head = await c.get('SELECT count, hash FROM audit_head WHERE id = 1');
      return walker.finish(head ? { count: Number(head['count']), hash: String(head['hash']) } : undefined);
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private now(): string {
    return this.clock().toISOString();
  }

  private ops(c: SqlConn): StoreOps {
    return new SqlOps(c, () => this.now(), this.location);
  }

  private reading<T>(fn: (ops: StoreOps, c: SqlConn) => Promise<T>): Promise<T> {
    this.refuseNested();
    return this.guarded(() => this.db.read((c) => fn(this.ops(c), c)));
  }

  protected run<T>(access: 'read' | 'write', fn: (ops: StoreOps) => Promise<T>): Promise<T> {
    return access === 'read' ? this.reading(fn) : this.writing(fn);
  }

  private writing<T>(fn: (ops: StoreOps) => Promise<T>): Promise<T> {
    this.refuseNested();
    if (this.db.readonly) return Promise.reject(readOnly(this.location));
    return this.guarded(() => this.db.write((c) => fn(this.ops(c))));
  }

  private refuseNested(): void {
    // Inside withTransaction the store's own methods would wait for the transaction that waits for them.
    if (insideTx.getStore() === this) {
      throw new Error(
        'a Store method was called inside its own withTransaction(); use the `tx` argument so that the change joins the transaction',
      );
    }
  }

  private async guarded<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.db.mapError(err);
    }
  }
}

interface Applied {
  readonly version: number;
  readonly name: string;
}

async function readApplied(db: SqlBackend, c: SqlConn): Promise<Applied[]> {
  if (!(await db.tableExists(c, 'schema_migrations'))) return [];
  const rows = await c.all('SELECT version, name FROM schema_migrations ORDER BY version');
  return rows.map((r) => ({ version: Number(r['version']), name: String(r['name']) }));
}

function checkApplied(applied: readonly Applied[], location: string): void {
  const newest = applied.reduce((n, a) => Math.max(n, a.version), 0);
  if (newest > LATEST_VERSION) {
    throw new StoreError(
      'MERIDIAN_E_STORE_SCHEMA_TOO_NEW',
      `the state at ${location} has schema version ${newest}, newer than this meridian knows (${LATEST_VERSION})`,
      { hint: 'upgrade meridian to the version that wrote this store (older binaries must not write to it)' },
    );
  }
  applied.forEach((a, i) => {
    const known = MIGRATIONS[i];
    if (!known || known.version !== a.version || known.name !== a.name) {
      throw new StoreError(
        'MERIDIAN_E_STORE_MIGRATION_MISMATCH',
        `the state at ${location} has migration ${a.version} "${a.name}", but this meridian's migration ${known?.version ?? i + 1} is "${known?.name ?? '(none)'}"`,
        { hint: 'the store was made by an incompatible build of meridian; use that build, or start a new store' },
      );
    }
  });
}

/** The error for a write to a store opened read-only (or on a read-only file). */
export function readOnly(location: string, cause?: unknown): StoreError {
  return new StoreError('MERIDIAN_E_STORE_READ_ONLY', `the state at ${location} is read-only; nothing was written`, {
    cause,
    hint: 'make the file and its directory writable (SQLite also writes -wal and -shm files beside it), or point MERIDIAN_STATE / --state at a writable place',
  });
}
