/**
 * Shutdown handling for commands that start things through a driver (`meridian up`): Ctrl-C, SIGTERM and
 * SIGHUP close the drivers gracefully; a second signal, or the process exiting any other way, signals
 * every replica at once.
 */
import { constants } from 'node:os';

/** What a shutdown handler needs from a driver. */
export interface Closable {
  close(): Promise<void>;
  /** Signals everything at once, synchronously; called from `process.on('exit')`. */
  terminateSync?(): void;
}

export interface ShutdownOptions {
  /** Default SIGINT, SIGTERM, SIGHUP. */
  readonly signals?: readonly NodeJS.Signals[];
  /** Exit the process after closing, with 128 + the signal's number (default true). */
  readonly exit?: boolean;
  /** Called when a signal arrives, before closing (to print "stopping…"). */
  readonly onSignal?: (signal: NodeJS.Signals) => void;
  /** Called when closing failed; the process still exits. */
  readonly onError?: (err: unknown) => void;
}

/**
 * Installs the handlers; returns a function that removes them. The first signal closes every target (then
 * exits, unless `exit: false`); a second one terminates everything synchronously and exits at once.
 */
export function installShutdownHandlers(targets: Closable | readonly Closable[], opts: ShutdownOptions = {}): () => void {
  const list: readonly Closable[] = Array.isArray(targets) ? targets : [targets as Closable];
  const signals = opts.signals ?? (['SIGINT', 'SIGTERM', 'SIGHUP'] as const);
  const exit = opts.exit ?? true;
  let closing = false;
  const terminateAll = (): void => {
    for (const t of list) {
      try {
        t.terminateSync?.();
      } catch {
        // nothing more can be done while exiting
      }
    }
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = 128 + (constants.signals[signal] ?? 15);
    if (closing) {
      terminateAll();
      if (exit) process.exit(code);
      return;
    }
    closing = true;
    opts.onSignal?.(signal);
    void Promise.allSettled(list.map((t) => t.close())).then((results) => {
      for (const r of results) if (r.status === 'rejected') opts.onError?.(r.reason);
      if (exit) process.exit(code);
    });
  };
  const onExit = (): void => terminateAll();
  for (const s of signals) process.on(s, onSignal);
  process.on('exit', onExit);
  return () => {
    for (const s of signals) process.off(s, onSignal);
    process.off('exit', onExit);
  };
}
