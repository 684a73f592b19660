/**
 * Real PostgreSQL for the data-migration tests (127.0.0.1:5432, db `test`, or MERIDIAN_TEST_PG_URL): one
 * schema per region per test, named uniquely and dropped afterwards (other people use the same
 * database), a log schema the `up` commands write a row to, a snapshot of a schema's shape read from
 * information_schema and pg_indexes, and the fleet YAML that gives the tiny fleet's `web` service an
 * expand migration run with psql against its region's schema.
 */
import pg from 'pg';

const URL_ = process.env['MERIDIAN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface PgRegions {
  /** Region → its schema. */
  readonly schemas: Readonly<Record<string, string>>;
  /** Where `up` logs each run (table up_log: region, rollout). */
  readonly log: string;
  /** Tables, columns and indexes of a schema, in a stable order. */
  snapshot(schema: string): Promise<unknown>;
  /** The rows of the up log, as `region` strings, in order. */
  ups(): Promise<string[]>;
  query(sql: string): Promise<Record<string, unknown>[]>;
  dispose(): Promise<void>;
}

/** Creates a schema per region, each with an `orders` table, and the log schema. */
export async function pgRegions(prefix: string, regions: readonly string[]): Promise<PgRegions> {
  const client = new pg.Client({ connectionString: URL_, connectionTimeoutMillis: 5000 });
  // no skip when it is down: these tests need it (`bash scripts/ensure-postgres.sh` starts one)
  await client.connect().catch((err: Error) => {
    throw new Error(`PostgreSQL is not reachable at ${URL_} (${err.message}); start it, or set MERIDIAN_TEST_PG_URL`);
  });
  // plain names (a random-looking value in the fleet's env fails its no-literal-secrets rule); a leftover of a killed run is replaced
  const base = `mrd_${prefix}_${process.pid}`;
  const schemas = Object.fromEntries(regions.map((r) => [r, `${base}_${r}`]));
  const log = `${base}_log`;
  process.env['MERIDIAN_TEST_UP_LOG'] = `${log}.up_log`; // what the fleet's secret UP_LOG refers to (env:), for up and rollout
  for (const s of [...Object.values(schemas), log]) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  for (const s of Object.values(schemas)) {
    await client.query(`CREATE SCHEMA "${s}"`);
    await client.query(`CREATE TABLE "${s}".orders (id serial PRIMARY KEY, total numeric NOT NULL)`);
    await client.query(`INSERT INTO "${s}".orders (total) VALUES (10), (20)`);
  }
  await client.query(`CREATE SCHEMA "${log}"`);
  await client.query(`CREATE TABLE "${log}".up_log (n serial PRIMARY KEY, region text NOT NULL, rollout text NOT NULL)`);
  const query = async (sql: string): Promise<Record<string, unknown>[]> => (await client.query(sql)).rows as Record<string, unknown>[];
  return {
    schemas,
    log,
    query,
    snapshot: async (schema) => ({
      tables: await query(
        `SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = '${schema}' ORDER BY table_name`,
      ),
      columns: await query(
        `SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_schema = '${schema}' ORDER BY table_name, ordinal_position`,
      ),
      indexes: await query(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = '${schema}' ORDER BY indexname`),
      rows: await query(`SELECT id, total FROM "${schema}".orders ORDER BY id`),
    }),
    ups: async () => (await query(`SELECT region FROM "${log}".up_log ORDER BY n`)).map((r) => String(r['region'])),
    dispose: async () => {
      for (const s of [...Object.values(schemas), log]) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      await client.end();
    },
  };
}

const PSQL = 'psql -X -q -v ON_ERROR_STOP=1 --single-transaction';

/**
 * The tiny fleet's `web` with the database of its region (PG* variables, the region's schema by
 * PGOPTIONS in a region override) and one expand migration: a column and an index on `orders`, and a
 * row in the up log; its down removes both.
 */
export function withMigration(db: PgRegions): (yaml: string) => string {
  const u = new URL(URL_);
  const env = `{ PGHOST: '${u.hostname}', PGPORT: '${u.port || '5432'}', PGUSER: '${decodeURIComponent(u.username) || 'postgres'}', PGDATABASE: '${u.pathname.slice(1)}' }`;
  const overrides = Object.entries(db.schemas)
    .map(([region, schema]) => `      - match: { region: ${region} }\n        set: { env: { PGOPTIONS: '-c search_path=${schema}' } }`)
    .join('\n');
  const up = `${PSQL} -c "ALTER TABLE orders ADD COLUMN note text; CREATE INDEX orders_note ON orders (note); INSERT INTO $UP_LOG (region, rollout) VALUES ('$MERIDIAN_REGION', '$MERIDIAN_ROLLOUT')"`;
  const down = `${PSQL} -c "DROP INDEX IF EXISTS orders_note; ALTER TABLE orders DROP COLUMN IF EXISTS note"`;
  const block = [
    `    env: ${env}`,
    `    secrets: { UP_LOG: { ref: 'env:MERIDIAN_TEST_UP_LOG' } }`,
    `    overrides:`,
    overrides,
    `    migrations:`,
    `      - name: add-order-note`,
    `        phase: expand`,
    `        up: ${JSON.stringify(up)}`,
    `        down: ${JSON.stringify(down)}`,
    `        timeout: 30s`,
  ].join('\n');
  return (yaml) =>
    yaml.replace('    local: { command: [node, services/web.mjs] }\n', `    local: { command: [node, services/web.mjs] }\n${block}\n`);
}
