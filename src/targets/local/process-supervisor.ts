/**
 * Runs local replicas as supervised OS processes: each in its own process group under the watchdog,
 * restarted with backoff when it crashes (a few at a time when many crash together), stopped with SIGTERM
 * then SIGKILL of the whole group — and every one of them tracked, so that nothing this driver starts
 * outlives it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism, constants } from 'node:os';
import { TargetError } from '../errors.js';
import { type BackoffPolicy, DEFAULT_BACKOFF, RestartBackoff } from '../../backoff.js';
import { WATCHDOG_SHELL, watchdogArgs } from './watchdog.js';

/** Time and randomness, injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  random(): number;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  random: () => Math.random(),
};

/** What to run. */
export interface ProcessSpec {
  readonly command: readonly string[];
  readonly cwd: string;
  /** The complete environment of the process (nothing is inherited implicitly). */
  readonly env: Readonly<Record<string, string>>;
  /** Strings that must never appear in output lines or errors this module reports (secret values). */
  readonly redact?: readonly string[];
}

export interface ExitInfo {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly uptimeMs: number;
  /** True when we asked it to stop. */
  readonly expected: boolean;
  /** `exited with code 1`, `killed by SIGSEGV`, with the last line it wrote to stderr. */
  readonly reason: string;
}

export interface ProcessEvents {
  spawned?(pid: number, run: number): void;
  exited?(info: ExitInfo): void;
  restarting?(info: { attempt: number; delayMs: number }): void;
  output?(stream: 'stdout' | 'stderr', line: string): void;
}

export interface SuperviseOptions {
  /** Restart after a crash (default true). */
  readonly restart?: boolean;
  /** Called before each restart; may return a changed spec (a new port, say). */
  readonly prepareRestart?: (spec: ProcessSpec) => ProcessSpec | Promise<ProcessSpec>;
}

/** `idle` (not started), `running`, `backoff` (crashed, waiting to restart), `stopping`, `stopped`. */
export type ProcessState = 'idle' | 'running' | 'backoff' | 'stopping' | 'stopped';

export interface SupervisorOptions {
  /** How long a process has between SIGTERM and SIGKILL (default 5000 ms). */
  readonly graceMs?: number;
  readonly backoff?: Partial<BackoffPolicy>;
  readonly clock?: Clock;
  /**
   * At most this many processes restarted after a crash are starting at once (default: the number of
   * CPUs); the others wait for a place after their backoff. When a whole cluster dies, its replicas come
   * back a few at a time instead of all starting together and taking every core from the processes that
   * still serve (the router among them).
   */
  readonly restartConcurrency?: number;
  /**
   * A restarted process keeps its place until it is reported started ({@link SupervisedProcess.started}),
   * exits, is stopped, or this long has passed since its restart (default {@link DEFAULT_RESTART_HOLD_MS}).
   */
  readonly restartHoldMs?: number;
}

/** How long a restarted process that is never reported started keeps its place among the starting ones. */
export const DEFAULT_RESTART_HOLD_MS = 3000;

const MAX_LINE = 4096;
/** What the shell itself prints when the command dies of a signal; not worth repeating in an error. */
const SHELL_SIGNAL_NOTE =
  /^(Killed|Terminated|Aborted|Hangup|Interrupt|Quit|Segmentation fault|Illegal instruction|Bus error|Floating point exception|Trace\/breakpoint trap|User defined signal \d)( \(core dumped\))?$/;

/** Describes how a watchdog exited; the shell reports a command killed by signal N as status 128+N. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `killed by ${signal}`;
  if (code !== null && code > 128) {
    const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0];
    if (name) return `killed by ${name}`;
  }
  if (code === 127) return 'exited with code 127 (command not found)';
  return `exited with code ${code ?? 'unknown'}`;
}

function redactText(text: string, secrets: readonly string[] | undefined): string {
  if (!secrets) return text;
  let out = text;
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('[secret]');
  return out;
}

/** Sends a signal to a whole process group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** One supervised command: at most one live process at a time, restarted on crash until stopped. */
export class SupervisedProcess {
  #spec: ProcessSpec;
  #state: ProcessState = 'idle';
  #child: ChildProcess | undefined;
  #pid: number | undefined;
  #startedAt = 0;
  #run = 0;
  #restarts = 0;
  #lastError: string | null = null;
  #lastStderr: string | null = null;
  #timer: unknown;
  #stopped: Promise<void> | undefined;
  #resolveStopped: (() => void) | undefined;
  readonly #backoff: RestartBackoff;

