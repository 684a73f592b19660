/**
 * Data migrations in the engine, in-process: the port fakes of test/rollout-kit.ts for the clusters, the
 * real ProcessMigrationRunner (commands run by /bin/sh, writing to a log file), the ledger in SQLite.
 * Failed ups and downs, timeouts, the environment a migration gets; and the pure rules of
 * src/rollout/data-migrations.ts (which runs, the contract refusal).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MeridianError } from '../src/errors.js';
import { assertNoContractWithNewVersion, migrationRuns } from '../src/rollout/data-migrations.js';
import { createRollout, RolloutEngine, takeOver } from '../src/rollout/engine.js';
import { holderFor } from '../src/rollout/lock.js';
import { ProcessMigrationRunner } from '../src/rollout/migration-runner.js';
import { rolloutSpecFromPlan } from '../src/rollout/rollout-spec.js';
import type { DataMigration } from '../src/spec/schema.js';
import type { Store } from '../src/store/store.js';
import { fakeClock, FakeDriver, FakeTraffic, ScriptedAnalysis, seed, world } from './support/rollout-kit.js';

const dir = mkdtempSync(join(tmpdir(), 'meridian-migrations-'));
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const alice = { id: 'alice', via: 'flag' } as const;
process.env['MERIDIAN_TEST_DB_PASSWORD'] = 'hunter2-but-longer';
let n = 0;

/** A rollout of the shop's next version whose `web` declares `migrations`; commands append to `log`. */
async function setup(migrations: (log: string) => DataMigration[], onFailure: 'rollback-all' | 'rollback-wave' = 'rollback-all') {
  const log = join(dir, `log-${++n}`);
  writeFileSync(log, '');
  const w = await world((f) => {
    if (f.rollout) f.rollout.onFailure = onFailure;
    for (const wave of f.rollout?.waves ?? []) delete wave.approvals;
    const web = f.services?.['web'];
    if (web) {
      web.env = { ...web.env, DB_SCHEMA: 'shop' };
      web.secrets = { DB_PASSWORD: { ref: 'env:MERIDIAN_TEST_DB_PASSWORD' } }; // the local runner resolves env: and file:
      web.overrides = [...(web.overrides ?? []), { match: { region: 'us-east' }, set: { env: { DB_SCHEMA: 'shop_us' } } }];
      web.migrations = migrations(log);
    }
  });
  stores.push(w.store);
  const clusters = w.plan.waves.flatMap((x) => x.clusters);
  const runs = migrationRuns(w.fleet, w.rev2, clusters, await w.store.listDataMigrations(w.fleet.fleet));
  const spec = rolloutSpecFromPlan(w.plan, w.fleet, ['web', 'api'], ['alice'], {
    healthyChecks: 1,
    migrations: { runs, revision: w.rev2, dir },
  });
  const driver = new FakeDriver();
  await seed(driver, w.rev1);
  const clock = fakeClock();
  const engine = new RolloutEngine(
    {
      store: w.store,
      driver,
      traffic: new FakeTraffic(),
      analysis: new ScriptedAnalysis(),
      clock,
      migrations: new ProcessMigrationRunner(),
    },
    { pollMs: 100 },
  );
  const id = `ro-mig-${n}`;
  await createRollout(w.store, spec, holderFor(id, alice), { now: clock.now() });
  const drive = async () => {
    const h = holderFor(id, alice);
    await takeOver(w.store, id, h, { now: clock.now() });
    return engine.drive(id, h);
  };
  const lines = (): string[] => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
  return { w, spec, driver, drive, lines, id, runs };
}

const m = (name: string, up: string, down: string, extra: Partial<DataMigration> = {}): DataMigration => ({
  name,
  phase: 'expand',
  up,
  down,
  ...extra,
});

