/**
 * The store's operations on one SQL connection ({@link SqlOps}): revisions, cluster states, the audit chain,
 * rollouts and their events, approvals, locks, API tokens, flags and data migrations. `SqlStore` runs them in
 * a read snapshot or a write transaction.
 */
import { StoreError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import { revisionJson, type RenderedCluster, type Revision } from '../render/render.js';
import type { Actor } from './actor.js';
import { type AuditBody, entryHash } from './audit-chain.js';
import { decodeRevisionContent, encodeRevisionContent } from './revision-content.js';
import type { SqlConn } from './sql.js';
import {
  AUDIT_COLUMNS,
  DATA_MIGRATION_COLUMNS,
  FLAG_COLUMNS,
  ROLLOUT_COLUMNS,
  TOKEN_COLUMNS,
  auditFromRow,
  dataMigrationFromRow,
  flagFromRow,
  parseRevision,
  rolloutFromRow,
  toJson,
  tokenFromRow,
} from './sql-rows.js';
import type {
  ApiTokenRecord,
  ApprovalRecord,
  AuditEntry,
  AuditInput,
  ClusterRecord,
  DataMigrationRecord,
  FlagSettingInput,
  FlagSettingRecord,
  JsonValue,
  ListAuditOptions,
  ListRolloutsOptions,
  LockRecord,
  RevisionSummary,
  RolloutEventRecord,
  RolloutPatch,
  RolloutRecord,
  StoreOps,
} from './store.js';

const FINAL_STATES = ['promoted', 'rolled-back', 'failed'];

/** The operations on one connection (inside a transaction, or a read snapshot). */
export class SqlOps implements StoreOps {
  constructor(
    private readonly c: SqlConn,
    private readonly now: () => string,
    private readonly location: string,
  ) {}

  async putRevision(rev: Revision, by: Actor, reason?: string): Promise<{ created: boolean }> {
    const content = revisionJson(rev);
    const existing = await this.c.get('SELECT content FROM revisions WHERE id = ?', [rev.id]);
    if (existing) {
      if (decodeRevisionContent(String(existing['content'])) !== content) {
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
      encodeRevisionContent(content),
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
    return row ? parseRevision(decodeRevisionContent(String(row['content'])), id) : undefined;
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

  async insertRollout(r: RolloutRecord): Promise<void> {
    if (await this.c.get('SELECT id FROM rollouts WHERE id = ?', [r.id])) {
      throw new StoreError('MERIDIAN_E_STORE_ROLLOUT_EXISTS', `a rollout with id ${r.id} is already recorded in ${this.location}`, {
        hint: 'rollout ids are unique; start the rollout again to get a new one',
      });
    }
    await this.c.run(`INSERT INTO rollouts (${ROLLOUT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
      r.id,
      r.fleet,
      r.kind,
      canonicalJson([...r.services].sort()),
      r.planHash,
      r.fromRevision,
      r.toRevision,
      r.author,
      r.state,
      r.wave,
      r.step,
      canonicalJson(r.machine),
      canonicalJson(r.spec),
      r.control === null ? null : canonicalJson(r.control),
      r.createdAt,
      r.updatedAt,
      r.finishedAt,
    ]);
  }

  async getRollout(id: string): Promise<RolloutRecord | undefined> {
    const row = await this.c.get(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?`, [id]);
    return row ? rolloutFromRow(row) : undefined;
  }

  async listRollouts(opts: ListRolloutsOptions = {}): Promise<RolloutRecord[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (opts.fleet !== undefined) {
      where.push('fleet = ?');
      params.push(opts.fleet);
    }
    if (opts.active) where.push(`state NOT IN (${FINAL_STATES.map((s) => `'${s}'`).join(', ')})`);
    let sql = `SELECT ${ROLLOUT_COLUMNS} FROM rollouts${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC`;
    if (opts.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(Math.max(0, Math.floor(opts.limit)));
    }
    return (await this.c.all(sql, params)).map(rolloutFromRow);
  }

  async updateRollout(id: string, patch: RolloutPatch): Promise<void> {
    const sets: string[] = [];
    const params: (string | number | null)[] = [];
    const put = (column: string, value: string | number | null): void => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (patch.state !== undefined) put('state', patch.state);
    if (patch.wave !== undefined) put('wave', patch.wave);
    if (patch.step !== undefined) put('step', patch.step);
    if (patch.machine !== undefined) put('machine', canonicalJson(patch.machine));
    if (patch.control !== undefined) put('control', patch.control === null ? null : canonicalJson(patch.control));
    if (patch.updatedAt !== undefined) put('updated_at', patch.updatedAt);
    if (patch.finishedAt !== undefined) put('finished_at', patch.finishedAt);
    if (sets.length === 0) return;
    const { changes } = await this.c.run(`UPDATE rollouts SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
    if (changes === 0) {
      throw new StoreError('MERIDIAN_E_STORE_UNKNOWN_ROLLOUT', `there is no rollout ${id} in ${this.location}`, {
        hint: 'list the rollouts with `meridian rollout status`',
      });
    }
  }

  async appendRolloutEvent(e: Omit<RolloutEventRecord, 'seq'>): Promise<RolloutEventRecord> {
    const last = await this.c.get('SELECT MAX(seq) AS seq FROM rollout_events WHERE rollout_id = ?', [e.rolloutId]);
    const seq = Number(last?.['seq'] ?? 0) + 1;
    const data = toJson(e.data);
    await this.c.run('INSERT INTO rollout_events (rollout_id, seq, at, type, actor, data) VALUES (?, ?, ?, ?, ?, ?)', [
      e.rolloutId,
      seq,
      e.at,
      e.type,
      e.actor,
      canonicalJson(data),
    ]);
    return { rolloutId: e.rolloutId, seq, at: e.at, type: e.type, actor: e.actor, data };
  }

  async listRolloutEvents(rolloutId: string, opts: { readonly afterSeq?: number | undefined } = {}): Promise<RolloutEventRecord[]> {
    const rows = await this.c.all(
      'SELECT rollout_id, seq, at, type, actor, data FROM rollout_events WHERE rollout_id = ? AND seq > ? ORDER BY seq',
      [rolloutId, opts.afterSeq ?? 0],
    );
    return rows.map((r) => ({
      rolloutId: String(r['rollout_id']),
      seq: Number(r['seq']),
      at: String(r['at']),
      type: String(r['type']),
      actor: String(r['actor']),
      data: JSON.parse(String(r['data'])) as JsonValue,
    }));
  }

  async addApproval(a: Omit<ApprovalRecord, 'id'>): Promise<ApprovalRecord> {
    const last = await this.c.get('SELECT MAX(id) AS id FROM approvals');
    const id = Number(last?.['id'] ?? 0) + 1;
    await this.c.run(
      'INSERT INTO approvals (id, plan_hash, rollout_id, wave, actor, role, decision, reason, at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [id, a.planHash, a.rolloutId, a.wave, a.actor, a.role, a.decision, a.reason, a.at, a.expiresAt],
    );
    return { id, ...a };
  }

  async listApprovals(planHash: string, wave?: string): Promise<ApprovalRecord[]> {
    const rows = await this.c.all(
      `SELECT id, plan_hash, rollout_id, wave, actor, role, decision, reason, at, expires_at FROM approvals WHERE plan_hash = ?${wave === undefined ? '' : ' AND wave = ?'} ORDER BY id`,
      wave === undefined ? [planHash] : [planHash, wave],
    );
    return rows.map((r) => ({
      id: Number(r['id']),
      planHash: String(r['plan_hash']),
      rolloutId: r['rollout_id'] == null ? null : String(r['rollout_id']),
      wave: String(r['wave']),
      actor: String(r['actor']),
      role: String(r['role']),
      decision: r['decision'] === 'reject' ? 'reject' : 'approve',
      reason: r['reason'] == null ? null : String(r['reason']),
      at: String(r['at']),
      expiresAt: String(r['expires_at']),
    }));
  }

  async listLocks(keys?: readonly string[]): Promise<LockRecord[]> {
    if (keys !== undefined && keys.length === 0) return [];
    const rows = await this.c.all(
      `SELECT key, rollout_id, actor, host, pid, token, acquired_at, heartbeat_at FROM rollout_locks${
        keys === undefined ? '' : ` WHERE key IN (${keys.map(() => '?').join(', ')})`
      } ORDER BY key`,
      keys === undefined ? [] : [...keys],
    );
    return rows.map((r) => ({
      key: String(r['key']),
      rolloutId: String(r['rollout_id']),
      actor: String(r['actor']),
      host: String(r['host']),
      pid: r['pid'] == null ? null : Number(r['pid']),
      token: r['token'] == null ? null : String(r['token']),
      acquiredAt: String(r['acquired_at']),
      heartbeatAt: String(r['heartbeat_at']),
    }));
  }

  async putLock(l: LockRecord): Promise<void> {
    await this.c.run(
      `INSERT INTO rollout_locks (key, rollout_id, actor, host, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET rollout_id = excluded.rollout_id, actor = excluded.actor, host = excluded.host, pid = excluded.pid,
         token = excluded.token, acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at`,
      [l.key, l.rolloutId, l.actor, l.host, l.pid, l.token, l.acquiredAt, l.heartbeatAt],
    );
  }

  async releaseLocks(rolloutId: string): Promise<number> {
    return (await this.c.run('DELETE FROM rollout_locks WHERE rollout_id = ?', [rolloutId])).changes;
  }

  async createApiToken(t: Omit<ApiTokenRecord, 'revokedAt' | 'revokedBy'>, by: Actor): Promise<void> {
    if (await this.c.get('SELECT id FROM api_tokens WHERE id = ? OR hash = ?', [t.id, t.hash])) {
      throw new StoreError('MERIDIAN_E_STORE_TOKEN_EXISTS', `an API token with id ${t.id} is already recorded in ${this.location}`, {
        hint: 'create the token again: every token gets a new random id',
      });
    }
    await this.c.run(`INSERT INTO api_tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)`, [
      t.id,
      t.name,
      t.role,
      t.hash,
      t.createdAt,
      t.createdBy,
      t.expiresAt,
    ]);
    await this.appendAudit({
      actor: by,
      action: 'token.create',
      subject: t.id,
      data: { name: t.name, role: t.role, expiresAt: t.expiresAt },
    });
  }

  async apiTokenByHash(hash: string): Promise<ApiTokenRecord | undefined> {
    const row = await this.c.get(`SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?`, [hash]);
    return row ? tokenFromRow(row) : undefined;
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return (await this.c.all(`SELECT ${TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id`)).map(tokenFromRow);
  }

  async revokeApiToken(id: string, by: Actor): Promise<boolean> {
    const at = this.now();
    const { changes } = await this.c.run('UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL', [
      at,
      by.id,
      id,
    ]);
    if (changes === 0) return false;
    await this.appendAudit({ actor: by, action: 'token.revoke', subject: id });
    return true;
  }

  async listFlagSettings(fleet: string): Promise<FlagSettingRecord[]> {
    const rows = await this.c.all(`SELECT ${FLAG_COLUMNS} FROM flag_settings WHERE fleet = ? ORDER BY flag, region`, [fleet]);
    return rows.map(flagFromRow);
  }

  async setFlag(s: FlagSettingInput, by: Actor, reason?: string): Promise<FlagSettingRecord> {
    const record: FlagSettingRecord = {
      fleet: s.fleet,
      flag: s.flag,
      region: s.region,
      enabled: s.enabled,
      percent: s.percent,
      updatedAt: this.now(),
      updatedBy: by.id,
    };
    await this.c.run(
      `INSERT INTO flag_settings (${FLAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (fleet, flag, region) DO UPDATE SET enabled = excluded.enabled, percent = excluded.percent,
         updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      [record.fleet, record.flag, record.region, record.enabled ? 1 : 0, record.percent, record.updatedAt, record.updatedBy],
    );
    await this.appendAudit({
      actor: by,
      action: 'flag.set',
      subject: `${s.fleet}/${s.flag}/${s.region}`,
      reason,
      data: { fleet: s.fleet, flag: s.flag, region: s.region, enabled: s.enabled, percent: s.percent, was: s.was ?? null },
    });
    return record;
  }

  async resetFlag(fleet: string, flag: string, region: string, by: Actor, reason?: string): Promise<boolean> {
    const before = await this.c.get(`SELECT ${FLAG_COLUMNS} FROM flag_settings WHERE fleet = ? AND flag = ? AND region = ?`, [
      fleet,
      flag,
      region,
    ]);
    if (!before) return false;
    await this.c.run('DELETE FROM flag_settings WHERE fleet = ? AND flag = ? AND region = ?', [fleet, flag, region]);
    const was = flagFromRow(before);
    await this.appendAudit({
      actor: by,
      action: 'flag.reset',
      subject: `${fleet}/${flag}/${region}`,
      reason,
      data: { fleet, flag, region, was: { enabled: was.enabled, percent: was.percent, updatedBy: was.updatedBy } },
    });
    return true;
  }

  async listDataMigrations(fleet: string): Promise<DataMigrationRecord[]> {
    const rows = await this.c.all(`SELECT ${DATA_MIGRATION_COLUMNS} FROM data_migrations WHERE fleet = ? ORDER BY region, service, name`, [
      fleet,
    ]);
    return rows.map(dataMigrationFromRow);
  }

  async putDataMigration(m: DataMigrationRecord): Promise<void> {
    await this.c.run(
      `INSERT INTO data_migrations (${DATA_MIGRATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (fleet, region, service, name) DO UPDATE SET phase = excluded.phase, status = excluded.status,
         rollout_id = excluded.rollout_id, updated_at = excluded.updated_at, applied_at = excluded.applied_at`,
      [m.fleet, m.region, m.service, m.name, m.phase, m.status, m.rolloutId, m.updatedAt, m.appliedAt],
    );
  }
}
