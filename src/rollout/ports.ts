/**
 * What the rollout engine needs from the world, as interfaces: the clusters' drivers, the routers'
 * traffic control, the analysis (the judge), and a clock. The engine sees nothing else, so that it runs
 * the same against a local fleet over HTTP, a Kubernetes driver, or fakes in a test.
 */
import type { JsonValue, Store } from '../store/store.js';
import type { MigrationRun } from './data-migrations.js';
import type { Target } from '../targets/target.js';
import type { CanaryWeights } from '../targets/canary-weights.js';

/** A cluster's driver: the {@link Target} interface (the engine uses apply, remove and status). */
export type ClusterDriver = Pick<Target, 'apply' | 'remove' | 'status'>;

/** The routers' canary weights (defined beside the drivers: a fleet offers both). */
export type { CanaryWeights };

/** One cluster of a batch being judged: the services that run a canary there and their versions. */
export interface StepCluster {
  readonly cluster: string;
  readonly services: readonly string[];
  readonly toRevision: string;
  readonly fromRevision: string | null;
  /** Service → the canary's version and the stable (baseline) version it replaces (null: a new service). */
  readonly versions: Readonly<Record<string, { readonly canary: string; readonly baseline: string | null }>>;
}

/** Where a step starts: asked of the analysis when the step's weight is set. */
export interface StepStart {
  readonly rolloutId: string;
  readonly clusters: readonly StepCluster[];
  /** Epoch ms. */
  readonly now: number;
}

/** What the judge is asked about: one step of one batch of a wave. */
export interface StepContext {
  readonly rolloutId: string;
  readonly fleet: string;
  readonly wave: { readonly index: number; readonly name: string };
  readonly step: { readonly index: number; readonly weight: number };
  /** Measurements of this step so far (0 on the first). */
  readonly attempt: number;
  /** The clusters of the batch, with the services that run a canary there. */
  readonly clusters: readonly StepCluster[];
  readonly toRevision: string;
  /** Epoch ms. */
  readonly now: number;
  /** When the step's window began (its weight was set), epoch ms. */
  readonly since: number;
  /** What {@link Analysis.begin} answered when the step began (persisted with the step), or null. */
  readonly mark: JsonValue | null;
  /** The `metrics` of the step's earlier verdicts, oldest first (what the analysis recorded). */
  readonly history: readonly JsonValue[];
  /**
   * The step's time is up: decide (pass, fail, inconclusive, error) — or `running` when short of samples
   * and `sampleWait` allows measuring on.
   */
  readonly final: boolean;
  /**
   * The step's end and how long past it the step may measure for samples (epoch ms), and whether this look
   * is past the end already (absent for rollouts recorded before the bound existed).
   */
  readonly sampleWait?: { readonly end: number; readonly until: number; readonly extending: boolean };
}

/** `running`: nothing decided yet, measure again; `pass` before the step's end only means "so far". */
export type VerdictOutcome = 'running' | 'pass' | 'fail' | 'inconclusive' | 'no-data' | 'error';

/** The judge's answer; `metrics` (with the values that led to it) is recorded as it is. */
export interface StepVerdictLike {
  readonly outcome: VerdictOutcome;
  readonly metrics: readonly unknown[];
  readonly reason?: string | undefined;
}

/** The analysis gate (src/rollout/canary-analysis.ts wires the judge of src/rollout/analysis/); anything with this shape fits. */
export interface Analysis {
  /** Called when a step's weight is set; the answer (JSON, e.g. the router's counters) is persisted and given back as `mark`. */
  begin?(start: StepStart): Promise<JsonValue | null>;
  /** Called every analysis interval of a step, and at its end with `final`. */
  judge(ctx: StepContext): Promise<StepVerdictLike>;
}

/** One run of a data migration's `up` or `down`. */
export interface MigrationRequest {
  readonly run: MigrationRun;
  readonly direction: 'up' | 'down';
  readonly rolloutId: string;
  readonly fleet: string;
  /** The fleet directory: where the command runs and `file:` secrets resolve from. */
  readonly dir: string | undefined;
}

/** How a run ended: `output` is the end of what it wrote (bounded, secrets masked). */
export interface MigrationResult {
  readonly ok: boolean;
  /** Its exit code, or null when it was killed or could not start. */
  readonly exitCode: number | null;
  readonly durationMs: number;
  readonly output: string;
  /** Why it failed when not by its exit code: a timeout, a command that does not exist, a secret that does not resolve. */
  readonly error?: string;
}

/** Runs data migrations' commands (src/rollout/migration-runner.ts runs them as child processes). */
export interface MigrationRunner {
  run(req: MigrationRequest): Promise<MigrationResult>;
}

/** Time for the engine: read, and wait. Tests inject one that does not sleep. */
export interface EngineClock {
  /** Epoch ms. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The wall clock. */
export const systemClock: EngineClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms))),
};

/** Everything the rollout engine is given: the store and the ports above. */
export interface EnginePorts {
  readonly store: Store;
  readonly driver: ClusterDriver;
  readonly traffic: CanaryWeights;
  readonly analysis: Analysis;
  readonly clock: EngineClock;
  /** Runs data migrations' commands; needed only by rollouts that have migrations. */
  readonly migrations?: MigrationRunner;
}
