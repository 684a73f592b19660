/**
 * Health checks for local replicas: one check is the shared probe (src/health/probe.ts: an HTTP GET on the
 * service's health path, 2xx and 3xx pass, or a TCP connect when it declares none); here is the consecutive
 * success/failure counting that turns single checks into a ready/unhealthy state.
 */
import { probe, type ProbeResult } from '../../health/probe.js';

/** What one check of a replica found (the shared probe's result). */
export type CheckResult = ProbeResult;

/** Runs one check of a replica (src/health/probe.ts); never rejects. */
export function checkOnce(t: { host: string; port: number; path: string | null; timeoutMs: number }): Promise<CheckResult> {
  return probe({ ...t, userAgent: 'meridian-health' });
}

export interface HealthThresholds {
  /** Consecutive passes that make a not-ready replica ready. */
  readonly healthyThreshold: number;
  /** Consecutive failures that make a ready replica unhealthy. */
  readonly unhealthyThreshold: number;
}

/** The ready/unhealthy state of one replica, driven by check results. Pure. */
export class HealthCounter {
  #successes = 0;
  #failures = 0;
  #ready = false;
  #lastFailure: string | null = null;

  constructor(private readonly thresholds: HealthThresholds) {}

  /** Records a result; returns `ready`/`unhealthy` when the state flips, else null. */
  record(result: CheckResult): 'ready' | 'unhealthy' | null {
    if (result.ok) {
      this.#successes += 1;
      this.#failures = 0;
      if (!this.#ready && this.#successes >= this.thresholds.healthyThreshold) {
        this.#ready = true;
        return 'ready';
      }
      return null;
    }
    this.#failures += 1;
    this.#successes = 0;
    this.#lastFailure = result.reason ?? 'check failed';
    if (this.#ready && this.#failures >= this.thresholds.unhealthyThreshold) {
      this.#ready = false;
      return 'unhealthy';
    }
    return null;
  }

  /** Forgets everything (a new process). */
  reset(): void {
    this.#successes = 0;
    this.#failures = 0;
    this.#ready = false;
    this.#lastFailure = null;
  }

  get ready(): boolean {
    return this.#ready;
  }
  get consecutiveSuccesses(): number {
    return this.#successes;
  }
  get consecutiveFailures(): number {
    return this.#failures;
  }
  get lastFailure(): string | null {
    return this.#lastFailure;
  }
}
