/**
 * Coalesces rebuild requests: the first request after a quiet period runs on the next turn of the event
 * loop (so a burst of events in one tick is one rebuild); later ones wait until `minIntervalMs` has passed
 * since the last rebuild. A flapping endpoint therefore costs at most one rebuild per interval.
 */
import type { RouterClock } from './clock.js';

export class RebuildScheduler {
  #timer: unknown = null;
  #last = Number.NEGATIVE_INFINITY;
  #closed = false;

  constructor(
    private readonly clock: RouterClock,
    private readonly minIntervalMs: number,
    private readonly run: () => void,
  ) {}

  /** Asks for a rebuild. */
  request(): void {
    if (this.#timer !== null || this.#closed) return;
    const wait = Math.max(0, this.#last + this.minIntervalMs - this.clock.now());
    this.#timer = this.clock.setTimeout(() => this.flush(), wait);
  }

  /** Rebuilds now if one is pending (or always, with `force`). */
  flush(force = false): void {
    const pending = this.#timer !== null;
    if (pending) this.clock.clearTimeout(this.#timer);
    this.#timer = null;
    if ((!pending && !force) || this.#closed) return;
    this.#last = this.clock.now();
    this.run();
  }

  get pending(): boolean {
    return this.#timer !== null;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) this.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }
}
