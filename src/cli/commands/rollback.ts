/**
 * `meridian rollback [--to REVISION]`: every cluster back to a known-good revision (default: the last one
 * every cluster ran healthy before the current one), verified and audited. Recorded like a rollout, so
 * `meridian rollback` again returns to where it started.
 */
import type { Command } from 'commander';
import { RolloutError, UsageError } from '../../errors.js';
import { baselineRevisionId } from '../../plan/plan.js';
import { createRollout, newRolloutId } from '../../rollout/engine.js';
import { holderFor } from '../../rollout/lock.js';
import { defaultTarget, knownGood, rollbackSpec } from '../../rollout/rollback.js';
import { driverActor } from '../server-actor.js';
import { parseDuration } from '../../units/duration.js';
import { EXIT } from '../exit-codes.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';
import { clustersOf } from '../../fleet/connect.js';
import { connectFleet, driveAndReport, type DriveFlags, driveOptions } from './rollout.js';

interface RollbackFlags extends DriveFlags {
  to?: string;
  healthyChecks: string;
}

export function registerRollback(program: Command, io: Io, result: Result): void {
  driveOptions(
    program
      .command('rollback')
      .description('return every cluster to a known-good revision, verified and audited (itself reversible)')
      .option(
        '--to <revision>',
        'the revision to return to (an id or a unique prefix); default: the last one every cluster ran healthy before the current one',
      )
      .option('--healthy-checks <n>', 'consecutive healthy checks each cluster must report', '2'),
  ).action(async (flags: RollbackFlags) => {
    const actor = await driverActor(flags, io);
    const store = await storeFor(flags.state, io);
    try {
      const states = await store.clusterStates();
      const baseline = baselineRevisionId(states);
      let target: string | null;
      if (flags.to !== undefined) {
        const prefix = flags.to;
        const matches = (await store.listRevisions()).filter((r) => r.id.startsWith(prefix));
        if (matches.length !== 1) {
          throw new UsageError(
            matches.length === 0 ? `no recorded revision starts with ${prefix}` : `${prefix} names ${matches.length} revisions`,
            'list revisions with `meridian audit log` (revision.create) and give more of the id',
          );
        }
        target = matches[0]?.id ?? null;
      } else {
        target = defaultTarget(
          knownGood(await store.listAudit()),
          Object.fromEntries(Object.entries(states).map(([c, r]) => [c, r.revisionId])),
        );
        if (target === null) {
          throw new RolloutError(
            'MERIDIAN_E_ROLLOUT_NO_KNOWN_GOOD',
            `no revision other than the current one (${baseline ?? 'none'}) was recorded running healthy on every cluster`,
            {
              hint: 'name the revision to return to with --to REVISION',
            },
          );
        }
      }
      const revision = target === null ? undefined : await store.getRevision(target);
      if (!revision) throw new UsageError(`revision ${String(target)} is not recorded`);
      const spec = rollbackSpec({
        target: revision,
        current: states,
        baseline,
        authors: [actor.id],
        healthyChecks: Number.parseInt(flags.healthyChecks, 10) || 2,
      });
      if (Object.keys(spec.to).length === 0) {
        await write(io.out, `nothing to roll back: every cluster already runs ${revision.id}\n`);
        result.code = EXIT.ok;
        return;
      }
      const current = baseline ? await store.getRevision(baseline) : undefined;
      await (await connectFleet(io, flags.control, clustersOf(current, revision))).close(); // fail early when a driver cannot be set up
      const id = newRolloutId(Date.now(), 'rollback');
      const holder = holderFor(id, actor);
      const ttl = parseDuration(flags.lockTtl) ?? 30_000;
      await createRollout(store, spec, holder, { now: Date.now(), lockTtlMs: ttl });
      if (flags.output === 'text')
        io.err.write(`${io.errStyle.bold(`rollback ${id}`)}: ${Object.keys(spec.to).join(', ')} → ${revision.id}\n`);
      const code = await driveAndReport(io, store, id, holder, flags);
      // a rollback's own outcome: promoted (it reached its target) is success
      result.code = code;
    } finally {
      await store.close();
    }
  });
}
