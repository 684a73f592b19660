/**
 * A rollout's inputs, fixed when it starts and persisted with it: which revision each cluster moves
 * from and to, the waves cut into batches, the failure policy, who may not approve. Built from a plan
 * (a rollout) or from a known-good revision (a rollback). Pure.
 */
import type { Plan } from '../plan/plan.js';
import type { Revision } from '../render/render.js';
import { machineMigrations, type MigrationRun } from './data-migrations.js';
import type { Analysis } from './analysis/judge.js';
import type { Fleet } from '../spec/schema.js';
import { parseDuration } from '../units/duration.js';
import type { FailurePolicy, MachineConfig, MachineWave } from './state-machine.js';

export const ROLLOUT_SPEC_VERSION = 'meridian/rollout/v1';

export interface RolloutSpec {
  readonly apiVersion: typeof ROLLOUT_SPEC_VERSION;
  readonly kind: 'rollout' | 'rollback';
  readonly fleet: string;
  /** The plan's hash (approvals bind to it); for a rollback, the hash of its own spec. */
  readonly planHash: string;
  /** The revision the rollout moves to (every cluster, for a rollout). */
  readonly revision: string;
  /** The fleet's baseline before, for display. */
  readonly previous: string | null;
  /** Cluster → the revision it ran before (null: nothing), what a rollback returns it to. */
  readonly from: Readonly<Record<string, string | null>>;
  /** Cluster → the revision it moves to. */
  readonly to: Readonly<Record<string, string>>;
  readonly config: MachineConfig;
  /** The services it touches, sorted: its locks. */
  readonly services: readonly string[];
  /** Who may not approve its waves: who started it, and who recorded its revision. */
  readonly authors: readonly string[];
  /** Consecutive healthy checks a cluster must report at the new revision before its wave completes. */
  readonly healthyChecks: number;
  /** The fleet's `rollout.analysis` when the rollout started (absent: health only). */
  readonly analysis?: Analysis | null;
  /** The data migrations it runs (absent: none), see src/rollout/data-migrations.ts. */
  readonly migrations?: readonly MigrationRun[];
  /** Where the migrations' commands run and `file:` secrets resolve from: the fleet directory. */
  readonly migrationDir?: string;
}

export interface SpecOptions {
  readonly healthyChecks?: number | undefined;
  /** The data migrations to run (src/rollout/data-migrations.ts), the revision they were made from, and the fleet directory. */
  readonly migrations?: { readonly runs: readonly MigrationRun[]; readonly revision: Revision; readonly dir: string } | undefined;
}

/** Cuts a list into batches of at most `size`. */
export function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  const n = Math.max(1, Math.floor(size));
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

function ms(duration: string | null | undefined): number | null {
  if (duration === null || duration === undefined) return null;
  const v = parseDuration(duration);
  return v === undefined ? null : v;
}

/** The spec of a rollout of `plan`, with the fleet's failure policy and analysis interval. */
export function rolloutSpecFromPlan(
  plan: Plan,
  fleet: Pick<Fleet, 'rollout'>,
  services: readonly string[],
  authors: readonly string[],
  opts: SpecOptions = {},
): RolloutSpec {
  const waves: MachineWave[] = plan.waves.map((w) => ({
    name: w.name,
    batches: batches(w.clusters, w.maxParallel),
    steps: w.steps.map((s) => ({ weight: s.weight, pauseMs: ms(s.pause) })),
    approvals: w.approvals ? { count: w.approvals.count, roles: [...w.approvals.roles] } : null,
    bakeMs: ms(w.bake) ?? 0,
    canary: true,
  }));
  const to: Record<string, string> = {};
  const from: Record<string, string | null> = {};
  for (const w of plan.waves) {
    for (const c of w.clusters) {
      to[c] = plan.revision;
      from[c] = plan.from[c] ?? null;
    }
  }
  const migrations = opts.migrations ? machineMigrations(opts.migrations.runs, opts.migrations.revision, Object.keys(to)) : undefined;
  const config: MachineConfig = {
    waves,
    ...(migrations ? { migrations } : {}),
    onFailure: (fleet.rollout?.onFailure ?? 'rollback-wave') as FailurePolicy,
    analysisIntervalMs: ms(fleet.rollout?.analysis?.interval) ?? 10_000,
    ...(fleet.rollout?.analysis?.sampleWait !== undefined ? { sampleWaitMs: ms(fleet.rollout.analysis.sampleWait) ?? 0 } : {}),
    ...(fleet.rollout?.analysis?.warmup !== undefined ? { warmupMs: ms(fleet.rollout.analysis.warmup) ?? 0 } : {}),
  };
  return {
    apiVersion: ROLLOUT_SPEC_VERSION,
    kind: 'rollout',
    fleet: plan.fleet,
    planHash: plan.hash,
    revision: plan.revision,
    previous: plan.previous,
    from,
    to,
    config,
    services: [...new Set(services)].sort(),
    authors: [...new Set(authors)].sort(),
    healthyChecks: opts.healthyChecks ?? 2,
    analysis: fleet.rollout?.analysis ?? null,
    ...(migrations && opts.migrations ? { migrations: [...opts.migrations.runs], migrationDir: opts.migrations.dir } : {}),
  };
}

/** Reads a persisted spec (the store gives JSON back). */
export function asSpec(value: unknown): RolloutSpec {
  const v = value as Partial<RolloutSpec> | null;
  if (!v || v.apiVersion !== ROLLOUT_SPEC_VERSION || !v.config || !v.to || !v.from) {
    throw new Error('the stored rollout has no usable spec (made by another version of meridian?)');
  }
  return v as RolloutSpec;
}
