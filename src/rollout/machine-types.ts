/**
 * The rollout state machine's vocabulary: its configuration (waves, batches, steps, migrations), its
 * phases and state, the events it accepts and the effects it asks for. The transitions are in
 * `state-machine.ts`.
 */

/** What a failed gate does (the fleet's `rollout.onFailure`); `fail` is for rollbacks, which have nothing to return to. */
export type FailurePolicy = 'pause' | 'rollback-wave' | 'rollback-all' | 'fail';

/** A wave as the machine runs it: its clusters already cut into batches of at most `maxParallel`. */
export interface MachineWave {
  readonly name: string;
  readonly batches: readonly (readonly string[])[];
  readonly steps: readonly { readonly weight: number; readonly pauseMs: number | null }[];
  readonly approvals: { readonly count: number; readonly roles: readonly string[] } | null;
  readonly bakeMs: number;
  /** False: no canary, the batch goes straight to stable (a rollback). */
  readonly canary: boolean;
}

/** A data migration of one service in one region, as the machine orders it; `key` is `region/service/name`. */
export interface MachineMigration {
  readonly key: string;
  readonly region: string;
  readonly phase: 'expand' | 'contract';
}

/** The data migrations a rollout runs (docs/migrations.md); absent when it runs none. */
export interface MachineMigrations {
  /** Cluster → its region: expand migrations run for the regions of a batch before its canary. */
  readonly regions: Readonly<Record<string, string>>;
  /** In the order they run: per region by service, then as the service declares them. */
  readonly steps: readonly MachineMigration[];
}

export interface MachineConfig {
  readonly waves: readonly MachineWave[];
  /** Data migrations; absent (a fleet without any) leaves the machine exactly as it was before they existed. */
  readonly migrations?: MachineMigrations;
  readonly onFailure: FailurePolicy;
  /** The pause of a step that declares none, and between two measurements of a step (`rollout.analysis.interval`). */
  readonly analysisIntervalMs: number;
  /**
   * How long past its end a step whose last look is short of samples keeps measuring
   * (`rollout.analysis.sampleWait`); undefined: twice the step's pause.
   */
  readonly sampleWaitMs?: number;
  /** A new canary's warm-up before its first step's window starts (`rollout.analysis.warmup`); undefined or 0: none. */
  readonly warmupMs?: number;
}

export type Outcome = 'promoted' | 'rolled-back' | 'failed';

export type Phase =
  | { readonly kind: 'approval'; readonly wave: number }
  | {
      /** Running the `up` of an expand migration before the batch's canary. */
      readonly kind: 'migrate';
      readonly wave: number;
      readonly batch: number;
      readonly migration: string;
    }
  | { readonly kind: 'deploy'; readonly wave: number; readonly batch: number }
  | { readonly kind: 'weight'; readonly wave: number; readonly batch: number; readonly step: number }
  | {
      /** Waiting for the step's next measurement (`until`); the step ends at `end` (absent in older records: `until`). */
      readonly kind: 'pause';
      readonly wave: number;
      readonly batch: number;
      readonly step: number;
      /** Measurements of the step so far. */
      readonly attempt: number;
      readonly until: number;
      readonly end?: number;
      /** Past `end`, the step may keep measuring for samples until here (absent in older records: not at all). */
      readonly waitEnd?: number;
      /** The step is past its end, measuring for samples. */
      readonly extending?: boolean;
    }
  | {
      /** Measuring the step; `final` when its time is up (the judge then decides pass or inconclusive). */
      readonly kind: 'analysis';
      readonly wave: number;
      readonly batch: number;
      readonly step: number;
      readonly attempt: number;
      readonly end?: number;
      readonly final?: boolean;
      readonly waitEnd?: number;
      readonly extending?: boolean;
    }
  | { readonly kind: 'bake'; readonly wave: number; readonly batch: number; readonly until: number }
  | { readonly kind: 'promote'; readonly wave: number; readonly batch: number }
  | {
      readonly kind: 'rollback';
      readonly wave: number;
      readonly remaining: readonly string[];
      readonly reason: string;
      /** Migrations whose `down` runs once the clusters are back, in that order (absent: none). */
      readonly revert?: readonly string[];
    }
  | {
      /** Every wave promoted: running the `up` of a contract migration (or of an expand no batch reached). */
      readonly kind: 'contract';
      readonly wave: number;
      readonly migration: string;
    }
  | {
      /** The clusters are back: running the `down` of the migrations this rollout ran, the last first. */
      readonly kind: 'revert';
      readonly wave: number;
      readonly remaining: readonly string[];
      readonly reason: string;
    }
  | { readonly kind: 'paused'; readonly wave: number; readonly reason: string; readonly resume: ActivePhase }
  | { readonly kind: 'done'; readonly wave: number; readonly outcome: Outcome; readonly reason: string };

