/**
 * The store's logic over any {@link SqlBackend}: revisions, cluster states, the audit chain and migrations.
 * SQLite and PostgreSQL differ only in their backend adapter.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { StoreError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import { revisionJson, type RenderedCluster, type Revision } from '../render/render.js';
import type { Actor } from './actor.js';
import { type AuditBody, ChainWalker, entryHash } from './audit-chain.js';
import { LATEST_VERSION, MIGRATIONS, statementsFor } from './migrations.js';
import type { Row, SqlBackend, SqlConn } from './sql.js';
import type {
  AuditEntry,
  AuditInput,
  AuditVerification,
  Clock,
  ClusterRecord,
  JsonValue,
  ListAuditOptions,
  RevisionSummary,
  Store,
  StoreOps,
  StoreTx,
} from './store.js';

/** The store whose transaction the current async context is in (to catch calls that would deadlock). */
const insideTx = new AsyncLocalStorage<SqlStore>();

const PAGE = 1000;
const AUDIT_COLUMNS = 'seq, at, actor, actor_via, action, subject, reason, data, prev_hash, hash';

/** A {@link Store} over a SQL backend. Create it with `openSqliteStore` or `openPostgresStore`. */
export class SqlStore implements Store {
  readonly backend: Store['backend'];
  readonly location: string;

  constructor(
    private readonly db: SqlBackend,
    private readonly clock: Clock,
  ) {
    this.backend = db.dialect;
    this.location = db.location;
  }