  constructor(
    spec: ProcessSpec,
    private readonly owner: ProcessSupervisor,
    private readonly events: ProcessEvents,
    private readonly opts: SuperviseOptions,
    backoff: BackoffPolicy,
  ) {
    this.#spec = spec;
    this.#backoff = new RestartBackoff(backoff, () => owner.clock.random());
  }

  get state(): ProcessState {
    return this.#state;
  }
  /** The pid of the live process (its watchdog, the leader of its process group), if one runs. */
  get pid(): number | undefined {
    return this.#pid;
  }
  /** How many processes have been spawned (1 after the first start). */
  get run(): number {
    return this.#run;
  }
  /** Restarts after crashes. */
  get restarts(): number {
    return this.#restarts;
  }
  get lastError(): string | null {
    return this.#lastError;
  }
  get spec(): ProcessSpec {
    return this.#spec;
  }

  /** Starts the first process. */
  start(): void {
    if (this.#state !== 'idle') return;
    this.#spawn();
  }

  #spawn(): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    const spec = this.#spec;
    const [cmd, ...args] = spec.command;
    if (cmd === undefined) throw new TargetError('MERIDIAN_E_TARGET_NO_COMMAND', 'empty command');
    let child: ChildProcess;
    try {
      child = spawn(WATCHDOG_SHELL, watchdogArgs([cmd, ...args], this.owner.graceMs), {
        cwd: spec.cwd,
        env: { ...spec.env },
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      this.#crashed(`could not start: ${(err as Error).message}`, 0);
      return;
    }
    this.#run += 1;
    this.#child = child;
    this.#lastStderr = null;
    this.#startedAt = this.owner.clock.now();
    // the pipe is the watchdog's lifeline: it is never written, and it closes when this process dies
    child.stdin?.on('error', () => undefined);
    this.#lines(child, 'stdout');
    this.#lines(child, 'stderr');
    child.once('error', (err) => {
      // spawn failed (no pid), or a signal could not be sent; only the former ends the run
      if (child.pid === undefined && this.#child === child) {
        this.#child = undefined;
        this.#crashed(`could not start: ${err.message}`, 0);
      }
    });
    child.once('exit', (code, signal) => this.#onExit(child, code, signal));
    if (child.pid === undefined) return; // the 'error' event follows
    this.#pid = child.pid;
    this.#state = 'running';
    this.owner._track(this, child.pid);
    this.events.spawned?.(child.pid, this.#run);
  }

  #lines(child: ChildProcess, stream: 'stdout' | 'stderr'): void {
    const src = child[stream];
    if (!src) return;
    let buf = '';
    src.setEncoding('utf8');
    src.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.#line(stream, buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      if (buf.length > MAX_LINE) {
        this.#line(stream, buf);
        buf = '';
      }
    });
    src.on('end', () => {
      if (buf) this.#line(stream, buf);
      buf = '';
    });
    src.on('error', () => undefined);
  }

