/**
 * The state store's interface: revisions, what each cluster runs, and the hash-chained audit log. Both
 * backends (SQLite, PostgreSQL) implement it and pass one contract suite (test/store.contract.ts).
 */
import type { RenderedCluster, Revision } from '../render/render.js';
import type { Actor } from './actor.js';

export type { Actor } from './actor.js';
export { resolveActor } from './actor.js';

/** A JSON value, as kept in an audit entry's `data`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A revision as listed, without its content. */
export interface RevisionSummary {
  readonly id: string;
  readonly fleet: string;
  /** ISO time the revision was first recorded. */
  readonly createdAt: string;
  readonly createdBy: string;
  readonly reason: string | null;
}

/** What one cluster runs, as last recorded. */
export interface ClusterRecord {
  readonly cluster: string;
  readonly revisionId: string;
  /** `state.hash`: the hash of the cluster's rendered content. */
  readonly clusterHash: string;
  readonly state: RenderedCluster;
  /** Free-form status set by whoever records it (`planned`, `deploying`, `healthy`, `failed`, …). */
  readonly status: string;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

/** What to append to the audit log. */
export interface AuditInput {
  readonly actor: Actor;
  /** What happened, as `noun.verb`: `revision.create`, `cluster.state`, `rollout.start`. */
  readonly action: string;
  /** What it happened to: a revision id, a cluster name, a rollout id. */
  readonly subject: string;
  readonly reason?: string | undefined;
  /** Details, as JSON. Hashed in canonical form, so key order does not matter. */
  readonly data?: JsonValue | undefined;
}

/** One entry of the audit log. `hash` = sha256(prevHash + canonicalJson(the other fields)). */
export interface AuditEntry {
  readonly seq: number;
  /** ISO time, from the store's clock. */
  readonly at: string;
  readonly actor: Actor;
  readonly action: string;
  readonly subject: string;
  readonly reason: string | null;
  readonly data: JsonValue;
  readonly prevHash: string;
  readonly hash: string;
}

/** What is wrong with the audit log, at the first bad entry. */
export type AuditProblem =
  /** The entry's content no longer matches its own hash. */
  | 'edited'
  /** The entry does not follow the one before it (its prevHash differs): inserted, reordered, or the one before was rewritten and rehashed. */
  | 'inserted'
  /** An entry is missing: a gap in the sequence, or the newest entries were removed (the head anchor counts more). */
  | 'deleted'
  /** The head anchor is missing or disagrees with the newest entry in a way none of the above explains. */
  | 'anchor';

/** The result of walking the audit chain from the first entry to the head anchor. */
export type AuditVerification =
  | { readonly ok: true; readonly count: number; readonly headHash: string }
  | {
      readonly ok: false;
      /** Entries read before the problem was found. */
      readonly count: number;
      /** The hash of the last good entry (the genesis hash when there is none). */
      readonly headHash: string;
      /** The sequence number of the first bad (or missing) entry. */
      readonly seq: number;
      readonly problem: AuditProblem;
      readonly message: string;
    };

/** The kind of a persisted rollout: a forward rollout, or a `meridian rollback` (recorded the same way). */
export type RolloutKind = 'rollout' | 'rollback';

/**
 * A rollout as persisted: a state machine whose whole state is `machine` (see src/rollout/state-machine.ts)
 * and whose inputs are `spec`. The other columns repeat parts of it for listing and locking.
 */
export interface RolloutRecord {
  readonly id: string;
  readonly fleet: string;
  readonly kind: RolloutKind;
  /** The services it touches (what its locks are named after), sorted. */
  readonly services: readonly string[];
  readonly planHash: string;
  /** The revision the fleet ran before (the plan's baseline), or null. */
  readonly fromRevision: string | null;
  readonly toRevision: string;
  /** Who started it. */
  readonly author: string;
  /** `running`, `paused`, `awaiting-approval`, or a final outcome (`promoted`, `rolled-back`, `failed`). */
  readonly state: string;
  /** Index of the current wave, and of the current step in it (null outside the steps). */
  readonly wave: number;
  readonly step: number | null;
  readonly machine: JsonValue;
  readonly spec: JsonValue;
  /** A control request (pause, resume, abort, promote) waiting for the driver, or null. */
  readonly control: JsonValue | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

/** The columns of a rollout that change as it runs. */
export type RolloutPatch = Partial<Pick<RolloutRecord, 'state' | 'wave' | 'step' | 'machine' | 'control' | 'updatedAt' | 'finishedAt'>>;

/** One transition of a rollout, in its append-only log. `seq` counts from 1 per rollout. */
export interface RolloutEventRecord {
  readonly rolloutId: string;
  readonly seq: number;
  readonly at: string;
  readonly type: string;
  readonly actor: string;
  readonly data: JsonValue;
}

/** An approval or rejection of one wave of a plan (append-only). */
export interface ApprovalRecord {
  readonly id: number;
  /** The plan it is bound to: a different plan hash does not count it. */
  readonly planHash: string;
  readonly rolloutId: string | null;
  readonly wave: string;
  readonly actor: string;
  readonly role: string;
  readonly decision: 'approve' | 'reject';
  readonly reason: string | null;
  readonly at: string;
  readonly expiresAt: string;
}

/** A rollout's hold on one service (`key` = `fleet/service`). `pid` and `token` are null while no process drives it (parked). */
export interface LockRecord {
  readonly key: string;
  readonly rolloutId: string;
  readonly actor: string;
  readonly host: string;
  readonly pid: number | null;
  readonly token: string | null;
  readonly acquiredAt: string;
  readonly heartbeatAt: string;
}

/** Options of {@link StoreOps.listRollouts}. */
export interface ListRolloutsOptions {
  readonly fleet?: string | undefined;
  /** Only rollouts that have not finished. */
  readonly active?: boolean | undefined;
  readonly limit?: number | undefined;
}

/** Options of {@link StoreOps.listAudit}. */
export interface ListAuditOptions {
  /** At most this many entries. */
  readonly limit?: number | undefined;
  /** Only entries with a larger sequence number. */
  readonly afterSeq?: number | undefined;
  /** Newest first (with `limit`: the newest N). Default oldest first. */
  readonly newestFirst?: boolean | undefined;
}

/** An API token of the control plane (`meridian token create`), as stored: never the token, only its hash. */
export interface ApiTokenRecord {
  /** Public id, also the token's second part (`mrd_<id>_<secret>`); what `token revoke` names. */
  readonly id: string;
  readonly name: string;
  /** `viewer`, `deployer`, `approver` or `admin` (src/server/auth/roles.ts). */
  readonly role: string;
  /** SHA-256 (hex) of the whole token. */
  readonly hash: string;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly revokedBy: string | null;
}

/** An operator's setting of a flag in one region; it overrides the fleet file's `flags:` there. */
export interface FlagSettingRecord {
  readonly fleet: string;
  readonly flag: string;
  readonly region: string;
  readonly enabled: boolean;
  /** 0..100: the share of users (by a sticky hash) for whom the flag is on while enabled. */
  readonly percent: number;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

/** What {@link StoreOps.setFlag} records. `was` (the effective state before, as the caller saw it) goes into the audit entry. */
export interface FlagSettingInput {
  readonly fleet: string;
  readonly flag: string;
  readonly region: string;
  readonly enabled: boolean;
  readonly percent: number;
  readonly was?: JsonValue | undefined;
}

/** Where a data migration of a service stands in one region: `running` (its up started), `applied`, `reverting` (its down started), `reverted`, `failed`. */
export type DataMigrationStatus = 'running' | 'applied' | 'reverting' | 'reverted' | 'failed';

/** The ledger's row for one data migration of a service in one region (docs/migrations.md): what happened last, by which rollout. */
export interface DataMigrationRecord {
  readonly fleet: string;
  readonly region: string;
  readonly service: string;
  readonly name: string;
  readonly phase: 'expand' | 'contract';
  readonly status: DataMigrationStatus;
  /** The rollout that ran it last. */
  readonly rolloutId: string;
  readonly updatedAt: string;
  /** When its up last completed (kept when it is reverted), or null. */
  readonly appliedAt: string | null;
}

/** The operations that read and change state; inside {@link Store.withTransaction} they join its transaction. */
export interface StoreOps {
  /**
   * Records a revision. Idempotent by id: the same content is the same revision, and recording it again
   * changes nothing and writes no audit entry. Throws MERIDIAN_E_STORE_REVISION_CONFLICT when the id is
   * already recorded with different content.
   */
  putRevision(rev: Revision, by: Actor, reason?: string): Promise<{ created: boolean }>;
  getRevision(id: string): Promise<Revision | undefined>;
  /** Every recorded revision, oldest first. */
  listRevisions(): Promise<RevisionSummary[]>;
  /** What each cluster runs, by cluster name. */
  clusterStates(): Promise<Record<string, ClusterRecord>>;
  /** Records what a cluster runs (the revision must be recorded first), with an audit entry `cluster.state`. */
  recordClusterState(
    cluster: string,
    revisionId: string,
    state: RenderedCluster,
    status: string,
    by: Actor,
    reason?: string,
  ): Promise<void>;
  /** Appends an entry to the audit log and moves the head anchor, atomically. */
  appendAudit(input: AuditInput): Promise<AuditEntry>;
  listAudit(opts?: ListAuditOptions): Promise<AuditEntry[]>;

