/**
 * `meridian plan`: what would change, cluster by cluster, against what the store says runs now; the
 * waves; and the blast radius. Records the new revision (idempotently, audited) and can save the plan.
 */
import { Option, type Command } from 'commander';
import { baselineRevisionId, makePlan } from '../../plan/plan.js';
import { formatPlan } from '../../plan/format-plan.js';
import { assertNoContractWithNewVersion, formatMigrationRuns, migrationRuns } from '../../rollout/data-migrations.js';
import { clientShares } from '../../routing/traffic-table.js';
import { fleetSource } from '../../spec/fleet-source.js';
import { resolveActor } from '../../store/actor.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';
import { loadAndRender } from './render.js';
import { writeNamedFile } from '../options.js';

export function registerPlan(program: Command, io: Io, result: Result): void {
  program
    .command('plan')
    .description('show what a rollout of the fleet would change, wave by wave, and record the new revision')
    .argument('[fleet]', 'fleet directory or file', '.')
    .option('--out <file>', 'save the plan (JSON, with its own hash) for `meridian rollout --plan`')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL); default .meridian/state.db or MERIDIAN_STATE')
    .option('--actor <id>', 'who is planning (default: MERIDIAN_ACTOR, GITHUB_ACTOR or the user)')
    .option('--reason <text>', 'why, for the audit log')
    .action(async (dir: string, opts: { out?: string; output: 'text' | 'json'; state?: string; actor?: string; reason?: string }) => {
      const { loaded, rendered } = loadAndRender(dir);
      const revision = rendered.revision;
      const store = await storeFor(opts.state, io);
      try {
        const states = await store.clusterStates();
        const baseline = baselineRevisionId(states);
        const previous = baseline ? await store.getRevision(baseline) : undefined;
        const plan = makePlan({
          fleet: loaded.fleet,
          revision,
          previous,
          recorded: states,
          shares: clientShares(revision),
          now: io.now(),
          source: fleetSource(dir),
        });
        // data migrations: not part of the plan's hash; refused here already when a contract ships with its service's new version
        const moving = plan.waves.flatMap((w) => w.clusters);
        const runs = migrationRuns(
          loaded.fleet,
          revision,
          moving.length > 0 ? moving : Object.keys(revision.clusters),
          await store.listDataMigrations(loaded.fleet.fleet),
        );
        assertNoContractWithNewVersion(runs, revision, Object.fromEntries(Object.entries(states).map(([c, r]) => [c, r.state])));
        const actor = resolveActor(opts.actor, io.env);
        const { created } = await store.putRevision(revision, actor, opts.reason ?? `planned from ${dir}`);
        if (opts.out !== undefined) writeNamedFile('--out', opts.out, `${JSON.stringify(plan, null, 2)}\n`);
        const k8s = Object.values(revision.clusters).some((c) => c.driver === 'kubernetes')
          ? (await import('../../targets/kubernetes/render-manifests.js')).objectChanges(previous, revision)
          : [];
        if (opts.output === 'json') {
          await write(io.out, `${JSON.stringify(k8s.length > 0 ? { ...plan, kubernetes: k8s } : plan, null, 2)}\n`);
        } else {
          const note = [
            `revision ${revision.id} ${created ? 'recorded' : 'already recorded'} in ${store.location}`,
            ...(opts.out !== undefined ? [`plan saved to ${opts.out} (hash ${plan.hash.slice(0, 16)})`] : []),
          ];
          const objects =
            k8s.length > 0 ? `\n${(await import('../../targets/kubernetes/render-manifests.js')).formatObjectChanges(k8s)}` : '';
          await write(
            io.out,
            `${formatPlan(plan, { color: io.style.color })}${objects}\n${formatMigrationRuns(runs)}${io.style.dim(note.join('\n'))}\n`,
          );
        }
        result.code = 0;
      } finally {
        await store.close();
      }
    });
}
