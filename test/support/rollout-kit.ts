/**
 * Fakes of the rollout engine's ports — an in-memory cluster driver that records every call, a traffic
 * control that keeps the weights, a scripted analysis and a clock that never sleeps — and the shop
 * fleet's two revisions recorded in a fresh store.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePlan, type Plan } from '../../src/plan/plan.js';
import type { Revision } from '../../src/render/render.js';
import type { Analysis, EngineClock, StepContext, StepVerdictLike, CanaryWeights } from '../../src/rollout/ports.js';
import type { FleetInput } from '../../src/spec/schema.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import type {
  ApplyRequest,
  ClusterStatus,
  Endpoint,
  RemoveRequest,
  Target,
  TargetEventListener,
  Track,
  TrackStatus,
} from '../../src/targets/target.js';
import { build, shopInput, shopNext } from './plan-fixtures.js';

/** A clock whose sleep moves time forward at once (yielding to other tasks). */
export function fakeClock(start = Date.parse('2026-03-01T00:00:00.000Z')): EngineClock & { advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += Math.max(1, ms);
      await new Promise((r) => setImmediate(r));
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

/** An in-memory driver: every track is healthy at once (unless told otherwise), every call is logged. */
export class FakeDriver implements Target {
  readonly kind = 'local' as const;
  readonly calls: string[] = [];
  /** cluster → `service/track` → status */
  readonly tracks = new Map<string, Map<string, TrackStatus>>();
  /** `cluster/service/track@revision` combinations that never become healthy. */
  readonly sick = new Set<string>();

  apply(req: ApplyRequest): Promise<void> {
    this.calls.push(`apply ${req.cluster} ${req.track} ${req.revisionId.slice(0, 8)} ${(req.services ?? ['*']).join(',')}`);
    const m = this.tracks.get(req.cluster) ?? new Map<string, TrackStatus>();
    this.tracks.set(req.cluster, m);
    const names = req.services ?? Object.keys(req.state.services);
    if (!req.services)
      for (const k of [...m.keys()]) if (k.endsWith(`/${req.track}`) && !names.includes(k.split('/')[0] ?? '')) m.delete(k);
    for (const svc of names) {
      const spec = req.state.services[svc];
      if (!spec) throw new Error(`no ${svc}`);
      const healthy = !this.sick.has(`${req.cluster}/${svc}/${req.track}@${req.revisionId}`);
      m.set(`${svc}/${req.track}`, {
        service: svc,
        track: req.track,
        revisionId: req.revisionId,
        version: spec.version,
        desiredReplicas: 1,
        readyReplicas: healthy ? 1 : 0,
        healthy,
        consecutiveHealthyChecks: healthy ? 99 : 0,
        restarts: 0,
        lastError: healthy ? null : 'health check failed: 503',
        replicas: [],
      });
    }
    return Promise.resolve();
  }

  remove(req: RemoveRequest): Promise<void> {
    this.calls.push(`remove ${req.cluster} ${req.track ?? '*'}`);
    const m = this.tracks.get(req.cluster);
    if (m) for (const k of [...m.keys()]) if (req.track === undefined || k.endsWith(`/${req.track}`)) m.delete(k);
    return Promise.resolve();
  }

  status(cluster: string): Promise<ClusterStatus> {
    const services: Record<string, Partial<Record<Track, TrackStatus>>> = {};
    for (const t of this.tracks.get(cluster)?.values() ?? []) (services[t.service] ??= {})[t.track] = t;
    return Promise.resolve({ cluster, services });
  }

  endpoints(_cluster: string): readonly Endpoint[] {
    return [];
  }

  subscribe(_listener: TargetEventListener): () => void {
    return () => undefined;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** What runs on a cluster's track: service → revision (first 8 characters). */
  running(cluster: string, track: Track = 'stable'): Record<string, string> {
    const out: Record<string, string> = {};
    for (const t of this.tracks.get(cluster)?.values() ?? []) if (t.track === track) out[t.service] = t.revisionId.slice(0, 8);
    return out;
  }
}

/** Keeps the canary weights and logs every call. */
export class FakeTraffic implements CanaryWeights {
  readonly calls: string[] = [];
  readonly weights = new Map<string, number>();
  setCanary(service: string, cluster: string, weight: number, version: string): Promise<void> {
    this.calls.push(`canary ${service}@${cluster} ${weight}% ${version}`);
    this.weights.set(`${service}@${cluster}`, weight);
    return Promise.resolve();
  }
  clear(service: string, cluster: string): Promise<void> {
    this.calls.push(`clear ${service}@${cluster}`);
    this.weights.delete(`${service}@${cluster}`);
    return Promise.resolve();
  }
}

/** An analysis that answers from a script: a function of the step, default pass. */
export class ScriptedAnalysis implements Analysis {
  readonly asked: StepContext[] = [];
  constructor(private readonly script: (ctx: StepContext) => StepVerdictLike['outcome'] = () => 'pass') {}
  judge(ctx: StepContext): Promise<StepVerdictLike> {
    this.asked.push(ctx);
    const outcome = this.script(ctx);
    return Promise.resolve({ outcome, metrics: [{ name: 'error-rate', value: outcome === 'pass' ? 0.001 : 0.2, max: 0.01 }] });
  }
}

/** The shop fixture with short pauses (as a test fleet would have). */
export function quickShop(next: boolean, edit?: (f: FleetInput) => void): FleetInput {
  const f = next ? shopNext() : shopInput();
  const waves = f.rollout?.waves ?? [];
  for (const w of waves) {
    if (w.steps) w.steps = w.steps.map((s) => ({ weight: s.weight, ...(s.pause ? { pause: '50ms' } : {}) }));
    if (w.bake) w.bake = '50ms';
  }
  if (f.rollout) f.rollout.analysis = { interval: '50ms', minSamples: 0, metrics: [], failureLimit: 1 };
  edit?.(f);
  return f;
}

export interface World {
  readonly store: Store;
  readonly file: string;
  readonly rev1: Revision;
  readonly rev2: Revision;
  readonly plan: Plan;
  readonly fleet: ReturnType<typeof build>['fleet'];
}

/** A fresh store (SQLite, unless `open` gives another) with rev1 running everywhere (recorded healthy) and rev2 planned. */
export async function world(edit?: (f: FleetInput) => void, open?: () => Promise<Store>): Promise<World> {
  const file = open ? '' : join(mkdtempSync(join(tmpdir(), 'meridian-rollout-')), 'state.db');
  const store = open ? await open() : await openSqliteStore(file);
  const one = build(quickShop(false, edit));
  const two = build(quickShop(true, edit));
  await store.putRevision(one.revision, { id: 'planner' });
  await store.putRevision(two.revision, { id: 'planner' });
  for (const [name, state] of Object.entries(one.revision.clusters)) {
    await store.recordClusterState(name, one.revision.id, state, 'healthy', { id: 'up' });
  }
  const plan = makePlan({
    fleet: two.fleet,
    revision: two.revision,
    previous: one.revision,
    recorded: await store.clusterStates(),
    shares: {},
  });
  return { store, file, rev1: one.revision, rev2: two.revision, plan, fleet: two.fleet };
}

/** Applies rev1 to every cluster's stable track of a driver. */
export async function seed(driver: Target, rev: Revision): Promise<void> {
  for (const [cluster, state] of Object.entries(rev.clusters)) await driver.apply({ cluster, revisionId: rev.id, state, track: 'stable' });
}
