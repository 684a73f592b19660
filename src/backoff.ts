/**
 * Backoff for things that fail and are tried again — a crashing process restarted (like Kubernetes'
 * CrashLoopBackOff, with laptop-sized numbers), a lost connection reopened: exponential with jitter,
 * capped, and forgotten after a run that lasted long enough to count as stable.
 */

export interface BackoffPolicy {
  /** Wait before the first restart. */
  readonly initialMs: number;
  /** Each further consecutive crash multiplies the wait by this. */
  readonly factor: number;
  /** The wait never exceeds this (jitter included). */
  readonly maxMs: number;
  /** Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]. */
  readonly jitter: number;
  /** A run at least this long resets the backoff to `initialMs`. */
  readonly resetAfterMs: number;
}

/** 250 ms, doubling, at most 30 s, ±20 %, reset after 30 s of stable running. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, factor: 2, maxMs: 30_000, jitter: 0.2, resetAfterMs: 30_000 };

/** The wait before restart number `attempt` (1-based) of a crash loop; `random` returns [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt - 1));
  const scaled = base * (1 + policy.jitter * (2 * random() - 1));
  return Math.round(Math.min(policy.maxMs, Math.max(0, scaled)));
}

/** Counts consecutive failures (crashes, lost connections) and says how long to wait before the next try. */
export class RestartBackoff {
  #attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Consecutive crashes so far (0 after a stable run). */
  get attempt(): number {
    return this.#attempt;
  }

  /** Records a crash after a run of `uptimeMs` and returns the wait before the restart. */
  next(uptimeMs: number): number {
    if (uptimeMs >= this.policy.resetAfterMs) this.#attempt = 0;
    this.#attempt += 1;
    return backoffDelay(this.#attempt, this.policy, this.random);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
