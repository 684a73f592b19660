/**
 * What the control plane knows and tells: the revision in force, drains, canary weights, endpoints and
 * health of the running fleet, live traffic, rollouts and the audit log. It watches the store (the
 * audit log moves on every change, so one cheap poll of its head sees every rollout transition,
 * approval and state change made by any process) and the fleet, keeps the routing view that routers
 * follow, and publishes every change on the event hub.
 */
import { canonicalJson } from '../render/canonical.js';
import type { Revision } from '../render/render.js';
import { baselineRevisionId } from '../plan/plan.js';
import { evacuate, refusalText, restore } from '../recovery/evacuation.js';
import { RESIDENCY_ONLY, safetyPolicy } from '../recovery/policy.js';
import { restoreRamp, type RampInForce } from '../recovery/ramp.js';
import { FINAL_STATES } from '../rollout/events.js';
import type { RoutingEndpoint, RoutingView, TableView } from '../routing/view.js';
import type { Recovery } from '../spec/schema.js';
import type { Actor, AuditEntry, RolloutRecord, Store } from '../store/store.js';
import type { Endpoint } from '../targets/target.js';
import { ApiError } from './api-error.js';
import { checkDrainRequest, fleetRouterFailed } from './drain-request.js';
import { auditJson } from './audit-json.js';
import type { EventHub } from './event-hub.js';
import type { FleetDrain, FleetLink } from './fleet-link.js';
import { type ClusterRecords, type ClusterView, clustersFromStatus, clustersFromStore, isDrained } from './fleet-view.js';
import { RestoreRamps } from './restore-ramps.js';
import { addCanaries, rolloutSummary, type RolloutSummary } from './rollout-listing.js';
import { sharesOf } from './routing-shares.js';
import { sampleOf, trafficBetween, type TrafficSample, type TrafficView } from './traffic-sampler.js';

export type { RoutingEndpoint, RoutingShare, RoutingView, TableView } from '../routing/view.js';
export type { ClusterServiceView, ClusterView } from './fleet-view.js';
export type { RolloutSummary } from './rollout-listing.js';
export { auditJson } from './audit-json.js';

export interface ControlStateOptions {
  readonly store: Store;
  readonly hub: EventHub;
  readonly link?: FleetLink | null | undefined;
  /** The fleet as written (`meridian serve FLEET`): in force when the store records nothing running. */
  readonly written?: Revision | null | undefined;
  /** The fleet's recovery policy (`recovery:`), whose safety rules every drain is checked against; residency alone when absent. */
  readonly recovery?: Recovery | undefined;
  /** Between looks at the store's audit head, ms (default 250). */
  readonly storePollMs?: number | undefined;
  /** Between looks at the fleet (health, endpoints, traffic), ms (default 2000). */
  readonly fleetPollMs?: number | undefined;
  /** Called with each rollout that changed (oldest first; all of them at start), e.g. to feed metrics. */
  readonly onRolloutChanged?: ((rollout: RolloutRecord) => Promise<void>) | undefined;
  /** The flag gates in force (flag → region → gate), for routers; absent: none. */
  readonly flags?: ((revision: Revision) => Promise<RoutingView['flags']>) | undefined;
  readonly log?: ((message: string) => void) | undefined;
}

const AUDIT_PAGE = 500;

