/**
 * The engine's `migrate` effect: runs a data migration's `up` or `down` through the {@link MigrationRunner}
 * port, with the ledger (`data_migrations`) around it. See docs/migrations.md.
 */
import { RolloutError } from '../errors.js';
import type { DataMigrationRecord, JsonValue, RolloutRecord, Store } from '../store/store.js';
import type { MigrationRun } from './data-migrations.js';
import type { EngineClock, MigrationRunner } from './ports.js';
import type { RolloutSpec } from './rollout-spec.js';
import type { Effect, MachineEvent } from './state-machine.js';

/** What the effect needs of the engine's ports. */
export interface MigrationPorts {
  readonly store: Store;
  readonly clock: EngineClock;
  readonly runner: MigrationRunner | undefined;
}

/** The event the run causes, its details for the log, and the ledger row to write with the transition. */
export interface MigrationPerformed {
  readonly event: MachineEvent;
  readonly details: Record<string, JsonValue>;
  readonly ledger?: DataMigrationRecord;
}

/**
 * Runs a migration's `up` or `down`, unless the ledger says it is done already (an `up` applied: by this
 * rollout before a crash, or by another). Its start is recorded in the ledger first (a run interrupted
 * there is run again: commands must be idempotent or transactional); its end goes into the ledger in
 * the transaction of the transition it causes.
 */
export async function performMigration(
  ports: MigrationPorts,
  effect: Extract<Effect, { kind: 'migrate' }>,
  rec: RolloutRecord,
  spec: RolloutSpec,
): Promise<MigrationPerformed> {
  const { store, clock, runner } = ports;
  const run = spec.migrations?.find((m) => m.key === effect.migration);
  if (!run) throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `the rollout's spec has no migration ${effect.migration}`);
  const up = effect.direction === 'up';
  const row = (await store.listDataMigrations(spec.fleet)).find(
    (r) => r.region === run.region && r.service === run.service && r.name === run.name,
  );
  const where = {
    migration: run.key,
    region: run.region,
    service: run.service,
    name: run.name,
    phase: run.phase,
    direction: effect.direction,
  };
  if (up && row?.status === 'applied') {
    return {
      event: { type: 'migrated', at: clock.now(), migration: run.key, ran: row.rolloutId === rec.id },
      details: { ...where, skipped: `the ledger records it applied by ${row.rolloutId} at ${row.appliedAt ?? row.updatedAt}` },
    };
  }
  if (!up && row?.status === 'reverted' && row.rolloutId === rec.id) {
    return {
      event: { type: 'migration-reverted', at: clock.now(), migration: run.key },
      details: { ...where, skipped: 'reverted already' },
    };
  }
  const ledger = (status: DataMigrationRecord['status'], appliedAt: string | null): DataMigrationRecord => ({
    fleet: spec.fleet,
    region: run.region,
    service: run.service,
    name: run.name,
    phase: run.phase,
    status,
    rolloutId: rec.id,
    updatedAt: new Date(clock.now()).toISOString(),
    appliedAt,
  });
  if (!runner) throw new Error('this driver was started without a migration runner'); // the engine makes it a failed effect
  await store.withTransaction(async (tx) => {
    await tx.putDataMigration(ledger(up ? 'running' : 'reverting', row?.appliedAt ?? null));
    await tx.appendAudit({ actor: { id: rec.author }, action: `${spec.kind}.migration-start`, subject: rec.id, data: where });
  });
  const res = await runner.run({ run, direction: effect.direction, rolloutId: rec.id, fleet: spec.fleet, dir: spec.migrationDir });
  const details = { ...where, exitCode: res.exitCode, durationMs: res.durationMs, output: res.output };
  if (!res.ok) {
    return {
      event: { type: 'effect-failed', at: clock.now(), reason: failedReason(run, effect.direction, res) },
      details,
      ledger: ledger('failed', row?.appliedAt ?? null),
    };
  }
  const at = new Date(clock.now()).toISOString();
  return up
    ? { event: { type: 'migrated', at: clock.now(), migration: run.key, ran: true }, details, ledger: ledger('applied', at) }
    : {
        event: { type: 'migration-reverted', at: clock.now(), migration: run.key },
        details,
        ledger: ledger('reverted', row?.appliedAt ?? null),
      };
}

/** Why a migration's run failed, naming it, its region and what to do. */
function failedReason(
  run: MigrationRun,
  direction: 'up' | 'down',
  res: { exitCode: number | null; error?: string; output: string },
): string {
  const how = res.error ?? `exit ${res.exitCode}`;
  const last = res.output.trim().split('\n').slice(-2).join(' / ').slice(0, 300);
  const what = `the ${direction} of ${run.phase} migration ${run.name} of service ${run.service} in region ${run.region} failed (${how})${last ? `: ${last}` : ''}`;
  return direction === 'up'
    ? what
    : `${what}; the schema of region ${run.region} may still hold what its up added: fix the cause, run its down by hand with the service's environment there, and check the region's schema (the ledger, data_migrations in the state store, marks it failed)`;
}
