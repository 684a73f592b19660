/**
 * A rolled-back rollout leaves every region's schema as it was: `meridian up` runs the tiny fleet (real
 * processes behind the router), its `web` declares an expand migration run with psql against real
 * PostgreSQL, one schema per region. The new version's canary in region us never becomes healthy
 * (FAULT_HEALTH there), after eu's wave was promoted; `onFailure: rollback-all` returns every cluster
 * and runs `down` in both regions, the last migrated first. Both schemas read back (information_schema,
 * pg_indexes, the rows) as they did before the rollout.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { pgRegions, type PgRegions, withMigration } from './support/migrations-pg-kit.js';
import { get, liveFleet, type LiveFleet, withState } from './support/rollout-live-kit.js';

let live: LiveFleet | undefined;
let db: PgRegions | undefined;

afterAll(async () => {
  if (live) {
    await live.down();
    live.remove();
  }
  await db?.dispose();
});

describe('data migrations on a live fleet', () => {
  it('an expand migration in two regions, the canary fails, the rollout is rolled back: every schema reads back as before', async () => {
    db = await pgRegions('live', ['eu', 'us']);
    const d = db;
    const migrate = withMigration(d);
    live = liveFleet('migrations', (y) => migrate(y).replace('onFailure: rollback-wave', 'onFailure: rollback-all'));
    const f = live;
    await f.up();
    const before = { eu: await d.snapshot(d.schemas['eu'] ?? ''), us: await d.snapshot(d.schemas['us'] ?? '') };

    // the new version; its replicas in us never report healthy
    f.edit((y) =>
      y
        .replace('version: 1.0.0', 'version: 1.1.0')
        .replace('web:1.0.0@', 'web:1.1.0@')
        .replace('    overrides:\n', "    overrides:\n      - match: { region: us }\n        set: { config: { FAULT_HEALTH: 'true' } }\n"),
    );
    const out = await f.run(['rollout', 'tiny', '--poll', '50ms', '--health-timeout', '5s', '--healthy-checks', '1']);
    expect(out.code, out.err).toBe(4);
    const lines = out.err.split('\n');
    const at = (re: RegExp): number => lines.findIndex((l) => re.test(l));
    // eu before the first canary, us before [local-b, local-c]; both reverted after the clusters, us first
    expect(at(/migrated eu\/web\/add-order-note → deploying the canary: wave canary/)).toBeGreaterThan(0);
    expect(at(/migrated us\/web\/add-order-note → deploying the canary: wave rest/)).toBeGreaterThan(at(/promoted → migrating us/));
    expect(at(/reverted us\/web\/add-order-note → reverting migrations \["eu\/web\/add-order-note"\]/)).toBeGreaterThan(
      at(/local-a back on/),
    );
    expect(at(/reverted eu\/web\/add-order-note → rolled-back/)).toBeGreaterThan(0);
    expect(await d.ups()).toEqual(['eu', 'us']); // both ups ran

    expect(await d.snapshot(d.schemas['eu'] ?? '')).toEqual(before.eu);
    expect(await d.snapshot(d.schemas['us'] ?? '')).toEqual(before.us);

    const ledger = await withState(f, (s) => s.listDataMigrations('tiny'));
    expect(ledger.map((m) => [m.region, m.status])).toEqual([
      ['eu', 'reverted'],
      ['us', 'reverted'],
    ]);
    expect(JSON.parse((await get(f.info().router)).body)).toMatchObject({ version: '1.0.0', track: 'stable' });
    expect((await f.run(['audit', 'verify'])).code).toBe(0);
  }, 240_000); // a loaded machine (2 cores shared) has taken 116 s
});
