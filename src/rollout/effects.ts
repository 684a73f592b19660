/**
 * The rollout's effects performed through the ports ({@link EffectPerformer}): approvals checked, a canary
 * deployed, a weight set, a step waited out and judged, a batch promoted, a data migration run, a cluster
 * rolled back. Each is idempotent; the engine (`engine.ts`) persists the event each one ends in.
 */
import { RolloutError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import type { RenderedCluster, Revision } from '../render/render.js';
import type { DataMigrationRecord, JsonValue, RolloutEventRecord, RolloutRecord } from '../store/store.js';
import { isHealthyAt, type ClusterStatus, type Track } from '../targets/target.js';
import { evaluateApprovals, gateOf } from './approvals.js';
import { performMigration } from './migration-effect.js';
import type { EnginePorts, StepCluster, StepContext } from './ports.js';
import type { RolloutSpec } from './rollout-spec.js';
import type { Effect, MachineEvent } from './state-machine.js';

/** What performing an effect gave: the machine event with what to persist along, or why there is none yet. */
export type Performed =
  | { event: MachineEvent; details?: Record<string, JsonValue>; records?: ClusterRecordPlan[]; ledger?: DataMigrationRecord }
  | 'pending'
  | 'interrupted';

/** A cluster state to record with the transition (what the cluster runs now). */
export interface ClusterRecordPlan {
  readonly cluster: string;
  readonly revisionId: string;
  readonly state: RenderedCluster;
}

/** The engine's settings the effects read. */
export interface EffectOptions {
  /** How long a deploy, promotion or rollback may take to report healthy. */
  readonly healthTimeoutMs: number;
  /** Between two status polls, and two looks at the store for controls. */
  readonly pollMs: number;
}

/** Performs one effect of the state machine at a time through the engine's ports. */
export class EffectPerformer {
  readonly #p: EnginePorts;
  readonly #o: EffectOptions;
  readonly #revisions = new Map<string, Revision>();

  constructor(ports: EnginePorts, opts: EffectOptions) {
    this.#p = ports;
    this.#o = opts;
  }

  /** Performs `effect` for rollout `rec`: the event it ends in, `pending` (approvals) or `interrupted` (a control waits). */
  async perform(effect: Effect, rec: RolloutRecord, spec: RolloutSpec): Promise<Performed> {
    const { clock } = this.#p;
    try {
      switch (effect.kind) {
        case 'check-approvals': {
          const gate = gateOf(spec, effect.wave, clock.now());
          if (!gate) return { event: { type: 'approvals-met', at: clock.now(), approvers: [] } };
          const v = evaluateApprovals(await this.#p.store.listApprovals(spec.planHash, gate.wave), gate);
          if (v.rejected) {
            return {
              event: { type: 'approval-rejected', at: clock.now(), by: v.rejected.actor, reason: v.rejected.reason ?? 'no reason given' },
              details: { role: v.rejected.role, approval: v.rejected.id },
            };
          }
          if (!v.met) return 'pending';
          return { event: { type: 'approvals-met', at: clock.now(), approvers: v.approvers } };
        }
        case 'deploy-canary': {
          const plans = await Promise.all(effect.clusters.map((c) => this.#clusterPlan(spec, c)));
          for (const p of plans) {
            if (p.changed.length > 0) {
              await this.#p.driver.apply({
                cluster: p.cluster,
                revisionId: p.toRevision,
                state: p.toState,
                track: 'canary',
                services: p.changed,
              });
            }
          }
          const ok = await this.#waitHealthy(
            rec.id,
            plans.map((p) => ({ cluster: p.cluster, services: p.changed, track: 'canary' as const, revisionId: p.toRevision, checks: 1 })),
          );
          if (ok !== true)
            return ok === 'interrupted'
              ? ok
              : { event: { type: 'effect-failed', at: clock.now(), reason: `the canary did not become healthy: ${ok}` } };
          return { event: { type: 'canary-ready', at: clock.now() } };
        }
        case 'set-weight': {
          const clusters = await this.#stepClusters(spec, effect.clusters);
          for (const c of clusters) {
            for (const svc of c.services) await this.#p.traffic.setCanary(svc, c.cluster, effect.weight, c.versions[svc]?.canary ?? '');
          }
          // a new canary's warm-up (rollout.analysis.warmup): it takes traffic, but the window and the pause start after it
          if (await this.#sleepUntil(rec.id, clock.now() + (effect.warmupMs ?? 0))) return 'interrupted';
          // the step's window starts now: what the analysis needs to measure it from here (the router's counters) is persisted with it
          const mark = this.#p.analysis.begin ? await this.#p.analysis.begin({ rolloutId: rec.id, clusters, now: clock.now() }) : null;
          return {
            event: { type: 'weight-set', at: clock.now() },
            details: {
              weight: effect.weight,
              clusters: [...effect.clusters],
              ...(effect.warmupMs ? { warmupMs: effect.warmupMs } : {}),
              ...(mark === null ? {} : { mark }),
            },
          };
        }
        case 'wait': {
          if (await this.#sleepUntil(rec.id, effect.until)) return 'interrupted';
          return { event: { type: 'timer-elapsed', at: clock.now() } };
        }
        case 'judge': {
          const wave = spec.config.waves[effect.wave];
          const step = await this.#stepSoFar(rec.id);
          const ctx: StepContext = {
            rolloutId: rec.id,
            fleet: spec.fleet,
            wave: { index: effect.wave, name: wave?.name ?? '' },
            step: { index: effect.step, weight: effect.weight },
            attempt: effect.attempt,
            clusters: await this.#stepClusters(spec, effect.clusters),
            toRevision: spec.revision,
            now: clock.now(),
            since: step.since ?? clock.now(),
            mark: step.mark,
            history: step.history,
            final: effect.final,
            ...(effect.sampleWait ? { sampleWait: effect.sampleWait } : {}),
          };
          let v;
          try {
            v = await this.#p.analysis.judge(ctx);
          } catch (err) {
            v = { outcome: 'error' as const, metrics: [], reason: (err as Error).message };
          }
          return {
            event: { type: 'verdict', at: clock.now(), outcome: v.outcome, ...(v.reason ? { reason: v.reason } : {}) },
            details: { metrics: JSON.parse(canonicalJson(v.metrics)) as JsonValue, weight: effect.weight, final: effect.final },
          };
        }
        case 'promote': {
          const plans = await Promise.all(effect.clusters.map((c) => this.#clusterPlan(spec, c)));
          for (const p of plans)
            await this.#p.driver.apply({ cluster: p.cluster, revisionId: p.toRevision, state: p.toState, track: 'stable' });
          const ok = await this.#waitHealthy(
            rec.id,
            plans.map((p) => ({
              cluster: p.cluster,
              services: Object.keys(p.toState.services),
              track: 'stable' as const,
              revisionId: p.toRevision,
              checks: spec.healthyChecks,
            })),
          );
          if (ok !== true)
            return ok === 'interrupted'
              ? ok
              : { event: { type: 'effect-failed', at: clock.now(), reason: `the promoted revision did not become healthy: ${ok}` } };
          // the routers follow the new revision's policies (residency, steering, failover, health checks) from now on
          await this.#route(spec.revision, Object.fromEntries(plans.map((p) => [p.cluster, p.toState])));
          for (const p of plans) {
            for (const svc of p.changed) await this.#p.traffic.clear(svc, p.cluster);
            await this.#p.driver.remove({ cluster: p.cluster, track: 'canary' });
          }
          return {
            event: { type: 'promoted', at: clock.now() },
            details: { clusters: plans.map((p) => p.cluster), revision: spec.revision },
            records: plans.map((p) => ({ cluster: p.cluster, revisionId: p.toRevision, state: p.toState })),
          };
        }
        case 'migrate':
          return await performMigration({ store: this.#p.store, clock, runner: this.#p.migrations }, effect, rec, spec);
        case 'rollback-cluster': {
          const p = await this.#clusterPlan(spec, effect.cluster);
          const services = new Set([...Object.keys(p.toState.services), ...Object.keys(p.fromState?.services ?? {})]);
          for (const svc of services) await this.#p.traffic.clear(svc, p.cluster);
          await this.#p.driver.remove({ cluster: p.cluster, track: 'canary' });
          if (p.fromRevision === null || !p.fromState) {
            await this.#p.driver.remove({ cluster: p.cluster, track: 'stable' });
            await this.#routeAfterRollback(spec, p.cluster, undefined);
            return { event: { type: 'cluster-rolled-back', at: clock.now(), cluster: p.cluster }, details: { revision: null } };
          }
          await this.#p.driver.apply({ cluster: p.cluster, revisionId: p.fromRevision, state: p.fromState, track: 'stable' });
          const ok = await this.#waitHealthy(rec.id, [
            {
              cluster: p.cluster,
              services: Object.keys(p.fromState.services),
              track: 'stable',
              revisionId: p.fromRevision,
              checks: spec.healthyChecks,
            },
          ]);
          if (ok === 'interrupted') return ok;
          if (ok !== true)
            return {
              event: { type: 'effect-failed', at: clock.now(), reason: `${p.cluster} did not report ${p.fromRevision} healthy: ${ok}` },
            };
          await this.#routeAfterRollback(spec, p.cluster, p.fromState);
          return {
            event: { type: 'cluster-rolled-back', at: clock.now(), cluster: p.cluster },
            details: { revision: p.fromRevision },
            records: [{ cluster: p.cluster, revisionId: p.fromRevision, state: p.fromState }],
          };
        }
      }
    } catch (err) {
      if (err instanceof RolloutError) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      return { event: { type: 'effect-failed', at: clock.now(), reason: reason.slice(0, 500) } };
    }
  }

  /**
   * Points the routers at what the fleet runs now: each cluster's services as the store records them (with
   * `changes`: the clusters just promoted, or just returned — null: emptied), under the routing policies
   * (routing, regions, flags) of revision `policies`, whose id the router then reports. The routing table
   * takes each cluster's stable version from this, so it must be what the cluster runs, not the target.
   */
  async #route(policies: string, changes: Readonly<Record<string, RenderedCluster | null>>): Promise<void> {
    const setRevision = this.#p.traffic.setRevision?.bind(this.#p.traffic);
    if (!setRevision) return;
    const rev = await this.#revision(policies);
    const clusters: Record<string, RenderedCluster> = { ...rev.clusters };
    for (const [c, s] of Object.entries(await this.#p.store.clusterStates())) if (s) clusters[c] = s.state;
    for (const [c, s] of Object.entries(changes)) {
      if (s) clusters[c] = s;
      else delete clusters[c];
    }
    await setRevision({ ...rev, clusters });
  }

  /**
   * After a cluster is returned: the routers keep the new revision's policies while some cluster still runs
   * it (a promoted wave that stays), else go back to the previous revision's.
   */
  async #routeAfterRollback(spec: RolloutSpec, cluster: string, state: RenderedCluster | undefined): Promise<void> {
    const states = await this.#p.store.clusterStates();
    const stays = Object.entries(spec.to).some(([c, rev]) => c !== cluster && states[c]?.revisionId === rev && spec.from[c] !== rev);
    await this.#route(stays ? spec.revision : (spec.previous ?? spec.revision), { [cluster]: state ?? null });
  }

  /** The current step's window so far: when its weight was set, the analysis's mark then, and its verdicts since. */
  async #stepSoFar(id: string): Promise<{ since: number | null; mark: JsonValue | null; history: JsonValue[] }> {
    const events = await this.#p.store.listRolloutEvents(id);
    let start = -1;
    for (let i = events.length - 1; i >= 0; i--) {
      if (events[i]?.type === 'weight-set') {
        start = i;
        break;
      }
    }
    if (start < 0) return { since: null, mark: null, history: [] };
    const began = events[start] as RolloutEventRecord;
    const data = (began.data ?? {}) as Record<string, JsonValue>;
    const history = events
      .slice(start + 1)
      .filter((e) => e.type === 'verdict')
      .map((e) => ((e.data ?? {}) as Record<string, JsonValue>)['metrics'] ?? []);
    return { since: Date.parse(began.at), mark: data['mark'] ?? null, history };
  }

  /** The batch's clusters as the analysis sees them: the services that run a canary and their versions. */
  async #stepClusters(spec: RolloutSpec, clusters: readonly string[]): Promise<StepCluster[]> {
    return Promise.all(
      clusters.map(async (c) => {
        const p = await this.#clusterPlan(spec, c);
        const versions: Record<string, { canary: string; baseline: string | null }> = {};
        for (const svc of p.changed) {
          versions[svc] = { canary: p.toState.services[svc]?.version ?? '', baseline: p.fromState?.services[svc]?.version ?? null };
        }
        return { cluster: c, services: p.changed, toRevision: p.toRevision, fromRevision: p.fromRevision, versions };
      }),
    );
  }

  /** Sleeps up to `ms`; true when a control is waiting (the caller should return to the loop). */
  async sleepUnlessControl(id: string, ms: number): Promise<boolean> {
    await this.#p.clock.sleep(ms);
    const r = await this.#p.store.getRollout(id);
    return r !== undefined && r.control !== null;
  }

  /** Sleeps until `until` (epoch ms) in steps of at most pollMs; true when a control is waiting. */
  async #sleepUntil(id: string, until: number): Promise<boolean> {
    for (let left = until - this.#p.clock.now(); left > 0; left = until - this.#p.clock.now()) {
      if (await this.sleepUnlessControl(id, Math.min(left, this.#o.pollMs))) return true;
    }
    return false;
  }

  /** Waits until every listed track reports its revision healthy; true, 'interrupted', or why not (timeout). */
  async #waitHealthy(
    id: string,
    wants: readonly { cluster: string; services: readonly string[]; track: Track; revisionId: string; checks: number }[],
  ): Promise<true | 'interrupted' | string> {
    const { clock } = this.#p;
    const deadline = clock.now() + this.#o.healthTimeoutMs;
    for (;;) {
      const statuses = new Map<string, ClusterStatus>();
      let missing: string | null = null;
      for (const w of wants) {
        if (w.services.length === 0) continue;
        let s = statuses.get(w.cluster);
        if (!s) statuses.set(w.cluster, (s = await this.#p.driver.status(w.cluster)));
        const bad = w.services.find((svc) => !isHealthyAt(s, svc, w.track, w.revisionId, w.checks));
        if (bad !== undefined) {
          const t = s.services[bad]?.[w.track];
          missing = `${w.cluster}/${bad} (${w.track}) ${
            t
              ? `runs ${t.revisionId}, ${t.readyReplicas}/${t.desiredReplicas} ready, ${t.consecutiveHealthyChecks}/${w.checks} checks${t.lastError ? `, last error: ${t.lastError}` : ''}`
              : 'is not running'
          }`;
          break;
        }
      }
      if (missing === null) return true;
      if (clock.now() >= deadline) return `timed out after ${Math.round(this.#o.healthTimeoutMs / 1000)} s: ${missing}`;
      if (await this.sleepUnlessControl(id, this.#o.pollMs)) return 'interrupted';
    }
  }

  async #revision(id: string): Promise<Revision> {
    let r = this.#revisions.get(id);
    if (!r) {
      r = await this.#p.store.getRevision(id);
      if (!r)
        throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `revision ${id} is not recorded in the store`, {
          hint: 'record it with `meridian plan`',
        });
      this.#revisions.set(id, r);
    }
    return r;
  }

  async #clusterPlan(
    spec: RolloutSpec,
    cluster: string,
  ): Promise<{
    cluster: string;
    toRevision: string;
    toState: RenderedCluster;
    fromRevision: string | null;
    fromState: RenderedCluster | undefined;
    changed: string[];
  }> {
    const toRevision = spec.to[cluster];
    if (toRevision === undefined) throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `the rollout does not move cluster ${cluster}`);
    const toState = (await this.#revision(toRevision)).clusters[cluster];
    if (!toState) throw new RolloutError('MERIDIAN_E_ROLLOUT_REVISION', `revision ${toRevision} has no cluster ${cluster}`);
    const fromRevision = spec.from[cluster] ?? null;
    const fromState = fromRevision === null ? undefined : (await this.#revision(fromRevision)).clusters[cluster];
    return { cluster, toRevision, toState, fromRevision, fromState, changed: changedServices(fromState, toState) };
  }
}

/** Services whose rendered spec differs between two states of a cluster (or that are new), sorted. */
export function changedServices(from: RenderedCluster | undefined, to: RenderedCluster): string[] {
  return Object.keys(to.services)
    .filter((s) => {
      const before = from?.services[s];
      return !before || canonicalJson(before) !== canonicalJson(to.services[s]);
    })
    .sort();
}