/** Phases in which the rollout moves forward by itself. */
export type ActivePhase = Extract<
  Phase,
  { kind: 'approval' | 'migrate' | 'deploy' | 'weight' | 'pause' | 'analysis' | 'bake' | 'promote' | 'contract' }
>;

export interface MachineState {
  readonly phase: Phase;
  /** Clusters the rollout has changed (or begun to), in order: what a rollback returns. */
  readonly touched: readonly string[];
  /** Waves whose remaining steps an operator skipped (`meridian rollout promote`). */
  readonly overridden: readonly number[];
  /**
   * Data migrations so far (absent until the first): `done` every one handled, `ran` those whose `up` this
   * rollout ran (a rollback runs their `down`).
   */
  readonly migrations?: { readonly done: readonly string[]; readonly ran: readonly string[] };
}

/** A step's verdict: `running` goes on measuring; `pass` before the step's end too. */
export type VerdictOutcome = 'running' | 'pass' | 'fail' | 'inconclusive' | 'no-data' | 'error';
export type ControlAction = 'pause' | 'resume' | 'abort' | 'promote';

/** Inputs: the results of effects, and operators' controls. Every event carries its time. */
export type MachineEvent =
  | { readonly type: 'approvals-met'; readonly at: number; readonly approvers: readonly string[] }
  | { readonly type: 'approval-rejected'; readonly at: number; readonly by: string; readonly reason: string }
  | { readonly type: 'canary-ready'; readonly at: number }
  | { readonly type: 'weight-set'; readonly at: number }
  | { readonly type: 'timer-elapsed'; readonly at: number }
  | { readonly type: 'verdict'; readonly at: number; readonly outcome: VerdictOutcome; readonly reason?: string }
  | { readonly type: 'promoted'; readonly at: number }
  | { readonly type: 'cluster-rolled-back'; readonly at: number; readonly cluster: string }
  | { readonly type: 'effect-failed'; readonly at: number; readonly reason: string }
  /** A migration's `up` is done: `ran` false when another rollout had applied it already. */
  | { readonly type: 'migrated'; readonly at: number; readonly migration: string; readonly ran: boolean }
  | { readonly type: 'migration-reverted'; readonly at: number; readonly migration: string }
  | { readonly type: 'control'; readonly at: number; readonly action: ControlAction; readonly by: string; readonly reason?: string };

/** What the engine must do for the state to move on. */
export type Effect =
  | { readonly kind: 'check-approvals'; readonly wave: number }
  | { readonly kind: 'deploy-canary'; readonly clusters: readonly string[] }
  | {
      readonly kind: 'set-weight';
      readonly clusters: readonly string[];
      readonly weight: number;
      /** The first step after the canary's deployment: let it take traffic this long before the window starts. */
      readonly warmupMs?: number;
    }
  | { readonly kind: 'wait'; readonly until: number }
  | {
      readonly kind: 'judge';
      readonly wave: number;
      readonly step: number;
      readonly attempt: number;
      readonly clusters: readonly string[];
      readonly weight: number;
      /** The step's time is up: its last measurement. */
      readonly final: boolean;
      /** The step's end and how long past it the judge may wait for samples (epoch ms), and whether it is past its end already. */
      readonly sampleWait?: { readonly end: number; readonly until: number; readonly extending: boolean };
    }
  | { readonly kind: 'promote'; readonly clusters: readonly string[] }
  | { readonly kind: 'rollback-cluster'; readonly cluster: string }
  | { readonly kind: 'migrate'; readonly migration: string; readonly direction: 'up' | 'down' };

/** An event that the current state does not accept. */
export class IllegalTransition extends Error {
  constructor(
    readonly phase: Phase['kind'],
    readonly event: string,
    message?: string,
  ) {
    super(message ?? `a rollout in phase ${phase} does not accept ${event}`);
    this.name = 'IllegalTransition';
  }
}