  #line(stream: 'stdout' | 'stderr', raw: string): void {
    const line = redactText(raw.replace(/\r$/, '').slice(0, MAX_LINE), this.#spec.redact);
    if (stream === 'stderr' && line.trim() !== '') this.#lastStderr = line.trim().slice(0, 300);
    this.events.output?.(stream, line);
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const pid = child.pid ?? 0;
    // whatever is left in the group (the watchdog's reader, grandchildren) goes with the replica
    signalGroup(pid, 'SIGKILL');
    child.stdin?.destroy();
    this.owner._untrack(this, pid);
    if (this.#child !== child) return;
    this.owner._release(this);
    this.#child = undefined;
    this.#pid = undefined;
    const uptimeMs = this.owner.clock.now() - this.#startedAt;
    const expected = this.#state === 'stopping';
    const said = this.#lastStderr !== null && !SHELL_SIGNAL_NOTE.test(this.#lastStderr) ? this.#lastStderr : null;
    const reason = describeExit(code, signal) + (said && !expected ? `: ${said}` : '');
    this.events.exited?.({ pid, code, signal, uptimeMs, expected, reason });
    if (expected) {
      this.#finishStop();
      return;
    }
    this.#crashed(reason, uptimeMs);
  }

  #crashed(reason: string, uptimeMs: number): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#lastError = redactText(reason, this.#spec.redact);
    if (this.opts.restart === false) {
      this.#state = 'stopped';
      this.#finishStop();
      return;
    }
    const delayMs = this.#backoff.next(uptimeMs);
    this.#state = 'backoff';
    this.events.restarting?.({ attempt: this.#backoff.attempt, delayMs });
    this.#timer = this.owner.clock.setTimeout(() => void this.#restart(), delayMs);
  }

  /** The backoff is over: wait for a place among the processes starting after a crash, then restart. */
  #restart(): void {
    this.#timer = undefined;
    if (this.#state !== 'backoff') return;
    this.owner._admit(this, () => void this.#restartNow());
  }

  async #restartNow(): Promise<void> {
    if (this.#state !== 'backoff') {
      this.owner._release(this);
      return;
    }
    if (this.opts.prepareRestart) {
      try {
        this.#spec = await this.opts.prepareRestart(this.#spec);
      } catch (err) {
        this.owner._release(this);
        if (this.#state === 'backoff') this.#crashed(`could not restart: ${(err as Error).message}`, 0);
        return;
      }
      if (this.#state !== 'backoff') {
        this.owner._release(this);
        return;
      }
    }
    this.#restarts += 1;
    this.#spawn();
  }

  /**
   * Tells the supervisor that this process is up (its owner's readiness check passed): when it was
   * restarted after a crash, its place among the starting processes goes to the next one waiting.
   */
  started(): void {
    this.owner._release(this);
  }

  /** Stops the process: SIGTERM to its group, SIGKILL after the grace period; resolves when it is gone. */
  stop(): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopped = new Promise<void>((resolve) => (this.#resolveStopped = resolve));
    if (this.#timer !== undefined) this.owner.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.owner._release(this);
    const child = this.#child;
    if (!child || this.#pid === undefined) {
      this.#state = 'stopped';
      this.#finishStop();
      return this.#stopped;
    }
    this.#state = 'stopping';
    const pid = this.#pid;
    if (!signalGroup(pid, 'SIGTERM')) child.kill('SIGTERM');
    this.#timer = this.owner.clock.setTimeout(() => {
      this.#timer = undefined;
      if (!signalGroup(pid, 'SIGKILL')) child.kill('SIGKILL');
    }, this.owner.graceMs);
    return this.#stopped;
  }

  /** Signals the process group right now, without waiting (for a process that is about to exit). */
  signalSync(signal: NodeJS.Signals): void {
    if (this.#pid !== undefined) signalGroup(this.#pid, signal);
  }

  #finishStop(): void {
    if (this.#timer !== undefined) this.owner.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#state = 'stopped';
    this.owner._forget(this);
    this.#resolveStopped?.();
    this.#resolveStopped = undefined;
  }
}

/** Starts and tracks every supervised process of one driver. */
export class ProcessSupervisor {
  readonly graceMs: number;
  readonly clock: Clock;
  readonly #backoff: BackoffPolicy;
  readonly #processes = new Set<SupervisedProcess>();
  readonly #pids = new Map<number, SupervisedProcess>();
  readonly #restartConcurrency: number;
  readonly #restartHoldMs: number;
  /** Restarted processes that are starting now, with when they got their place. */
  readonly #starting = new Map<SupervisedProcess, number>();
  /** Restarts waiting for a place, first come first served. */
  readonly #waiting: { readonly p: SupervisedProcess; readonly go: () => void }[] = [];
  #admitTimer: unknown;

  constructor(opts: SupervisorOptions = {}) {
    if (process.platform === 'win32') {
      throw new TargetError(
        'MERIDIAN_E_TARGET_PLATFORM',
        'the local driver needs a POSIX system (Linux, macOS): it runs replicas in process groups',
        {
          hint: 'run meridian up under WSL 2',
        },
      );
    }
    this.graceMs = opts.graceMs ?? 5000;
    this.clock = opts.clock ?? systemClock;
    this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    const concurrency = opts.restartConcurrency ?? availableParallelism();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new TargetError(
        'MERIDIAN_E_TARGET_OPTIONS',
        `restartConcurrency must be a whole number ≥ 1 (got ${String(opts.restartConcurrency)})`,
        { hint: 'pass the number of replicas that may start at once after crashes, e.g. the number of CPUs' },
      );
    }
    this.#restartConcurrency = concurrency;
    this.#restartHoldMs = opts.restartHoldMs ?? DEFAULT_RESTART_HOLD_MS;
  }

  /** Restarted processes starting now (each until it is reported started, exits or its hold time ends). */
  get starting(): number {
    this.#expire();
    return this.#starting.size;
  }

  /** Restarts waiting for a place among the starting processes. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Creates a supervised process (call {@link SupervisedProcess.start} to run it). */
  supervise(spec: ProcessSpec, events: ProcessEvents = {}, opts: SuperviseOptions = {}): SupervisedProcess {
    const p = new SupervisedProcess(spec, this, events, opts, this.#backoff);
    this.#processes.add(p);
    return p;
  }

  /** Pids of every live process group leader. */
  pids(): number[] {
    return [...this.#pids.keys()];
  }

  /** Supervised processes that are not stopped yet. */
  get size(): number {
    return this.#processes.size;
  }

  /** Stops every process and resolves when all are gone. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#processes].map((p) => p.stop()));
  }

  /**
   * Signals every live process group synchronously — for a `process.on('exit')` handler, where nothing
   * asynchronous runs any more. After SIGTERM the watchdogs see their pipe close and send SIGKILL after
   * the grace period on their own.
   */
  signalAllSync(signal: NodeJS.Signals = 'SIGTERM'): void {
    for (const pid of this.#pids.keys()) signalGroup(pid, signal);
  }

  /** @internal a restart asks for a place among the starting processes; `go` runs once it has one. */
  _admit(p: SupervisedProcess, go: () => void): void {
    this.#expire();
    if (this.#waiting.length === 0 && this.#starting.size < this.#restartConcurrency) {
      this.#starting.set(p, this.clock.now());
      go();
      return;
    }
    this.#waiting.push({ p, go });
    this.#next();
  }

  /** @internal the process is up, exited or stopped: it gives its place back (or stops waiting for one). */
  _release(p: SupervisedProcess): void {
    const i = this.#waiting.findIndex((w) => w.p === p);
    if (i >= 0) this.#waiting.splice(i, 1);
    if (this.#starting.delete(p) || i >= 0) this.#next();
  }

  /** Places held longer than the hold time are free again. */
  #expire(): void {
    const now = this.clock.now();
    for (const [p, since] of this.#starting) if (now - since >= this.#restartHoldMs) this.#starting.delete(p);
  }

  /** Gives free places to the restarts waiting, and wakes up when the oldest place's hold time ends. */
  #next(): void {
    this.#expire();
    while (this.#starting.size < this.#restartConcurrency) {
      const w = this.#waiting.shift();
      if (!w) break;
      this.#starting.set(w.p, this.clock.now());
      w.go();
    }
    if (this.#admitTimer !== undefined) this.clock.clearTimeout(this.#admitTimer);
    this.#admitTimer = undefined;
    if (this.#waiting.length === 0) return;
    const oldest = Math.min(...this.#starting.values());
    const wait = Math.max(0, oldest + this.#restartHoldMs - this.clock.now());
    this.#admitTimer = this.clock.setTimeout(() => {
      this.#admitTimer = undefined;
      this.#next();
    }, wait);
  }

  /** @internal */
  _track(p: SupervisedProcess, pid: number): void {
    this.#pids.set(pid, p);
  }
  /** @internal */
  _untrack(p: SupervisedProcess, pid: number): void {
    if (this.#pids.get(pid) === p) this.#pids.delete(pid);
  }
  /** @internal */
  _forget(p: SupervisedProcess): void {
    this.#processes.delete(p);
  }
}
