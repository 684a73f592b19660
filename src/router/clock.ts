/** The router's clock: wall time and timers, injectable so that tests drive ejections and checks by hand. */

export interface RouterClock {
  /** Milliseconds (epoch or any monotonic origin; only differences are used). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. Its timers do not keep the process alive on their own (the listening socket does). */
export const systemClock: RouterClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
