/**
 * The store's rows as records: the column lists each query selects and the functions that read a row
 * back into the record types of `store.ts` (for `SqlOps` and `SqlStore`).
 */
import { StoreError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import type { Revision } from '../render/render.js';
import type { Row } from './sql.js';
import type { ApiTokenRecord, AuditEntry, DataMigrationRecord, FlagSettingRecord, JsonValue, RolloutRecord } from './store.js';

/** The columns {@link auditFromRow} reads. */
export const AUDIT_COLUMNS = 'seq, at, actor, actor_via, action, subject, reason, data, prev_hash, hash';
/** The columns {@link rolloutFromRow} reads. */
export const ROLLOUT_COLUMNS =
  'id, fleet, kind, services, plan_hash, from_revision, to_revision, author, state, wave, step, machine, spec, control, created_at, updated_at, finished_at';

/** The columns {@link dataMigrationFromRow} reads, in `SELECT` order. */
export const DATA_MIGRATION_COLUMNS = 'fleet, region, service, name, phase, status, rollout_id, updated_at, applied_at';

/** A `data_migrations` row as a record. */
export function dataMigrationFromRow(r: Row): DataMigrationRecord {
  return {
    fleet: String(r['fleet']),
    region: String(r['region']),
    service: String(r['service']),
    name: String(r['name']),
    phase: r['phase'] === 'contract' ? 'contract' : 'expand',
    status: String(r['status']) as DataMigrationRecord['status'],
    rolloutId: String(r['rollout_id']),
    updatedAt: String(r['updated_at']),
    appliedAt: r['applied_at'] == null ? null : String(r['applied_at']),
  };
}

/** The columns {@link tokenFromRow} reads. */
export const TOKEN_COLUMNS = 'id, name, role, hash, created_at, created_by, expires_at, revoked_at, revoked_by';
/** The columns {@link flagFromRow} reads. */
export const FLAG_COLUMNS = 'fleet, flag, region, enabled, percent, updated_at, updated_by';

/** A `flag_settings` row as a record. */
export function flagFromRow(r: Row): FlagSettingRecord {
  return {
    fleet: String(r['fleet']),
    flag: String(r['flag']),
    region: String(r['region']),
    enabled: Number(r['enabled']) !== 0,
    percent: Number(r['percent']),
    updatedAt: String(r['updated_at']),
    updatedBy: String(r['updated_by']),
  };
}

/** An `api_tokens` row as a record. */
export function tokenFromRow(r: Row): ApiTokenRecord {
  const opt = (v: unknown): string | null => (v == null ? null : String(v));
  return {
    id: String(r['id']),
    name: String(r['name']),
    role: String(r['role']),
    hash: String(r['hash']),
    createdAt: String(r['created_at']),
    createdBy: String(r['created_by']),
    expiresAt: opt(r['expires_at']),
    revokedAt: opt(r['revoked_at']),
    revokedBy: opt(r['revoked_by']),
  };
}

/** A `rollouts` row as a record (its JSON columns parsed). */
export function rolloutFromRow(r: Row): RolloutRecord {
  const json = (v: unknown): JsonValue => JSON.parse(String(v)) as JsonValue;
  const kind = String(r['kind']);
  return {
    id: String(r['id']),
    fleet: String(r['fleet']),
    kind: kind === 'rollback' ? 'rollback' : 'rollout',
    services: JSON.parse(String(r['services'])) as string[],
    planHash: String(r['plan_hash']),
    fromRevision: r['from_revision'] == null ? null : String(r['from_revision']),
    toRevision: String(r['to_revision']),
    author: String(r['author']),
    state: String(r['state']),
    wave: Number(r['wave']),
    step: r['step'] == null ? null : Number(r['step']),
    machine: json(r['machine']),
    spec: json(r['spec']),
    control: r['control'] == null ? null : json(r['control']),
    createdAt: String(r['created_at']),
    updatedAt: String(r['updated_at']),
    finishedAt: r['finished_at'] == null ? null : String(r['finished_at']),
  };
}

/** JSON-normalises audit data (drops undefined, turns non-finite numbers into null) so that it hashes the same after a round trip. */
export function toJson(data: JsonValue | undefined): JsonValue {
  if (data === undefined) return null;
  return JSON.parse(canonicalJson(data)) as JsonValue;
}

/** An `audit_log` row as an entry (unparseable data is kept as `$unparseable`, so it fails its hash). */
export function auditFromRow(r: Row): AuditEntry {
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

/** A stored revision's JSON, checked to be the revision `id`; MERIDIAN_E_STORE_CORRUPT otherwise. */
export function parseRevision(json: string, id: string): Revision {
  const value: unknown = JSON.parse(json);
  if (!value || typeof value !== 'object' || (value as { id?: unknown }).id !== id) {
    throw new StoreError('MERIDIAN_E_STORE_CORRUPT', `the stored revision ${id} is not a revision`, {
      hint: 'the store was changed outside meridian; restore it from a backup',
    });
  }
  return value as Revision;
}