  // Rollouts. These methods write no audit entry of their own: the rollout code appends one in the same
  // transaction (see src/rollout/engine.ts), so that a transition and its audit entry land together.

  /** Records a new rollout; MERIDIAN_E_STORE_ROLLOUT_EXISTS when the id is taken. */
  insertRollout(rollout: RolloutRecord): Promise<void>;
  getRollout(id: string): Promise<RolloutRecord | undefined>;
  /** Rollouts, newest first. */
  listRollouts(opts?: ListRolloutsOptions): Promise<RolloutRecord[]>;
  /** Changes the running columns of a rollout; MERIDIAN_E_STORE_UNKNOWN_ROLLOUT when there is none. */
  updateRollout(id: string, patch: RolloutPatch): Promise<void>;
  /** Appends a transition to a rollout's log with the next sequence number, and returns it. */
  appendRolloutEvent(event: Omit<RolloutEventRecord, 'seq'>): Promise<RolloutEventRecord>;
  /** A rollout's transitions, oldest first. */
  listRolloutEvents(rolloutId: string, opts?: { readonly afterSeq?: number | undefined }): Promise<RolloutEventRecord[]>;
  /** Appends an approval or rejection and returns it with its id. */
  addApproval(approval: Omit<ApprovalRecord, 'id'>): Promise<ApprovalRecord>;
  /** Approvals of a plan (optionally of one wave), oldest first. */
  listApprovals(planHash: string, wave?: string): Promise<ApprovalRecord[]>;
  /** Locks by key (all when `keys` is absent), sorted by key. */
  listLocks(keys?: readonly string[]): Promise<LockRecord[]>;
  /** Creates or replaces the lock on `lock.key`. Check who holds it first, in the same transaction. */
  putLock(lock: LockRecord): Promise<void>;
  /** Removes every lock a rollout holds; returns how many. */
  releaseLocks(rolloutId: string): Promise<number>;

