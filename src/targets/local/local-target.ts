/**
 * The local driver: every cluster becomes a group of processes on loopback. Each service track runs its
 * `local.command` as N supervised replicas with the rendered env, config and resolved secrets, on ports
 * the driver assigns; health is checked over HTTP; crashes restart with backoff; changes roll.
 */
import { TargetError } from '../errors.js';
import type {
  ApplyRequest,
  ClusterStatus,
  Endpoint,
  RemoveRequest,
  Target,
  TargetEvent,
  TargetEventListener,
  TargetEventType,
  Track,
  TrackStatus,
} from '../target.js';
import { checkOnce, HealthCounter } from './health-checker.js';
import { LOOPBACK, PortAllocator } from './port-allocator.js';
import { type Clock, type ProcessEvents, ProcessSupervisor, type ProcessSpec, systemClock } from './process-supervisor.js';
import { SecretResolver } from './secret-resolver.js';
import { DEFAULT_DRAIN_MS, DEFAULT_LOCAL_HEALTH, type LocalHealthOptions, type LocalTargetOptions } from './local-options.js';
import { desiredOf, notRunnable, specHashOf } from './replica-spec.js';
import { countsOf, endpointsOf, isReady, replicaId, trackStatusOf, type Desired, type Replica, type TrackState } from './replicas.js';

/** Re-exported for `meridian up`, which takes the replicas' output lines. */
export type { OutputLine } from './local-options.js';

/** The local driver. */
export class LocalTarget implements Target {
  readonly kind = 'local' as const;
  readonly #opts: LocalTargetOptions;
  readonly #health: LocalHealthOptions;
  readonly #cap: number;
  readonly #clock: Clock;
  readonly #supervisor: ProcessSupervisor;
  readonly #ports: PortAllocator;
  /** cluster → `service/track` → state */
  readonly #clusters = new Map<string, Map<string, TrackState>>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #listeners = new Set<TargetEventListener>();
  readonly #stopping = new Set<Promise<void>>();
  /** Ends the drain delays in progress at once (the driver is closing). */
  readonly #drains = new Set<() => void>();
  readonly #drainMs: number;
  #closing = false;
  #serial = 0;
  #closed: Promise<void> | undefined;
  #ofrepUrl: string | undefined;

