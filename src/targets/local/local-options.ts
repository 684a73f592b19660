/**
 * The local driver's options: health checks, drain delay, the environment replicas inherit, and where
 * their output goes. Defaults are here, next to what they default.
 */
import type { BackoffPolicy } from '../../backoff.js';
import type { Track } from '../target.js';
import type { Clock } from './process-supervisor.js';

/** How local replicas are health-checked. */
export interface LocalHealthOptions {
  /** Between checks of a ready replica (default 1000 ms). */
  readonly intervalMs: number;
  /** Between checks while a replica is not ready yet, so that it is seen ready soon (default 200 ms). */
  readonly startupIntervalMs: number;
  /** A check without an answer within this fails (default 1000 ms). */
  readonly timeoutMs: number;
  /** Consecutive passes that make a replica ready (default 1). */
  readonly healthyThreshold: number;
  /** Consecutive failures that make a ready replica unhealthy (default 3). */
  readonly unhealthyThreshold: number;
  /**
   * For this long after it starts, a replica that is not listening yet is "starting", not failing: refused
   * connections are not counted (default 10000 ms). A replica that answers with an error status is failing at once.
   */
  readonly startupGraceMs: number;
}

/** The health-check settings a local target uses where its options leave them out. */
export const DEFAULT_LOCAL_HEALTH: LocalHealthOptions = {
  intervalMs: 1000,
  startupIntervalMs: 200,
  timeoutMs: 1000,
  healthyThreshold: 1,
  unhealthyThreshold: 3,
  startupGraceMs: 10_000,
};

/**
 * The default drain delay: long enough for a router in this process (at once) or one following the control
 * plane (event, endpoint poll, table push: well under a second here) to stop choosing the replica.
 */
export const DEFAULT_DRAIN_MS = 1000;

/** Variables passed through from the driver's environment to every replica by default. */
export const DEFAULT_INHERITED_ENV = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'TMPDIR',
  'TMP',
  'TEMP',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
] as const;

/** One line a replica wrote. */
export interface OutputLine {
  readonly cluster: string;
  readonly service: string;
  readonly track: Track;
  /** The replica's slot, as in `MERIDIAN_REPLICA`. */
  readonly replica: number;
  readonly stream: 'stdout' | 'stderr';
  /** The line, with resolved secret values replaced by `[secret]`. */
  readonly line: string;
}

/** How a {@link LocalTarget} runs: the fleet directory, limits, health, drain, backoff, environment and output. */
export interface LocalTargetOptions {
  /** The fleet's directory: the replicas' working directory, and the base of `file:` secret paths. */
  readonly fleetDir: string;
  /** At most this many replicas per service track, whatever the fleet asks for (default 2). */
  readonly maxReplicasPerService?: number;
  readonly health?: Partial<LocalHealthOptions>;
  /** Between SIGTERM and SIGKILL when stopping a replica (default 5000 ms). */
  readonly graceMs?: number;
  /**
   * Between announcing a serving replica as `replica-draining` (routers take it out of rotation) and its
   * SIGTERM, so that no router sends it a new request once it closes its listener (default
   * {@link DEFAULT_DRAIN_MS}). Not waited when the whole driver closes.
   */
  readonly drainMs?: number;
  /** Restart backoff (default 250 ms doubling to 30 s, ±20 %, reset after 30 s up). */
  readonly backoff?: Partial<BackoffPolicy>;
  /**
   * At most this many replicas restarted after a crash start at once (default: the number of CPUs); each
   * keeps its place until it is ready (or 3 s). Replicas that crash together — a killed cluster — come
   * back a few at a time, so that the processes still serving keep their share of the CPUs.
   */
  readonly restartConcurrency?: number;
  readonly clock?: Clock;
  /** Where `env:` secrets and inherited variables come from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Variables of `env` every replica inherits (default {@link DEFAULT_INHERITED_ENV}). */
  readonly inheritEnv?: readonly string[];
  /** Replaces a command's first word `node` (default `process.execPath`, the Node that runs Meridian). */
  readonly nodePath?: string;
  /** Receives every line the replicas write; without it, output is dropped (the last stderr line shows in errors). */
  readonly onOutput?: (line: OutputLine) => void;
  /**
   * The flags' OFREP server (base URL), given to every replica as `MERIDIAN_OFREP_URL`; see also
   * {@link LocalTarget.setOfrepUrl}. Without it, replicas get no such variable.
   */
  readonly ofrepUrl?: string;
}