  // API tokens of the control plane (migration 5). Creating and revoking one writes its audit entry.

  /** Records a new API token (`token.create` in the audit log); MERIDIAN_E_STORE_TOKEN_EXISTS when the id is taken. */
  createApiToken(token: Omit<ApiTokenRecord, 'revokedAt' | 'revokedBy'>, by: Actor): Promise<void>;
  /** The token with this hash, revoked or not, or undefined. */
  apiTokenByHash(hash: string): Promise<ApiTokenRecord | undefined>;
  /** Every token, oldest first. */
  listApiTokens(): Promise<ApiTokenRecord[]>;
  /** Revokes a token (`token.revoke`); false when there is no such unrevoked token. */
  revokeApiToken(id: string, by: Actor): Promise<boolean>;

  // Flags (migration 4): operators' per-region settings over the fleet file's `flags:`. Each change writes its audit entry.

  /** The flag settings of a fleet, sorted by flag and region. */
  listFlagSettings(fleet: string): Promise<FlagSettingRecord[]>;
  /** Creates or replaces the setting of a flag in a region, with an audit entry `flag.set` (data: the setting and `was`). */
  setFlag(setting: FlagSettingInput, by: Actor, reason?: string): Promise<FlagSettingRecord>;
  /** Removes the setting of a flag in a region (back to the fleet file), with an audit entry `flag.reset`; false when there was none. */
  resetFlag(fleet: string, flag: string, region: string, by: Actor, reason?: string): Promise<boolean>;

  // The data-migration ledger (migration 7). Like the rollout methods, no audit entry of their own: the
  // rollout engine appends one in the same transaction.

  /** The ledger of a fleet, sorted by region, service and name. */
  listDataMigrations(fleet: string): Promise<DataMigrationRecord[]>;
  /** Creates or replaces the ledger's row for (fleet, region, service, name). */
  putDataMigration(record: DataMigrationRecord): Promise<void>;
}

/** Operations available inside a transaction. */
export type StoreTx = StoreOps;

/** A state store. Every method is atomic: a change and its audit entry land together or not at all. */
export interface Store extends StoreOps {
  readonly backend: 'sqlite' | 'postgres';
  /** Where the state is, for messages (a path, or a URL without its password). */
  readonly location: string;
  /**
   * Runs `fn` in one write transaction: everything it does through `tx` lands together, or nothing does
   * when it throws. Write transactions are exclusive (one writer at a time, across processes and machines).
   * Do not call the store itself inside `fn`; use `tx`.
   */
  withTransaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /**
   * Walks the audit chain from the genesis to the head anchor; never throws for a broken chain. With
   * `from` (a head this store verified before), walks only the entries after it — when that entry is
   * still there with that hash; otherwise the whole chain.
   */
  verifyAudit(opts?: { readonly from?: { readonly count: number; readonly hash: string } | undefined }): Promise<AuditVerification>;
  close(): Promise<void>;
}

/** A clock, injectable so that tests and the audit log agree on time. */
export type Clock = () => Date;