  /** Applies the migrations this store lacks; refuses a store made by a newer binary. */
  async migrate(): Promise<void> {
    const applied = await this.guarded(() => this.db.read((c) => readApplied(this.db, c)));
    checkApplied(applied, this.location);
    if (applied.length >= MIGRATIONS.length) return;
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

  putRevision(rev: Revision, by: Actor, reason?: string): Promise<{ created: boolean }> {
    return this.writing((ops) => ops.putRevision(rev, by, reason));
  }

  getRevision(id: string): Promise<Revision | undefined> {
    return this.reading((ops) => ops.getRevision(id));
  }

  listRevisions(): Promise<RevisionSummary[]> {
    return this.reading((ops) => ops.listRevisions());
  }

  clusterStates(): Promise<Record<string, ClusterRecord>> {
    return this.reading((ops) => ops.clusterStates());
  }

  recordClusterState(
    cluster: string,
    revisionId: string,
    state: RenderedCluster,
    status: string,
    by: Actor,
    reason?: string,
  ): Promise<void> {
    return this.writing((ops) => ops.recordClusterState(cluster, revisionId, state, status, by, reason));
  }

  appendAudit(input: AuditInput): Promise<AuditEntry> {
    return this.writing((ops) => ops.appendAudit(input));
  }

  listAudit(opts?: ListAuditOptions): Promise<AuditEntry[]> {
    return this.reading((ops) => ops.listAudit(opts));
  }

  verifyAudit(): Promise<AuditVerification> {
    return this.reading(async (_ops, c) => {
      const walker = new ChainWalker();
      let after = Number.NEGATIVE_INFINITY;
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

/** The operations on one connection (inside a transaction, or a read snapshot). */
class SqlOps implements StoreOps {
  constructor(
    private readonly c: SqlConn,
    private readonly now: () => string,
    private readonly location: string,
  ) {}

  async putRevision(rev: Revision, by: Actor, reason?: string): Promise<{ created: boolean }> {
    const content = revisionJson(rev);
    const existing = await this.c.get('SELECT content FROM revisions WHERE id = ?', [rev.id]);
    if (existing) {
      if (existing['content'] !== content) {
        throw new StoreError(
          'MERIDIAN_E_STORE_REVISION_CONFLICT',
          `revision ${rev.id} is already recorded in ${this.location} with different content`,
          {
            hint: 'a revision id is the hash of its content, so this store was changed by hand or by an incompatible version of meridian; run `meridian audit verify`',
          },
        );
      }
      return { created: false };
    }
    const at = this.now();
    await this.c.run('INSERT INTO revisions (id, fleet, content, created_at, created_by, reason) VALUES (?, ?, ?, ?, ?, ?)', [
      rev.id,
      rev.fleet,
      content,
      at,
      by.id,
      reason ?? null,
    ]);
    await this.appendAudit({
      actor: by,
      action: 'revision.create',
      subject: rev.id,
      reason,
      data: { fleet: rev.fleet, clusters: Object.keys(rev.clusters).length },
    });
    return { created: true };
  }

  async getRevision(id: string): Promise<Revision | undefined> {
    const row = await this.c.get('SELECT content FROM revisions WHERE id = ?', [id]);
    return row ? parseRevision(String(row['content']), id) : undefined;
  }

  async listRevisions(): Promise<RevisionSummary[]> {
    const rows = await this.c.all('SELECT id, fleet, created_at, created_by, reason FROM revisions ORDER BY created_at, id');
    return rows.map((r) => ({
      id: String(r['id']),
      fleet: String(r['fleet']),
      createdAt: String(r['created_at']),
      createdBy: String(r['created_by']),
      reason: r['reason'] == null ? null : String(r['reason']),
    }));
  }

  async clusterStates(): Promise<Record<string, ClusterRecord>> {
    const rows = await this.c.all(
      'SELECT cluster, revision_id, cluster_hash, state, status, updated_at, updated_by FROM cluster_states ORDER BY cluster',
    );
    const out: Record<string, ClusterRecord> = {};
    for (const r of rows) {
      const cluster = String(r['cluster']);
      out[cluster] = {
        cluster,
        revisionId: String(r['revision_id']),
        clusterHash: String(r['cluster_hash']),
        state: JSON.parse(String(r['state'])) as RenderedCluster,
        status: String(r['status']),
        updatedAt: String(r['updated_at']),
        updatedBy: String(r['updated_by']),
      };
    }
    return out;
  }

  async recordClusterState(
    cluster: string,
    revisionId: string,
    state: RenderedCluster,
    status: string,
    by: Actor,
    reason?: string,
  ): Promise<void> {
    const rev = await this.c.get('SELECT id FROM revisions WHERE id = ?', [revisionId]);
    if (!rev) {
      throw new StoreError(
        'MERIDIAN_E_STORE_UNKNOWN_REVISION',
        `cannot record cluster ${cluster} as running revision ${revisionId}: that revision is not recorded`,
        {
          hint: 'record the revision first (`meridian plan` does), then the cluster state',
        },
      );
    }
    const before = await this.c.get('SELECT revision_id, status FROM cluster_states WHERE cluster = ?', [cluster]);
    const at = this.now();
    await this.c.run(
      `INSERT INTO cluster_states (cluster, revision_id, cluster_hash, state, status, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cluster) DO UPDATE SET revision_id = excluded.revision_id, cluster_hash = excluded.cluster_hash, state = excluded.state,
         status = excluded.status, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      [cluster, revisionId, state.hash, canonicalJson(state), status, at, by.id],
    );
    await this.appendAudit({
      actor: by,
      action: 'cluster.state',
      subject: cluster,
      reason,
      data: {
        revision: revisionId,
        clusterHash: state.hash,
        status,
        from: before ? { revision: String(before['revision_id']), status: String(before['status']) } : null,
      },
    });
  }

  async appendAudit(input: AuditInput): Promise<AuditEntry> {
    // The caller holds the exclusive write transaction, so reading the head and moving it cannot race.
    const head = await this.c.get('SELECT count, hash FROM audit_head WHERE id = 1');
    if (!head) {
      throw new StoreError(
        'MERIDIAN_E_STORE_AUDIT_ANCHOR_MISSING',
        `the audit log's head anchor in ${this.location} is missing; nothing was written`,
        {
          hint: 'the store was changed outside meridian: run `meridian audit verify` and restore the store from a backup',
        },
      );
    }
    const prevHash = String(head['hash']);
    const body: AuditBody = {
      seq: Number(head['count']) + 1,
      at: this.now(),
      actor: input.actor.via === undefined ? { id: input.actor.id } : { id: input.actor.id, via: input.actor.via },
      action: input.action,
      subject: input.subject,
      reason: input.reason ?? null,
      data: toJson(input.data),
    };
    const hash = entryHash(prevHash, body);
    await this.c.run(`INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
      body.seq,
      body.at,
      body.actor.id,
      body.actor.via ?? null,
      body.action,
      body.subject,
      body.reason,
      canonicalJson(body.data),
      prevHash,
      hash,
    ]);
    await this.c.run('UPDATE audit_head SET count = ?, hash = ? WHERE id = 1', [body.seq, hash]);
    return { ...body, prevHash, hash };
  }

  async listAudit(opts: ListAuditOptions = {}): Promise<AuditEntry[]> {
    const params: number[] = [];
    let sql = `SELECT ${AUDIT_COLUMNS} FROM audit_log`;
    if (opts.afterSeq !== undefined) {
      sql += ' WHERE seq > ?';
      params.push(opts.afterSeq);
    }
    sql += opts.newestFirst ? ' ORDER BY seq DESC' : ' ORDER BY seq';
    if (opts.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(Math.max(0, Math.floor(opts.limit)));
    }
    return (await this.c.all(sql, params)).map(auditFromRow);
  }
}

/** JSON-normalises audit data (drops undefined, turns non-finite numbers into null) so that it hashes the same after a round trip. */
function toJson(data: JsonValue | undefined): JsonValue {
  if (data === undefined) return null;
  return JSON.parse(canonicalJson(data)) as JsonValue;
}

function auditFromRow(r: Row): AuditEntry {
  const raw = String(r['data']);
  let data: JsonValue;
  try {
    data = JSON.parse(raw) as JsonValue;
  } catch {
    data = { $unparseable: raw }; // tampered with: it will not match its hash
  }
  const via = r['actor_via'];
  return {
    seq: Number(r['seq']),
    at: String(r['at']),
    actor: via == null ? { id: String(r['actor']) } : { id: String(r['actor']), via: String(via) },
    action: String(r['action']),
    subject: String(r['subject']),
    reason: r['reason'] == null ? null : String(r['reason']),
    data,
    prevHash: String(r['prev_hash']),
    hash: String(r['hash']),
  };
}

function parseRevision(json: string, id: string): Revision {
  const value: unknown = JSON.parse(json);
  if (!value || typeof value !== 'object' || (value as { id?: unknown }).id !== id) {
    throw new StoreError('MERIDIAN_E_STORE_CORRUPT', `the stored revision ${id} is not a revision`, {
      hint: 'the store was changed outside meridian; restore it from a backup',
    });
  }
  return value as Revision;
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