  constructor(opts: LocalTargetOptions) {
    this.#opts = opts;
    this.#ofrepUrl = opts.ofrepUrl;
    this.#health = { ...DEFAULT_LOCAL_HEALTH, ...opts.health };
    this.#cap = opts.maxReplicasPerService ?? 2;
    this.#drainMs = opts.drainMs ?? DEFAULT_DRAIN_MS;
    if (!Number.isFinite(this.#drainMs) || this.#drainMs < 0) {
      throw new TargetError('MERIDIAN_E_TARGET_OPTIONS', `drainMs must be a number of milliseconds ≥ 0 (got ${String(opts.drainMs)})`, {
        hint: 'pass drainMs: 0 to stop replicas without a drain delay',
      });
    }
    this.#clock = opts.clock ?? systemClock;
    this.#supervisor = new ProcessSupervisor({
      clock: this.#clock,
      ...(opts.graceMs !== undefined ? { graceMs: opts.graceMs } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.restartConcurrency !== undefined ? { restartConcurrency: opts.restartConcurrency } : {}),
    });
    this.#ports = new PortAllocator(LOOPBACK);
  }

  /**
   * Sets the OFREP URL that replicas applied from now on get as `MERIDIAN_OFREP_URL` (for a caller whose
   * OFREP server needs the driver first: `meridian up` serves it on the control API over this driver).
   */
  setOfrepUrl(url: string | undefined): void {
    this.#ofrepUrl = url;
  }

  subscribe(listener: TargetEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async apply(req: ApplyRequest): Promise<void> {
    this.#assertOpen();
    await this.#serially(req.cluster, () => this.#apply(req));
  }

  async remove(req: RemoveRequest): Promise<void> {
    this.#assertOpen();
    await this.#serially(req.cluster, () => this.#remove(req));
  }

  status(cluster: string): Promise<ClusterStatus> {
    const services: Record<string, Partial<Record<Track, TrackStatus>>> = {};
    for (const t of this.#tracks(cluster)) {
      (services[t.service] ??= {})[t.track] = trackStatusOf(t, this.#health.unhealthyThreshold);
    }
    const sorted = Object.fromEntries(
      Object.keys(services)
        .sort()
        .map((k) => [k, services[k] ?? {}]),
    );
    return Promise.resolve({ cluster, services: sorted });
  }

  endpoints(cluster: string): Endpoint[] {
    return this.#tracks(cluster).flatMap((t) => endpointsOf(cluster, t, LOOPBACK));
  }

  /** Pids of every live replica process group leader, across all clusters. */
  pids(): number[] {
    return this.#supervisor.pids();
  }

  /** Clusters that have something applied. */
  clusters(): string[] {
    return [...this.#clusters.keys()].filter((c) => (this.#clusters.get(c)?.size ?? 0) > 0).sort();
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /**
   * Sends SIGTERM to every replica's process group at once, synchronously: for `process.on('exit')`,
   * where {@link close} cannot run. The watchdogs escalate to SIGKILL after the grace period.
   */
  terminateSync(): void {
    this.#supervisor.signalAllSync('SIGTERM');
  }

  async #close(): Promise<void> {
    // everything goes, routers included: no drain delay, and the ones under way end now
    this.#closing = true;
    for (const wake of [...this.#drains]) wake();
    await Promise.allSettled([...this.#queues.values()]);
    const all = [...this.#clusters.keys()].map((cluster) => this.#remove({ cluster }));
    await Promise.allSettled(all);
    await Promise.allSettled([...this.#stopping]);
    await this.#supervisor.stopAll();
  }

  #assertOpen(): void {
    if (this.#closed) throw new TargetError('MERIDIAN_E_TARGET_CLOSED', 'the local driver is closed');
  }

  #serially<T>(cluster: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(cluster) ?? Promise.resolve();
    const next = prev.then(
      () => fn(),
      () => fn(),
    );
    const settled = next.catch(() => undefined);
    this.#queues.set(cluster, settled);
    void settled.then(() => {
      if (this.#queues.get(cluster) === settled) this.#queues.delete(cluster);
    });
    return next;
  }

  #tracks(cluster: string): TrackState[] {
    return [...(this.#clusters.get(cluster)?.values() ?? [])].sort(
      (a, b) => a.service.localeCompare(b.service) || a.track.localeCompare(b.track),
    );
  }

  // ---- apply ------------------------------------------------------------------------------------

  async #apply(req: ApplyRequest): Promise<void> {
    this.#assertOpen();
    const { cluster, state, track, revisionId } = req;
    const names = req.services ?? Object.keys(state.services).sort();
    const tracks = this.#clusters.get(cluster) ?? new Map<string, TrackState>();
    const resolver = new SecretResolver({ fleetDir: this.#opts.fleetDir, ...(this.#opts.env ? { env: this.#opts.env } : {}) });

    // Everything is checked (commands, working directories, secrets) before anything changes.
    const plans: { service: string; desired: Desired }[] = [];
    for (const service of names) {
      const spec = state.services[service];
      if (!spec) {
        throw new TargetError(
          'MERIDIAN_E_TARGET_UNKNOWN_SERVICE',
          `service ${service} is not in the rendered state of cluster ${cluster}`,
          {
            hint: `apply one of: ${Object.keys(state.services).join(', ') || '(none)'}`,
          },
        );
      }
      const problem = notRunnable(service, spec, cluster);
      if (problem) throw problem;
      const specHash = specHashOf(cluster, state, spec);
      const existing = tracks.get(`${service}/${track}`);
      const replicas = Math.min(spec.replicas, this.#cap);
      if (existing && existing.desired.specHash === specHash) {
        plans.push({ service, desired: { ...existing.desired, revisionId, replicas } });
      } else {
        plans.push({
          service,
          desired: desiredOf(this.#opts, this.#ofrepUrl, cluster, state, service, spec, track, revisionId, specHash, replicas, resolver),
        });
      }
    }

    if (!tracks.size) this.#clusters.set(cluster, tracks);
    for (const { service, desired } of plans) {
      const key = `${service}/${track}`;
      let t = tracks.get(key);
      if (!t) {
        t = {
          cluster,
          service,
          track,
          desired,
          replicas: [],
          consecutive: 0,
          healthy: false,
          lastError: null,
          timer: undefined,
          timerDue: Infinity,
          roundRunning: false,
          removed: false,
        };
        tracks.set(key, t);
      } else if (t.desired.specHash === desired.specHash) {
        if (t.desired.revisionId === desired.revisionId && t.desired.replicas === desired.replicas) continue; // nothing to do
        if (t.desired.revisionId !== desired.revisionId) {
          // same rendered spec under a new revision: keep the processes, but the new revision earns its own checks
          t.consecutive = 0;
          for (const r of t.replicas) if (r.specHash === desired.specHash) r.revisionId = desired.revisionId;
        }
        t.desired = desired;
      } else {
        t.desired = desired;
        t.consecutive = 0;
        t.lastError = null;
        this.#aggregate(t, false, `revision ${desired.revisionId} applied`);
      }
      await this.#scaleUp(t);
      this.#prune(t);
      this.#aggregate(t, false);
      this.#schedule(t, 0);
    }

    if (req.services === undefined) {
      const gone = [...tracks.values()].filter((t) => t.track === track && !(t.service in state.services));
      await Promise.all(gone.map((t) => this.#removeTrack(t)));
    }
  }

  async #scaleUp(t: TrackState): Promise<void> {
    const d = t.desired;
    const current = (): Replica[] => t.replicas.filter((r) => !r.stopping && r.specHash === d.specHash);
    while (current().length < d.replicas) {
      const used = new Set(current().map((r) => r.slot));
      let slot = 0;
      while (used.has(slot)) slot += 1;
      const port = await this.#ports.allocate();
      this.#startReplica(t, d, slot, port);
    }
  }

  #startReplica(t: TrackState, d: Desired, slot: number, port: number): void {
    const spec: ProcessSpec = {
      command: d.command,
      cwd: d.cwd,
      env: { ...d.env, PORT: String(port), MERIDIAN_REPLICA: String(slot) },
      redact: d.redact,
    };
    const onOutput = this.#opts.onOutput;
    const events: ProcessEvents = {
      spawned: () => {
        r.health.reset();
        r.readyThisRun = false;
        r.spawnedAt = this.#clock.now();
        this.#emit('replica-started', t, r, {});
        this.#schedule(t, this.#health.startupIntervalMs);
      },
      exited: (info) => {
        if (info.expected) return;
        r.health.reset();
        r.lastError = info.reason;
        if (r.specHash === t.desired.specHash) t.lastError = `replica ${r.slot}: ${info.reason}`;
        this.#emit('replica-exited', t, r, { reason: info.reason });
        this.#aggregate(t, false, info.reason);
      },
      restarting: ({ attempt, delayMs }) => this.#emit('replica-restarting', t, r, { attempt, delayMs }),
      ...(onOutput
        ? { output: (stream, line) => onOutput({ cluster: t.cluster, service: t.service, track: t.track, replica: slot, stream, line }) }
        : {}),
    };
    const r: Replica = {
      serial: ++this.#serial,
      slot,
      specHash: d.specHash,
      version: d.version,
      healthPath: d.healthPath,
      revisionId: d.revisionId,
      port,
      proc: this.#supervisor.supervise(spec, events, {
        prepareRestart: async (prev) => {
          if (r.readyThisRun) return prev;
          // it never came up on this port: perhaps something else took it; try another
          const next = await this.#ports.allocate();
          this.#ports.release(r.port);
          r.port = next;
          return { ...prev, env: { ...prev.env, PORT: String(next) } };
        },
      }),
      health: new HealthCounter(this.#health),
      stopping: false,
      stopped: null,
      readyThisRun: false,
      spawnedAt: this.#clock.now(),
      lastError: null,
    };
    t.replicas.push(r);
    r.proc.start();
  }

  /** Stops replicas that are no longer needed: surplus current ones, and old ones once enough current ones are ready. */
  #prune(t: TrackState): void {
    const d = t.desired;
    const live = t.replicas.filter((r) => !r.stopping);
    const current = live.filter((r) => r.specHash === d.specHash);
    const old = live.filter((r) => r.specHash !== d.specHash);
    const worstFirst = (a: Replica, b: Replica): number => Number(isReady(a)) - Number(isReady(b)) || b.serial - a.serial;
    if (current.length > d.replicas) {
      const surplus = [...current].sort(worstFirst).slice(0, current.length - d.replicas);
      for (const r of surplus) this.#stopReplica(t, r);
    }
    const readyCurrent = t.replicas.filter((r) => !r.stopping && r.specHash === d.specHash && isReady(r)).length;
    const keepOld = Math.max(0, d.replicas - readyCurrent);
    if (old.length > keepOld) {
      const surplus = [...old].sort(worstFirst).slice(0, old.length - keepOld);
      for (const r of surplus) this.#stopReplica(t, r);
    }
  }

  /**
   * Stops a replica: one that may be receiving traffic is first announced as `replica-draining` (it is
   * no longer listed in {@link endpoints}), then signalled after the drain delay, so that routers have
   * taken it out of rotation before it closes its listener.
   */
  #stopReplica(t: TrackState, r: Replica): Promise<void> {
    if (r.stopped) return r.stopped;
    const serving = r.proc.state === 'running' && r.health.ready;
    r.stopping = true;
    let stop: Promise<void>;
    if (serving && !this.#closing && this.#drainMs > 0) {
      this.#emit('replica-draining', t, r, { reason: `draining for ${this.#drainMs} ms before SIGTERM` });
      stop = this.#drain(this.#drainMs).then(() => r.proc.stop());
    } else {
      stop = r.proc.stop();
    }
    const p = stop.then(() => {
      const i = t.replicas.indexOf(r);
      if (i >= 0) t.replicas.splice(i, 1);
      this.#ports.release(r.port);
      this.#emit('replica-stopped', t, r, {});
    });
    r.stopped = p;
    this.#stopping.add(p);
    void p.finally(() => this.#stopping.delete(p));
    return p;
  }

  /** Waits `ms` on the driver's clock, or less if the driver closes meanwhile. */
  #drain(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#clock.clearTimeout(timer);
        this.#drains.delete(wake);
        resolve();
      };
      const timer = this.#clock.setTimeout(wake, ms);
      this.#drains.add(wake);
    });
  }

  // ---- remove -----------------------------------------------------------------------------------

  async #remove(req: RemoveRequest): Promise<void> {
    const tracks = this.#clusters.get(req.cluster);
    if (!tracks) return;
    const chosen = [...tracks.values()].filter(
      (t) => (req.track === undefined || t.track === req.track) && (req.services === undefined || req.services.includes(t.service)),
    );
    await Promise.all(chosen.map((t) => this.#removeTrack(t)));
    if (tracks.size === 0) this.#clusters.delete(req.cluster);
  }

  async #removeTrack(t: TrackState): Promise<void> {
    t.removed = true;
    if (t.timer !== undefined) this.#clock.clearTimeout(t.timer);
    t.timer = undefined;
    this.#clusters.get(t.cluster)?.delete(`${t.service}/${t.track}`);
    await Promise.all(t.replicas.map((r) => r.stopped ?? this.#stopReplica(t, r)));
    this.#emit('track-removed', t, undefined, {});
  }

  // ---- health -----------------------------------------------------------------------------------

  #schedule(t: TrackState, delayMs: number): void {
    if (t.removed || t.roundRunning) return;
    const due = this.#clock.now() + delayMs;
    if (t.timer !== undefined) {
      if (t.timerDue <= due) return;
      this.#clock.clearTimeout(t.timer);
    }
    t.timerDue = due;
    t.timer = this.#clock.setTimeout(() => void this.#round(t), delayMs);
  }

  async #round(t: TrackState): Promise<void> {
    t.timer = undefined;
    t.timerDue = Infinity;
    if (t.removed) return;
    t.roundRunning = true;
    try {
      const checked = t.replicas.filter((r) => !r.stopping && r.proc.state === 'running');
      await Promise.all(checked.map((r) => this.#check(t, r)));
    } finally {
      t.roundRunning = false;
    }
    if (t.removed) return;
    this.#prune(t);
    this.#aggregate(t, true);
    const starting = t.replicas.some((r) => !r.stopping && !isReady(r));
    this.#schedule(t, starting ? this.#health.startupIntervalMs : this.#health.intervalMs);
  }

  async #check(t: TrackState, r: Replica): Promise<void> {
    const run = r.proc.run;
    const result = await checkOnce({ host: LOOPBACK, port: r.port, path: r.healthPath, timeoutMs: this.#health.timeoutMs });
    if (r.stopping || t.removed || r.proc.run !== run || r.proc.state !== 'running') return; // a stale answer
    const starting = !r.readyThisRun && result.reached === false && this.#clock.now() - r.spawnedAt < this.#health.startupGraceMs;
    if (starting) return; // not listening yet: not a failure
    const flip = r.health.record(result);
    if (!result.ok && (r.health.ready || r.health.consecutiveFailures >= this.#health.unhealthyThreshold)) {
      r.lastError = `health check failed: ${result.reason ?? 'unknown'}`;
      if (r.specHash === t.desired.specHash) t.lastError = `replica ${r.slot}: ${r.lastError}`;
    }
    if (flip === 'ready') {
      r.readyThisRun = true;
      r.proc.started(); // a replica restarted after a crash gives its place to the next one waiting
      this.#emit('replica-ready', t, r, {});
    } else if (flip === 'unhealthy') {
      this.#emit('replica-unhealthy', t, r, { reason: r.lastError ?? 'health check failed' });
    }
  }

  /** Recomputes the track's health; a round counts towards consecutive checks, anything else only resets. */
  #aggregate(t: TrackState, round: boolean, reason?: string): void {
    if (t.removed) return;
    const { ready } = countsOf(t);
    const healthy = ready >= t.desired.replicas;
    if (round) t.consecutive = healthy ? t.consecutive + 1 : 0;
    else if (!healthy) t.consecutive = 0;
    if (healthy !== t.healthy) {
      t.healthy = healthy;
      this.#emit(
        healthy ? 'track-healthy' : 'track-unhealthy',
        t,
        undefined,
        healthy ? {} : { reason: reason ?? t.lastError ?? 'not enough ready replicas' },
      );
    }
  }

  #emit(type: TargetEventType, t: TrackState, r: Replica | undefined, extra: Pick<TargetEvent, 'reason' | 'delayMs' | 'attempt'>): void {
    const event: TargetEvent = {
      type,
      cluster: t.cluster,
      service: t.service,
      track: t.track,
      revisionId: r ? r.revisionId : t.desired.revisionId,
      version: r ? r.version : t.desired.version,
      at: this.#clock.now(),
      ...(r ? { replica: replicaId(r) } : {}),
      ...extra,
    };
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // a listener's failure must not break supervision
      }
    }
  }
}
