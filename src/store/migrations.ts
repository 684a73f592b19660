/**
 * Schema migrations of the state store: one ordered list for both backends. A migration is never edited
 * once released; a change is a new entry at the end. Each is applied in the same transaction as its row
 * in `schema_migrations`, so a failed migration leaves the schema as it was.
 */

export type Dialect = 'sqlite' | 'postgres';

/** One step of the schema. `sql` is either the same for both backends or given per backend. */
export interface Migration {
  /** 1, 2, 3, … without gaps. */
  readonly version: number;
  /** Short kebab-case name; checked on open so that a store and a binary that disagree are caught. */
  readonly name: string;
  readonly sql: readonly string[] | Readonly<Record<Dialect, readonly string[]>>;
  /**
   * This binary reads a store that lacks this migration as well as one that has it (an index; a new
   * encoding beside the old): a read-only open (`meridian validate`) of a store one upgrade behind then
   * reads it as it is instead of refusing it. The next write migrates it.
   */
  readonly readCompatible?: boolean;
}

const GENESIS = '0'.repeat(64);

/** Every migration, in order. Add new ones at the end (rollouts, events, approvals, flags, locks…). */
/** The rollout tables, the same on both backends but for the type of the approvals' key. */
function rolloutTables(approvalId: string): string[] {
  return [
    `CREATE TABLE rollouts (
          id TEXT PRIMARY KEY,
          fleet TEXT NOT NULL,
          kind TEXT NOT NULL,
          services TEXT NOT NULL,
          plan_hash TEXT NOT NULL,
          from_revision TEXT,
          to_revision TEXT NOT NULL,
          author TEXT NOT NULL,
          state TEXT NOT NULL,
          wave INTEGER NOT NULL,
          step INTEGER,
          machine TEXT NOT NULL,
          spec TEXT NOT NULL,
          control TEXT,
          created_at TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          finished_at TEXT
        )`,
    `CREATE INDEX rollouts_by_fleet ON rollouts (fleet, created_at)`,
    `CREATE TABLE rollout_events (
          rollout_id TEXT NOT NULL REFERENCES rollouts(id),
          seq INTEGER NOT NULL,
          at TEXT NOT NULL,
          type TEXT NOT NULL,
          actor TEXT NOT NULL,
          data TEXT NOT NULL,
          PRIMARY KEY (rollout_id, seq)
        )`,
    `CREATE TABLE approvals (
          id ${approvalId},
          plan_hash TEXT NOT NULL,
          rollout_id TEXT,
          wave TEXT NOT NULL,
          actor TEXT NOT NULL,
          role TEXT NOT NULL,
          decision TEXT NOT NULL,
          reason TEXT,
          at TEXT NOT NULL,
          expires_at TEXT NOT NULL
        )`,
    `CREATE INDEX approvals_by_plan ON approvals (plan_hash, wave)`,
    `CREATE TABLE rollout_locks (
          key TEXT PRIMARY KEY,
          rollout_id TEXT NOT NULL,
          actor TEXT NOT NULL,
          host TEXT NOT NULL,
          pid INTEGER,
          token TEXT,
          acquired_at TEXT NOT NULL,
          heartbeat_at TEXT NOT NULL
        )`,
  ];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'revisions-cluster-states-audit',
    sql: {
      sqlite: [
        `CREATE TABLE revisions (
          id TEXT PRIMARY KEY,
          fleet TEXT NOT NULL,
          content TEXT NOT NULL,
          created_at TEXT NOT NULL,
          created_by TEXT NOT NULL,
          reason TEXT
        )`,
        `CREATE TABLE cluster_states (
          cluster TEXT PRIMARY KEY,
          revision_id TEXT NOT NULL REFERENCES revisions(id),
          cluster_hash TEXT NOT NULL,
          state TEXT NOT NULL,
          status TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          updated_by TEXT NOT NULL
        )`,
        `CREATE TABLE audit_log (
          seq INTEGER PRIMARY KEY,
          at TEXT NOT NULL,
          actor TEXT NOT NULL,
          actor_via TEXT,
          action TEXT NOT NULL,
          subject TEXT NOT NULL,
          reason TEXT,
          data TEXT NOT NULL,
          prev_hash TEXT NOT NULL,
          hash TEXT NOT NULL
        )`,
        `CREATE TABLE audit_head (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          count INTEGER NOT NULL,
          hash TEXT NOT NULL
        )`,
        `INSERT INTO audit_head (id, count, hash) VALUES (1, 0, '${GENESIS}')`,
      ],
      postgres: [
        `CREATE TABLE revisions (
          id TEXT PRIMARY KEY,
          fleet TEXT NOT NULL,
          content TEXT NOT NULL,
          created_at TEXT NOT NULL,
          created_by TEXT NOT NULL,
          reason TEXT
        )`,
        `CREATE TABLE cluster_states (
          cluster TEXT PRIMARY KEY,
          revision_id TEXT NOT NULL REFERENCES revisions(id),
          cluster_hash TEXT NOT NULL,
          state TEXT NOT NULL,
          status TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          updated_by TEXT NOT NULL
        )`,
        `CREATE TABLE audit_log (
          seq BIGINT PRIMARY KEY,
          at TEXT NOT NULL,
          actor TEXT NOT NULL,
          actor_via TEXT,
          action TEXT NOT NULL,
          subject TEXT NOT NULL,
          reason TEXT,
          data TEXT NOT NULL,
          prev_hash TEXT NOT NULL,
          hash TEXT NOT NULL
        )`,
        `CREATE TABLE audit_head (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          count BIGINT NOT NULL,
          hash TEXT NOT NULL
        )`,
        `INSERT INTO audit_head (id, count, hash) VALUES (1, 0, '${GENESIS}')`,
      ],
    },
  },
  {
    // Refuses UPDATE and DELETE on the audit log, so that no mistake or stray script rewrites it. Someone
    // with write access can drop these; the hash chain is what catches that (docs/state.md).
    version: 2,
    name: 'audit-append-only',
    sql: {
      sqlite: [
        `CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
          BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
        `CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
          BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
      ],
      postgres: [
        `CREATE FUNCTION meridian_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$`,
        `CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
          FOR EACH ROW EXECUTE FUNCTION meridian_audit_append_only()`,
        `CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
          FOR EACH STATEMENT EXECUTE FUNCTION meridian_audit_append_only()`,
      ],
    },
  },
  {
    // Rollouts as persisted state machines: the rollout, its append-only transition log, approvals
    // (append-only: a decision is never edited, a later one is added) and the per-service locks.
    version: 3,
    name: 'rollouts-events-approvals-locks',
    sql: {
      sqlite: [
        ...rolloutTables('INTEGER PRIMARY KEY'),
        `CREATE TRIGGER rollout_events_no_update BEFORE UPDATE ON rollout_events
          BEGIN SELECT RAISE(ABORT, 'rollout events are append-only'); END`,
        `CREATE TRIGGER rollout_events_no_delete BEFORE DELETE ON rollout_events
          BEGIN SELECT RAISE(ABORT, 'rollout events are append-only'); END`,
        `CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
          BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END`,
        `CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals
          BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END`,
      ],
      postgres: [
        ...rolloutTables('BIGINT PRIMARY KEY'),
        `CREATE FUNCTION meridian_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$`,
        `CREATE TRIGGER rollout_events_append_only BEFORE UPDATE OR DELETE ON rollout_events
          FOR EACH ROW EXECUTE FUNCTION meridian_append_only()`,
        `CREATE TRIGGER approvals_append_only BEFORE UPDATE OR DELETE ON approvals
          FOR EACH ROW EXECUTE FUNCTION meridian_append_only()`,
      ],
    },
  },
  {
    // Operators' per-region flag settings (`meridian flag set`), over the fleet file's `flags:` defaults.
    // One row per fleet, flag and region; every change is audited (`flag.set`, `flag.reset`).
    version: 4,
    name: 'flag-settings',
    sql: {
      sqlite: [
        `CREATE TABLE flag_settings (
          fleet TEXT NOT NULL,
          flag TEXT NOT NULL,
          region TEXT NOT NULL,
          enabled INTEGER NOT NULL,
          percent REAL NOT NULL,
          updated_at TEXT NOT NULL,
          updated_by TEXT NOT NULL,
          PRIMARY KEY (fleet, flag, region)
        )`,
      ],
      postgres: [
        `CREATE TABLE flag_settings (
          fleet TEXT NOT NULL,
          flag TEXT NOT NULL,
          region TEXT NOT NULL,
          enabled INTEGER NOT NULL,
          percent DOUBLE PRECISION NOT NULL,
          updated_at TEXT NOT NULL,
          updated_by TEXT NOT NULL,
          PRIMARY KEY (fleet, flag, region)
        )`,
      ],
    },
  },
  {
    // API tokens of the control plane (`meridian token create`): only a SHA-256 of each token is kept.
    version: 5,
    name: 'api-tokens',
    sql: [
      `CREATE TABLE api_tokens (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          role TEXT NOT NULL,
          hash TEXT NOT NULL UNIQUE,
          created_at TEXT NOT NULL,
          created_by TEXT NOT NULL,
          expires_at TEXT,
          revoked_at TEXT,
          revoked_by TEXT
        )`,
    ],
  },
  {
    // revisions are stored compressed from now on (src/store/revision-content.ts); a binary older than
    // this migration could not read them, and refuses the store for its newer schema version
    version: 6,
    name: 'revision-content-compressed',
    sql: ['CREATE INDEX revisions_by_created ON revisions (created_at, id)'],
    readCompatible: true, // plain-JSON revisions are still read
  },
  {
    // The ledger of services' data migrations (docs/migrations.md): one row per fleet, region, service and
    // migration, saying what ran last and which rollout ran it; written with the rollout's transitions.
    version: 7,
    name: 'data-migrations',
    sql: [
      `CREATE TABLE data_migrations (
          fleet TEXT NOT NULL,
          region TEXT NOT NULL,
          service TEXT NOT NULL,
          name TEXT NOT NULL,
          phase TEXT NOT NULL,
          status TEXT NOT NULL,
          rollout_id TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          applied_at TEXT,
          PRIMARY KEY (fleet, region, service, name)
        )`,
    ],
    readCompatible: true, // only a rollout reads the ledger, and it opens the store for writing (which migrates it)
  },
];

/** The statements of a migration for one backend. */
export function statementsFor(m: Migration, dialect: Dialect): readonly string[] {
  return isPerDialect(m.sql) ? m.sql[dialect] : m.sql;
}

function isPerDialect(sql: Migration['sql']): sql is Readonly<Record<Dialect, readonly string[]>> {
  return !Array.isArray(sql);
}

/** The newest schema version this binary knows. */
export const LATEST_VERSION = MIGRATIONS.reduce((n, m) => Math.max(n, m.version), 0);