/** The control plane's live state. Call {@link start} once; {@link stop} on shutdown. */
export class ControlState {
  readonly #o: ControlStateOptions;
  #revision: Revision | null = null;
  /** What the store records each cluster runs. */
  #stateOf: ClusterRecords = {};
  readonly #revisions = new Map<string, Revision>();
  #drained = new Set<string>();
  /** Each drain's kind and reason, as recorded (what the fleet's router is told). */
  #drainInfo = new Map<string, FleetDrain>();
  #canary: RoutingView['canary'] = {};
  #flags: RoutingView['flags'] = {};
  readonly #ramps: RestoreRamps;
  #endpoints: RoutingEndpoint[] = [];
  #table: TableView;
  /** The whole view, computed from #table when first asked for after a change. */
  #routing: RoutingView | null = null;
  #routingKey = '';
  #clusters: ClusterView[] = [];
  #clustersKey = '';
  #traffic: TrafficView = { at: new Date(0).toISOString(), windowSeconds: 0, flows: [] };
  #lastSample: TrafficSample | null = null;
  #auditSeq = 0;
  #rollouts = new Map<string, string>();
  #timers: NodeJS.Timeout[] = [];
  #unsubscribe: (() => void) | null = null;
  #fleetSoon: NodeJS.Timeout | null = null;
  #storeBusy = false;
  #fleetBusy = false;
  /** A poll was asked for while one ran (e.g. a replica began draining after its endpoints were read): poll again. */
  #fleetAgain = false;
  #stopped = false;