describe('data migrations in the engine', () => {
  it('runs each up once per region with the service environment of that region, in order; promoted', async () => {
    const r = await setup((log) => [
      m(
        'add-col',
        `echo "up $MERIDIAN_REGION $MERIDIAN_SERVICE $MERIDIAN_MIGRATION $DB_SCHEMA $MERIDIAN_ROLLOUT" >> ${log}`,
        `echo down >> ${log}`,
      ),
    ]);
    const regions = [...new Set(r.runs.map((x) => x.region))];
    expect(regions.length).toBeGreaterThan(1);
    const done = await r.drive();
    expect(done.outcome, done.reason).toBe('promoted');
    const ups = r.lines();
    expect(ups).toHaveLength(regions.length);
    expect(ups).toContain(`up us-east web add-col shop_us ${r.id}`);
    for (const line of ups.filter((l) => !l.includes('us-east'))) expect(line).toMatch(/^up \S+ web add-col shop ro-mig-\d+$/);
    const ledger = await r.w.store.listDataMigrations(r.w.fleet.fleet);
    expect(ledger.map((x) => x.status)).toEqual(regions.map(() => 'applied'));
    const audit = (await r.w.store.listAudit()).map((e) => e.action);
    expect(audit.filter((a) => a === 'rollout.migration-start')).toHaveLength(regions.length);
  });

  it('a failed up is a failed gate: the rollback runs down for the ups that ran, the last first; the reason names the migration and region', async () => {
    const r = await setup((log) => [
      m(
        'add-col',
        `echo "up $MERIDIAN_REGION" >> ${log}; if [ "$MERIDIAN_REGION" = us-east ]; then echo "ERROR: password $DB_PASSWORD rejected" >&2; exit 3; fi`,
        `echo "down $MERIDIAN_REGION" >> ${log}`,
      ),
    ]);
    const done = await r.drive();
    expect(done.outcome).toBe('rolled-back');
    expect(done.reason).toMatch(
      /^the up of expand migration add-col of service web in region us-east failed \(exit 3\): ERROR: password \[secret\] rejected$/,
    );
    const lines = r.lines();
    const ran = lines.filter((l) => l.startsWith('up ') && l !== 'up us-east').map((l) => l.slice(3));
    expect(lines.filter((l) => l.startsWith('down '))).toEqual(ran.reverse().map((x) => `down ${x}`));
    expect(lines).not.toContain('down us-east'); // its up failed: nothing to revert
    const ledger = await r.w.store.listDataMigrations(r.w.fleet.fleet);
    expect(ledger.find((x) => x.region === 'us-east')?.status).toBe('failed');
    expect(ledger.filter((x) => x.region !== 'us-east').map((x) => x.status)).toEqual(ran.map(() => 'reverted'));
  });

  it('a failed down ends the rollback failed, saying which migration in which region and what to do', async () => {
    const r = await setup((log) => [
      m('add-col', `echo up >> ${log}`, 'echo "permission denied for table orders" >&2; exit 1'),
      m('never', 'exit 9', 'true'),
    ]);
    const done = await r.drive();
    expect(done.outcome).toBe('failed');
    expect(done.reason).toMatch(
      /^rollback did not complete: the clusters are back, but the down of expand migration add-col of service web in region \S+ failed \(exit 1\): permission denied for table orders; the schema of region \S+ may still hold what its up added: fix the cause, run its down by hand/,
    );
  });

  it('a run past its timeout is killed, with its whole process group, and fails', async () => {
    const r = await setup((log) => [m('slow', `sleep 30 & echo $! >> ${log}; wait`, 'true', { timeout: '300ms' })]);
    const started = Date.now();
    const done = await r.drive();
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(done.outcome).toBe('rolled-back');
    expect(done.reason).toMatch(/the up of expand migration slow .* failed \(timed out after 0\.3 s and was killed\)/);
    const pid = Number(r.lines()[0]);
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return !/^\S+ \S+ Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x')); // a zombie is dead
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(); i++) await new Promise((res) => setTimeout(res, 50));
    expect(alive()).toBe(false); // the sleep went with it
  });

  it('skips what the ledger records as applied, and refuses a contract that ships with its service new version', async () => {
    const r = await setup(() => [m('add-col', 'true', 'true'), m('drop-old', 'true', 'true', { phase: 'contract' })]);
    const region = r.runs[0]?.region ?? '';
    const ledger = [
      {
        fleet: r.w.fleet.fleet,
        region,
        service: 'web',
        name: 'add-col',
        phase: 'expand' as const,
        status: 'applied' as const,
        rolloutId: 'ro-old',
        updatedAt: '-',
        appliedAt: '-',
      },
    ];
    const clusters = Object.keys(r.w.rev2.clusters);
    const runs = migrationRuns(r.w.fleet, r.w.rev2, clusters, ledger);
    expect(runs.map((x) => x.key)).not.toContain(`${region}/web/add-col`);
    expect(runs.map((x) => x.key)).toContain(`${region}/web/drop-old`);
    const before = Object.fromEntries(Object.entries(r.w.rev1.clusters));
    let err: unknown;
    try {
      assertNoContractWithNewVersion(runs, r.w.rev2, before);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MeridianError);
    expect((err as MeridianError).code).toBe('MERIDIAN_E_MIGRATION_CONTRACT');
    expect((err as MeridianError).message).toMatch(
      /the contract migration drop-old of service web would run in region \S+ in the same rollout as its new version/,
    );
    expect((err as MeridianError).hint).toMatch(/^ship the version first; contract in a later rollout/);
    // the same version on both sides (a later rollout): allowed; expand migrations with a new version too
    expect(() => assertNoContractWithNewVersion(runs, r.w.rev2, r.w.rev2.clusters)).not.toThrow();
    expect(() =>
      assertNoContractWithNewVersion(
        runs.filter((x) => x.phase === 'expand'),
        r.w.rev2,
        before,
      ),
    ).not.toThrow();
  });
});
