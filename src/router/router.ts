/**
 * The router (data plane): an HTTP reverse proxy that routes every request with the routing engine
 * (src/routing), over endpoints from an {@link EndpointSource}, with active health checks and passive
 * outlier detection merged into one health state per service and cluster, retries on another cluster,
 * atomic table swaps and Prometheus metrics. See docs/router.md.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { applyHttpLimits, httpLimits, serverOptions, type HttpLimits } from '../http-limits.js';
import type { Revision } from '../render/render.js';
import { drainedSet, type ClusterHealth, type FlagGate, type RoutingState } from '../routing/index.js';
import { ActiveHealthChecker, checkPolicy, type CheckPolicy } from './active-health-checker.js';
import { AddressMatcher, LOOPBACK_SOURCES } from './address-matcher.js';
import { serveAdmin, type AdminHost, type RouteQuery } from './admin.js';
import { systemClock, type RouterClock } from './clock.js';
import { ENDPOINT_GONE_EVENTS, listerOf, type EndpointEvent, type EndpointLister } from './endpoints.js';
import { MmdbGeoIp, NO_GEOIP, type GeoIp } from './geoip.js';
import { OutlierDetector, outlierPolicy, type EjectionCause, type OutlierPolicy } from './outlier-detector.js';
import { closeGracefully, countEndpoints, explainRoute, serviceStats } from './introspection.js';
import { Proxy, type ProxyHost, type ProxySettings } from './proxy.js';
import { RebuildScheduler } from './rebuild-scheduler.js';
import { RouterMetrics } from './router-metrics.js';
import { buildSnapshot, routedServices, type ControlState, type ServiceCounters, type Snapshot } from './snapshot.js';
import type { CanarySetting, RouterLog, RouterOptions, ServiceStats } from './router-options.js';
import { EndpointSet, Upstream, upstreamKey, type PoolOptions, type ProbeResult } from './upstream.js';

export type { CanarySetting, LogLevel, RouterLog, RouterOptions, ServiceStats } from './router-options.js';

export class Router implements ProxyHost, AdminHost {
  readonly clock: RouterClock;
  readonly geoip: GeoIp;
  readonly metrics: RouterMetrics;
  readonly outliers: OutlierDetector;
  readonly settings: ProxySettings;
  inFlight = 0;

  #revision: Revision;
  #services: readonly string[];
  #snap: Snapshot;
  #version = 0;
  #swaps = 0;
  #drained: Set<string>;
  #ramp: Readonly<Record<string, number>>;
  #canary = new Map<string, Map<string, CanarySetting>>();
  #flags: RoutingState['flags'];
  #latency: RoutingState['latency'];
  #health: Record<string, ClusterHealth>;
  #ejected: Record<string, boolean>;
  readonly #upstreams = new Map<string, Upstream>();
  readonly #sets = new Map<string, EndpointSet>();
  readonly #counters = new Map<string, ServiceCounters>();
  #outlierPolicies = new Map<string, OutlierPolicy>();
  #checkPolicies = new Map<string, CheckPolicy>();
  readonly #lister: EndpointLister;
  readonly #unsubscribe: (() => void) | null;
  readonly #scheduler: RebuildScheduler;
  readonly #checker: ActiveHealthChecker | null;
  readonly #proxy: Proxy;
  readonly #log: RouterLog;
  readonly #poolOptions: PoolOptions;
  readonly #adminPrefix: string | null;
  /** Admin sources on the traffic port (null: the prefix is not served there). */
  readonly #adminSources: AddressMatcher | null;
  /** Admin sources on the admin port. */
  readonly #adminPortSources: AddressMatcher;
  readonly #trustedSources: readonly string[];
  readonly #servers: Server[] = [];
  readonly #closeGraceMs: number;
  readonly #limits: HttpLimits;
  #refreshTimer: unknown = null;
  #closed: Promise<void> | null = null;

  constructor(opts: RouterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.#log = opts.log ?? (() => undefined);
    this.geoip = opts.geoip === null ? NO_GEOIP : typeof opts.geoip === 'object' ? opts.geoip : new MmdbGeoIp(opts.geoip);
    this.metrics = new RouterMetrics({
      ...(opts.registry ? { registry: opts.registry } : {}),
      collect: (m) => countEndpoints(m, this.#sets.values(), this.inFlight),
    });
    this.settings = {
      maxBufferedBodyBytes: opts.maxBufferedBodyBytes ?? 64 * 1024,
      traceparent: opts.traceparent ?? 'generate',
      tracer: opts.tracer ?? null,
    };
    this.#poolOptions = opts.pool ?? {};
    this.#closeGraceMs = opts.closeGraceMs ?? 10_000;
    this.#limits = httpLimits(opts.limits);
    this.#adminPrefix = opts.adminPrefix === undefined ? '/_meridian' : opts.adminPrefix;
    this.#adminSources = opts.adminSources ? new AddressMatcher(opts.adminSources) : null;
    this.#adminPortSources = this.#adminSources ?? new AddressMatcher(LOOPBACK_SOURCES);
    this.#trustedSources = opts.trustedSources ?? [];
    new AddressMatcher(this.#trustedSources); // refuses a malformed entry now, not at the first table
    this.#revision = opts.revision;
    this.#services = routedServices(opts.revision);
    const s = opts.state ?? {};
    this.#drained = new Set(drainedSet(s.drained));
    this.#ramp = { ...s.ramp };
    for (const [svc, byCluster] of Object.entries(s.canary ?? {})) this.#canary.set(svc, new Map(Object.entries(byCluster)));
    this.#flags = s.flags;
    this.#latency = s.latency;
    this.#health = { ...s.health };
    this.#ejected = { ...s.ejected };
    this.#policies();
    this.outliers = new OutlierDetector(this.clock, {
      changed: (u) => this.#healthChanged(u),
      ejected: (u, cause) => this.#ejectedHook(u, cause),
      endpointsOf: (service) => this.#endpointsOf(service),
      policyOf: (service) => this.#outlierPolicies.get(service) ?? outlierPolicy(undefined),
    });
    this.#checker =
      opts.healthChecks === false
        ? null
        : new ActiveHealthChecker(
            this.clock,
            (u) => this.#checkPolicies.get(u.service) ?? checkPolicy(undefined, null),
            (u, r, p) => this.#checked(u, r, p),
            opts.probe,
          );
    this.#scheduler = new RebuildScheduler(this.clock, opts.rebuildIntervalMs ?? 50, () => this.#rebuild());
    this.#proxy = new Proxy(this);
    this.#lister = listerOf(opts.endpoints);
    const src = opts.endpoints;
    this.#unsubscribe = typeof src === 'function' || !src.subscribe ? null : src.subscribe((e) => this.#onEvent(e));
    this.#refresh(false);
    const first = this.#build();
    if (!first) throw new Error('unreachable: the first snapshot always builds');
    this.#snap = first;
    this.metrics.tableVersion.set(0, first.version);
  }

  // ---------------------------------------------------------------- serving

  /** Listens for traffic (and the admin prefix). Resolves with the bound port (0 picks a free one). */
  listen(port = 0, host = '127.0.0.1'): Promise<{ port: number }> {
    return this.#listen(this.#proxy.handle, port, host);
  }

  /** Serves only the admin endpoints on a port of their own (paths with or without the prefix). */
  listenAdmin(port = 0, host = '127.0.0.1'): Promise<{ port: number }> {
    const prefix = this.#adminPrefix ?? '/_meridian';
    return this.#listen((req, res) => void serveAdmin(this, prefix, this.#adminPortSources, req, res, true), port, host);
  }

  #listen(handler: (req: IncomingMessage, res: ServerResponse) => void, port: number, host: string): Promise<{ port: number }> {
    if (this.#closed) return Promise.reject(new Error('the router is closed'));
    const server = applyHttpLimits(createServer(serverOptions(this.#limits), handler), this.#limits);
    this.#servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve({ port: (server.address() as AddressInfo).port });
      });
    });
  }

  /** The `http.Server` request listener, for embedding the router in a server of one's own. */
  get handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return this.#proxy.handle;
  }

  /** @internal ProxyHost */
  snapshot(): Snapshot {
    return this.#snap;
  }

  /** @internal ProxyHost: the admin prefix on the traffic port. */
  admin(req: IncomingMessage, res: ServerResponse): boolean {
    return this.#adminPrefix !== null && this.#adminSources !== null && serveAdmin(this, this.#adminPrefix, this.#adminSources, req, res);
  }

  // ---------------------------------------------------------------- control

  /** A new revision: endpoints are listed again for its clusters and every table is rebuilt now. */
  setRevision(revision: Revision): void {
    this.#revision = revision;
    this.#services = routedServices(revision);
    this.#policies();
    this.#refresh(false);
    this.flush(true);
  }

  get revision(): Revision {
    return this.#revision;
  }

  /** Sets (or with null, removes) the canary of a service on a cluster: `weight` percent of users get `version`. */
  setCanary(service: string, cluster: string, canary: CanarySetting | null): void {
    let m = this.#canary.get(service);
    if (canary === null) m?.delete(cluster);
    else {
      if (!m) this.#canary.set(service, (m = new Map()));
      m.set(cluster, { weight: canary.weight, version: canary.version });
    }
    this.#scheduler.request();
  }

  /** Drains (or undrains) clusters or whole regions, by name. */
  setDrained(names: string | readonly string[], drained = true): void {
    for (const n of typeof names === 'string' ? [names] : names) {
      if (drained) this.#drained.add(n);
      else this.#drained.delete(n);
    }
    this.#scheduler.request();
  }

  /** Replaces the restore ramps: place → percent of its full traffic it takes (docs/recovery.md); unlisted places take all. */
  setRamp(ramp: Readonly<Record<string, number>>): void {
    this.#ramp = { ...ramp };
    this.#scheduler.request();
  }

  /** Replaces the live flag gates (flag → region → gate); they override the revision's `flags`. */
  setFlags(flags: Readonly<Record<string, Readonly<Record<string, FlagGate>>>> | undefined): void {
    this.#flags = flags;
    this.#scheduler.request();
  }

  /** Measured latency, client region → serving region, ms (for `steering: latency`). */
  setLatency(latency: RoutingState['latency']): void {
    this.#latency = latency;
    this.#scheduler.request();
  }

  /** The control plane's view of a cluster's health (null clears it); merged with the router's own. */
  setHealth(cluster: string, health: ClusterHealth | null): void {
    if (health === null) delete this.#health[cluster];
    else this.#health[cluster] = health;
    this.#scheduler.request();
  }

  /** The source's endpoints changed: list them again (the tables follow within the rebuild interval). */
  onEndpointsChanged(): void {
    this.#refresh(true);
  }

  /**
   * Builds the pending table now instead of waiting for the rebuild interval (or always, with `force`).
   * Returns the snapshot version in use afterwards.
   */
  flush(force = false): number {
    this.#scheduler.flush(force);
    return this.#snap.version;
  }

  // ---------------------------------------------------------------- introspection

  /** Snapshot version, swaps, requests in flight, and every endpoint's state per service and cluster. */
  stats(): {
    snapshot: number;
    swaps: number;
    revision: string;
    inFlight: number;
    services: Record<string, ServiceStats>;
  } {
    const services = serviceStats(this.#snap, this.clock.now());
    return { snapshot: this.#snap.version, swaps: this.#swaps, revision: this.#revision.id, inFlight: this.inFlight, services };
  }

  /** Explains how a request would be routed now (backs `GET /_meridian/debug/route`); null when no service matches. */
  explainRoute(q: RouteQuery): unknown {
    return explainRoute(this.#snap, this.geoip, this.clock.now(), q);
  }

  /** The Prometheus text exposition of the router's metrics. */
  metricsText(): Promise<string> {
    return this.metrics.registry.metrics();
  }

  get metricsContentType(): string {
    return this.metrics.registry.contentType;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Stops accepting connections, lets requests in flight finish (closing idle keep-alive connections),
   * then stops checks and timers and closes the upstream pools.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#unsubscribe?.();
    this.#scheduler.close();
    this.#checker?.close();
    if (this.#refreshTimer !== null) this.clock.clearTimeout(this.#refreshTimer);
    await Promise.all(this.#servers.map((srv) => closeGracefully(srv, this.#closeGraceMs)));
    this.outliers.close();
    await Promise.allSettled(
      [...this.#upstreams.values()].map((u) => {
        this.#checker?.stop(u);
        this.outliers.forget(u);
        return u.pool.close();
      }),
    );
  }

  // ---------------------------------------------------------------- internals

  #policies(): void {
    const outlier = new Map<string, OutlierPolicy>();
    const check = new Map<string, CheckPolicy>();
    for (const s of this.#services) {
      const r = this.#revision.routing[s];
      let path: string | null = null;
      for (const c of Object.values(this.#revision.clusters)) {
        const h = c.services[s]?.health;
        if (h) {
          path = h.path;
          break;
        }
      }
      outlier.set(s, outlierPolicy(r?.outlierDetection));
      check.set(s, checkPolicy(r?.healthCheck, path));
    }
    this.#outlierPolicies = outlier;
    this.#checkPolicies = check;
  }

  #setOf(service: string, cluster: string): EndpointSet {
    const k = `${service}\u0000${cluster}`;
    let set = this.#sets.get(k);
    if (!set) this.#sets.set(k, (set = new EndpointSet(service, cluster)));
    return set;
  }

  *#endpointsOf(service: string): Iterable<Upstream> {
    for (const u of this.#upstreams.values()) if (u.service === service) yield u;
  }

  #countersOf(service: string): ServiceCounters {
    let c = this.#counters.get(service);
    if (!c) this.#counters.set(service, (c = { active: 0, retries: 0 }));
    return c;
  }

  /** Lists every cluster's endpoints again and reconciles the upstreams; asks for a rebuild on any change. */
  #refresh(rebuild: boolean): void {
    const routed = new Set(this.#services);
    const seen = new Set<string>();
    let changed = false;
    const touched = new Set<EndpointSet>();
    for (const cluster of Object.keys(this.#revision.clusters)) {
      let list: ReturnType<EndpointLister>;
      try {
        list = this.#lister(cluster);
      } catch (err) {
        this.#log('warn', `could not list the endpoints of ${cluster}`, { error: String(err) });
        continue;
      }
      for (const e of list) {
        if (e.cluster !== cluster || !routed.has(e.service)) continue;
        const key = upstreamKey(e);
        if (seen.has(key)) continue;
        seen.add(key);
        let u = this.#upstreams.get(key);
        if (!u) {
          u = new Upstream(e, this.#poolOptions);
          this.#upstreams.set(key, u);
          const set = this.#setOf(e.service, e.cluster);
          touched.add(set);
          this.#checker?.start(u);
          changed = true;
          continue;
        }
        if (e.replica !== undefined && e.replica !== u.replica) {
          u.replica = e.replica;
          u.resetHealth();
          if (u.ejectedUntil !== 0) this.outliers.uneject(u);
        }
        if (e.version !== u.version) {
          u.version = e.version;
          u.resetSeries();
        }
        u.sourceHealthy = e.healthy ?? true;
        if (u.update()) changed = true;
      }
    }
    for (const [key, u] of this.#upstreams) {
      if (seen.has(key)) continue;
      u.gone = true;
      u.update();
      this.#upstreams.delete(key);
      touched.add(this.#setOf(u.service, u.cluster));
      this.#checker?.stop(u);
      this.outliers.forget(u);
      void u.pool.close().catch(() => undefined); // requests in flight finish first
      changed = true;
    }
    for (const set of touched) {
      const all = [...this.#upstreams.values()].filter((u) => u.service === set.service && u.cluster === set.cluster);
      set.stable = all.filter((u) => u.track === 'stable');
      set.canary = all.filter((u) => u.track === 'canary');
    }
    if (changed && rebuild) this.#scheduler.request();
  }

  #onEvent(e: EndpointEvent): void {
    if (ENDPOINT_GONE_EVENTS.has(e.type) && e.replica !== undefined) {
      // out at once, before the source is listed again
      for (const u of this.#upstreams.values()) {
        if (u.replica === e.replica && u.cluster === e.cluster && u.sourceHealthy) {
          u.sourceHealthy = false;
          if (u.update()) this.#healthChanged(u);
        }
      }
    }
    if (this.#refreshTimer === null && !this.#closed) {
      this.#refreshTimer = this.clock.setTimeout(() => {
        this.#refreshTimer = null;
        if (!this.#closed) this.#refresh(true);
      }, 0);
    }
  }

  #checked(u: Upstream, r: ProbeResult, p: CheckPolicy): void {
    const wasUnreachable = u.unreachable;
    const wasHealthy = u.activeHealthy;
    // only an endpoint that was in rotation can be taken out of it: a replica still starting is not counted
    const wasUsable = u.usable;
    const changed = u.recordCheck(r, p);
    if (wasUsable && wasHealthy && !u.activeHealthy) this.metrics.countTakenOut(u, 'unhealthy');
    if (wasUsable && r.refused && !wasUnreachable) this.metrics.countTakenOut(u, 'unreachable');
    if (changed) {
      this.#log(u.usable ? 'info' : 'warn', `${u.service} endpoint ${u.host}:${u.port} in ${u.cluster} is ${u.state}`, {
        reason: r.reason ?? null,
      });
      this.#healthChanged(u);
    }
    if (r.refused && !wasUnreachable) this.metrics.ejections.inc(this.metrics.ejections.series([u.service, u.cluster, 'connect-refused']));
  }

  #ejectedHook(u: Upstream, cause: EjectionCause): void {
    this.metrics.ejections.inc(this.metrics.ejections.series([u.service, u.cluster, cause]));
    this.metrics.countTakenOut(u, cause === 'consecutive-5xx' ? 'ejected' : 'unreachable');
    this.#log('warn', `${u.service} endpoint ${u.host}:${u.port} in ${u.cluster} taken out: ${cause}`, {
      ejections: u.ejections,
    });
  }

  #healthChanged(_u: Upstream): void {
    this.#scheduler.request();
  }

  #build(): Snapshot | null {
    const t0 = performance.now();
    const next = buildSnapshot(
      {
        version: this.#version + 1,
        revision: this.#revision,
        control: this.#controlState(),
        setOf: (s, c) => this.#setOf(s, c),
        countersOf: (s) => this.#countersOf(s),
        metricId: (dim, name) => this.metrics.names[dim].id(name),
        now: this.clock.now(),
        trustedSources: this.#trustedSources,
      },
      this.#version === 0 ? null : this.#snap,
    );
    if (next) {
      this.#version = next.version;
      this.metrics.tableBuild.observe(0, (performance.now() - t0) / 1000);
    }
    return next;
  }

  #rebuild(): void {
    if (this.#closed) return;
    let next: Snapshot | null;
    try {
      next = this.#build();
    } catch (err) {
      this.#log('error', 'could not rebuild the routing tables; the previous ones stay in use', { error: String(err) });
      return;
    }
    if (!next) return;
    this.#snap = next; // the swap: requests in flight keep the snapshot they started with
    this.#swaps++;
    this.metrics.tableSwaps.inc(0);
    this.metrics.tableVersion.set(0, next.version);
  }

  #controlState(): ControlState {
    return {
      drained: new Set(this.#drained),
      ramp: this.#ramp,
      canary: new Map([...this.#canary].map(([s, m]) => [s, new Map(m)])),
      flags: this.#flags,
      latency: this.#latency,
      health: { ...this.#health },
      ejected: { ...this.#ejected },
    };
  }
}