  constructor(opts: ControlStateOptions) {
    this.#o = opts;
    this.#ramps = new RestoreRamps({
      store: opts.store,
      recovery: opts.recovery,
      link: opts.link ?? null,
      onStep: () => void this.#rampStep(),
      log: opts.log,
    });
    this.#table = {
      tableVersion: 0,
      revision: null,
      at: new Date().toISOString(),
      drained: [],
      ramp: {},
      canary: {},
      flags: {},
      endpoints: [],
    };
  }

  get revision(): Revision | null {
    return this.#revision;
  }

  get routing(): RoutingView {
    if (this.#routing === null) {
      const t = this.#table;
      const rev = t.revision === null ? null : this.#revision;
      this.#routing = { ...t, services: rev ? sharesOf(rev, t.drained, t.canary, t.ramp) : {} };
    }
    return this.#routing;
  }

  get clusters(): readonly ClusterView[] {
    return this.#clusters;
  }

  get traffic(): TrafficView {
    return this.#traffic;
  }

  get drained(): ReadonlySet<string> {
    return this.#drained;
  }

  /** The places ramping back after a restore, where each stands (as of the last recompute). */
  get ramps(): readonly RampInForce[] {
    return this.#ramps.inForce;
  }

  get link(): FleetLink | null {
    return this.#o.link ?? null;
  }

  /** Loads the state (revision, drains from the audit log, rollouts, the fleet) and starts watching. */
  async start(): Promise<void> {
    await this.#loadRevision();
    await this.#loadFlags();
    await this.#readAudit(true);
    this.#recompute();
    // drains and ramps outlive a restart: the fleet's own router starts without them
    await this.#ramps.sync(this.#table.ramp);
    await this.#syncDrains(true);
    await this.#loadRollouts(false);
    await this.#pollFleet();
    this.#recompute();
    this.#timers.push(setInterval(() => void this.pollStore(), this.#o.storePollMs ?? 250));
    if (this.#o.link) {
      this.#timers.push(setInterval(() => void this.#pollFleet(), this.#o.fleetPollMs ?? 2000));
      this.#unsubscribe = this.#o.link.subscribe(() => this.#fleetNow());
    }
    for (const t of this.#timers) t.unref();
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#ramps.stop();
    if (this.#fleetSoon) clearTimeout(this.#fleetSoon);
    this.#unsubscribe?.();
  }

  /** A revision by id (cached: revisions are immutable). */
  async revisionById(id: string): Promise<Revision | undefined> {
    const hit = this.#revisions.get(id);
    if (hit) return hit;
    if (this.#o.written?.id === id) return this.#o.written; // the fleet as written, not recorded yet
    const rev = await this.#o.store.getRevision(id);
    if (rev) this.#revisions.set(id, rev);
    return rev;
  }

  /**
   * Drains (or undrains) a cluster or a region: recorded in the audit log (`routing.drain`, which is
   * also where a restarted server learns its drains), applied to the fleet's router, published.
   */
  async drain(
    kind: 'cluster' | 'region',
    name: string,
    drained: boolean,
    actor: Actor,
    reason?: string,
    how: { readonly declaredDown?: readonly string[] | undefined } = {},
  ): Promise<TableView> {
    const rev = checkDrainRequest(this.#revision, kind, name, how.declaredDown ?? []);
    const place = { kind, name };
    if (drained) {
      // a drain is an evacuation: the fleet's safety rules decide, and the audit log records it either way
      const order = { place, reason: reason ?? 'drained through the API', declaredDown: how.declaredDown ?? [], automated: false, actor };
      const recovery = this.#o.recovery;
      const policy = recovery ? safetyPolicy(recovery) : RESIDENCY_ONLY;
      const outcome = await evacuate(this.#o.store, recovery, rev, order, Date.now(), policy);
      if (outcome.kind === 'refused') {
        await this.pollStore(); // publishes the refusal
        const { message, hint } = refusalText(place, outcome.verdict);
        throw new ApiError('MERIDIAN_E_API_EVACUATION_REFUSED', message, { hint });
      }
    } else {
      const restored = await restore(this.#o.store, place, actor, reason, restoreRamp(this.#o.recovery));
      // not evacuated: nothing changes, but the request is on record as before
      if (!restored) await this.#o.store.appendAudit({ actor, action: 'routing.drain', subject: name, reason, data: { kind, drained } });
      else this.#ramps.restored(place, restored.seq, restored.at);
    }
    this.#applyDrain(name, drained, kind, reason);
    this.#recompute(); // routers that follow the server learn it now
    const view = this.#table;
    const link = this.#o.link;
    let failure: unknown = null;
    try {
      if (!drained) await this.#ramps.sync(this.#table.ramp); // the ramp first: the undrain must not hand back all traffic at once
      await link?.setDrained([name], drained, { kind, reason });
    } catch (err) {
      failure = err;
    }
    await this.pollStore(); // publishes the audit entry
    if (link && failure !== null) throw fleetRouterFailed(link, { kind, name, drained }, failure);
    return view;
  }

  /**
   * Brings the fleet's own router to the recorded drains (a restarted `meridian up` has none; an undrain
   * may have missed it). A failure is logged: the next look at the fleet tries again.
   */
  async #syncDrains(atStart: boolean): Promise<void> {
    const link = this.#o.link;
    if (!link) return;
    const drains = [...this.#drained].map((name) => this.#drainInfo.get(name) ?? { kind: this.#kindOf(name), name });
    try {
      if (link.syncDrained) await link.syncDrained(drains);
      else if (atStart && drains.length > 0) await link.setDrained([...this.#drained], true);
    } catch (err) {
      this.#o.log?.(`cannot tell ${link.describe} the ${drains.length} drain(s) in force, trying again: ${(err as Error).message}`);
    }
  }

  #kindOf(name: string): 'cluster' | 'region' {
    return this.#revision?.regions[name] && !this.#revision.clusters[name] ? 'region' : 'cluster';
  }

  /** Looks at the store's audit head and follows what changed. Public for tests and for callers that just wrote. */
  async pollStore(): Promise<void> {
    if (this.#storeBusy || this.#stopped) return;
    this.#storeBusy = true;
    try {
      const entries = await this.#readAudit(false);
      if (entries.length === 0) return;
      const kinds = new Set(entries.map((e) => e.action.split('.')[0] ?? ''));
      if (kinds.has('cluster')) await this.#loadRevision();
      if (kinds.has('flag') || kinds.has('cluster')) await this.#loadFlags();
      if (kinds.has('rollout') || kinds.has('rollback') || kinds.has('approval') || kinds.has('cluster')) await this.#loadRollouts(true);
      this.#recompute();
      // a drain written by another process (`meridian evacuate`) reaches the fleet's own router now, not at the next look
      if (entries.some((e) => e.action === 'routing.drain')) {
        await this.#ramps.sync(this.#table.ramp);
        await this.#syncDrains(false);
      }
    } catch (err) {
      this.#o.log?.(`cannot read the store: ${(err as Error).message}`);
    } finally {
      this.#storeBusy = false;
    }
  }

  async #readAudit(initial: boolean): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for (;;) {
      const page = await this.#o.store.listAudit({ afterSeq: this.#auditSeq, limit: AUDIT_PAGE });
      for (const e of page) {
        if (e.action === 'routing.drain') {
          const d = e.data as { drained?: unknown; kind?: unknown } | null;
          const kind = d?.kind === 'region' || d?.kind === 'cluster' ? d.kind : this.#kindOf(e.subject);
          this.#applyDrain(e.subject, d?.drained === true, kind, e.reason ?? undefined);
          this.#ramps.observe(e, kind);
        } else if (e.action === 'recovery.ramp') this.#ramps.observe(e, 'cluster');
        if (!initial) {
          this.#o.hub.publish('audit', auditJson(e));
          if (e.action.startsWith('flag.')) this.#o.hub.publish('flag', { name: e.subject, action: e.action, data: e.data });
        }
        out.push(e);
        this.#auditSeq = e.seq;
      }
      if (page.length < AUDIT_PAGE) break;
      if (!initial) break; // the rest on the next poll
    }
    return out;
  }

  #applyDrain(name: string, drained: boolean, kind: 'cluster' | 'region', reason?: string): void {
    if (drained) {
      this.#drained.add(name);
      this.#drainInfo.set(name, { kind, name, reason });
    } else {
      this.#drained.delete(name);
      this.#drainInfo.delete(name);
    }
  }

  async #loadRevision(): Promise<void> {
    const states = await this.#o.store.clusterStates();
    const id = baselineRevisionId(states);
    const rev = id ? await this.revisionById(id) : undefined;
    this.#revision = rev ?? this.#o.written ?? null;
    this.#stateOf = states;
  }

  async #loadFlags(): Promise<void> {
    const rev = this.#revision;
    if (!rev || !this.#o.flags) return;
    try {
      this.#flags = await this.#o.flags(rev);
    } catch (err) {
      this.#o.log?.(`cannot read the flags: ${(err as Error).message}`);
    }
  }

  async #loadRollouts(publish: boolean): Promise<void> {
    const list = await this.#o.store.listRollouts({ limit: 100 });
    const canary: Record<string, Record<string, { weight: number; version: string }>> = {};
    if (this.#o.onRolloutChanged) {
      for (const r of [...list].reverse()) {
        if (this.#rollouts.get(r.id) !== r.updatedAt) await this.#o.onRolloutChanged(r);
      }
    }
    for (const r of list) {
      const changed = this.#rollouts.get(r.id) !== r.updatedAt;
      this.#rollouts.set(r.id, r.updatedAt);
      const active = !FINAL_STATES.includes(r.state);
      if (!active && !(publish && changed)) continue;
      const summary = await this.rolloutSummary(r);
      if (publish && changed) this.#o.hub.publish('rollout', summary);
      if (active) await addCanaries(this.#o.store, (id) => this.revisionById(id), r, canary);
    }
    this.#canary = canary;
  }

  /** The listing form of a rollout. */
  rolloutSummary(r: RolloutRecord): Promise<RolloutSummary> {
    return rolloutSummary(this.#o.store, r);
  }

  #fleetNow(): void {
    if (this.#fleetSoon) return;
    this.#fleetSoon = setTimeout(() => {
      this.#fleetSoon = null;
      void this.#pollFleet();
    }, 50);
    this.#fleetSoon.unref();
  }

  async #pollFleet(): Promise<void> {
    const link = this.#o.link;
    const rev = this.#revision;
    if (!link || !rev || this.#fleetBusy || this.#stopped) {
      if (!link) this.#clustersFromStore();
      if (this.#fleetBusy) this.#fleetAgain = true;
      return;
    }
    this.#fleetBusy = true;
    try {
      const names = Object.keys(rev.clusters);
      const results = await Promise.all(
        names.map(async (name) => {
          try {
            const [status, endpoints] = await Promise.all([link.status(name), link.endpoints(name)]);
            return { name, status, endpoints, error: null };
          } catch (err) {
            return { name, status: null, endpoints: [] as readonly Endpoint[], error: (err as Error).message };
          }
        }),
      );
      const clusters = clustersFromStatus(rev, this.#stateOf, this.#drained, results);
      const reachable = results.some((r) => r.status !== null);
      if (reachable || this.#endpoints.length === 0) {
        // a fleet that cannot be reached keeps its last endpoints: routers keep routing
        this.#endpoints = results
          .flatMap((r) => r.endpoints)
          .map((e) => ({
            cluster: e.cluster,
            service: e.service,
            track: e.track,
            version: e.version,
            host: e.host,
            port: e.port,
            healthy: e.healthy,
            replica: e.replica,
          }))
          .sort((a, b) => (a.cluster + a.service + a.replica < b.cluster + b.service + b.replica ? -1 : 1));
      }
      this.#setClusters(clusters);
      if (reachable) {
        await this.#ramps.sync(this.#table.ramp);
        await this.#syncDrains(false);
      }
      const text = await link.routerMetrics();
      if (text !== null) {
        const sample = sampleOf(text, Date.now());
        if (this.#lastSample) {
          this.#traffic = trafficBetween(this.#lastSample, sample, (c) => rev.clusters[c]?.region ?? '');
          this.#o.hub.publish('traffic', this.#traffic);
        }
        this.#lastSample = sample;
      }
      this.#recompute();
    } finally {
      this.#fleetBusy = false;
      if (this.#fleetAgain && !this.#stopped) {
        this.#fleetAgain = false;
        this.#fleetNow();
      }
    }
  }

  /** Without a link to the fleet: what the store records as running, health unknown. */
  #clustersFromStore(): void {
    const rev = this.#revision;
    if (rev) this.#setClusters(clustersFromStore(rev, this.#stateOf, this.#drained));
  }

  #setClusters(clusters: ClusterView[]): void {
    const key = JSON.stringify(clusters);
    this.#clusters = clusters;
    if (key === this.#clustersKey) return;
    this.#clustersKey = key;
    this.#o.hub.publish('health', { clusters });
  }

  /** Rebuilds the routing view; publishes it when something routers follow changed. */
  #recompute(): void {
    const rev = this.#revision;
    const drained = [...this.#drained].sort();
    const ramp = this.#ramps.at(Date.now(), this.#drained);
    const key = canonicalJson({
      revision: rev?.id ?? null,
      drained,
      ramp,
      canary: this.#canary,
      flags: this.#flags,
      endpoints: this.#endpoints,
    });
    // drains show in the cluster views too
    if (this.#clusters.some((c) => c.drained !== isDrained(this.#drained, c))) {
      this.#setClusters(this.#clusters.map((c) => ({ ...c, drained: isDrained(this.#drained, c) })));
    }
    if (key === this.#routingKey) return;
    this.#routingKey = key;
    const table: TableView = {
      tableVersion: this.#table.tableVersion + 1,
      revision: rev?.id ?? null,
      at: new Date().toISOString(),
      drained,
      ramp,
      canary: this.#canary,
      flags: this.#flags,
      endpoints: this.#endpoints,
    };
    this.#table = table;
    this.#o.hub.publish('table', table); // routers first: the shares take a routing-table build
    this.#routing = null;
    // the shares only when someone watches them (a dashboard); else when asked for
    if (this.#o.hub.wants('routing')) this.#o.hub.publish('routing', this.routing);
  }

  /** A ramp step is due: routers get it, and it is audited. */
  async #rampStep(): Promise<void> {
    if (this.#stopped) return;
    this.#recompute();
    await this.#ramps.sync(this.#table.ramp);
    try {
      await this.pollStore(); // steps another control plane wrote
      await this.#ramps.audit(Date.now(), this.#drained);
      await this.pollStore(); // publishes them
    } catch (err) {
      this.#o.log?.(`cannot audit the restore ramp: ${(err as Error).message}`);
    }
  }

  /** The routing view without the traffic shares (what `table` events carry). */
  get table(): TableView {
    return this.#table;
  }
}
