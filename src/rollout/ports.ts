/**
 * What the rollout engine needs from the world, as interfaces: the clusters' drivers, the routers'
 * traffic control, the analysis (the judge), and a clock. The engine sees nothing else, so that it runs
 * the same against a local fleet over HTTP, a Kubernetes driver, or fakes in a test.
 */
import type { Target } from '../targets/target.js';

/** A cluster's driver: the {@link Target} interface (the engine uses apply, remove and status). */
export type ClusterDriver = Pick<Target, 'apply' | 'remove' | 'status'>;

/** Sets the share of a service's traffic in a cluster that goes to its canary, on every router. Both idempotent. */
export interface TrafficControl {
  /** `weight` percent (0..100) of users get `version` (the canary track). */
  setCanary(service: string, cluster: string, weight: number, version: string): Promise<void>;
  /** No canary: all traffic to the stable track. */
  clear(service: string, cluster: string): Promise<void>;
}

/** What the judge is asked about: one step of one batch of a wave. */
export interface StepContext {
  readonly rolloutId: string;
  readonly fleet: string;
  readonly wave: { readonly index: number; readonly name: string };
  readonly step: { readonly index: number; readonly weight: number };
  /** Judgements of this step so far that were inconclusive (0 on the first). */
  readonly attempt: number;
  /** The clusters of the batch, with the services that run a canary there. */
  readonly clusters: readonly {
    readonly cluster: string;
    readonly services: readonly string[];
    readonly toRevision: string;
    readonly fromRevision: string | null;
  }[];
  readonly toRevision: string;
  /** Epoch ms. */
  readonly now: number;
}

export type VerdictOutcome = 'pass' | 'fail' | 'inconclusive' | 'no-data' | 'error';

/** The judge's answer; `metrics` (with the values that led to it) is recorded as it is. */
export interface StepVerdictLike {
  readonly outcome: VerdictOutcome;
  readonly metrics: readonly unknown[];
  readonly reason?: string | undefined;
}

/** The analysis gate. The real judge lives in src/rollout/analysis/; anything with this shape fits. */
export interface Analysis {
  judge(ctx: StepContext): Promise<StepVerdictLike>;
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
