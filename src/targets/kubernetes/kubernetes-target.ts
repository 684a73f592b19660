/**
 * The kubernetes driver: a {@link Target} over one Kubernetes namespace per cluster. Each service's track
 * is a Deployment (with a ConfigMap, and a Service over both tracks), applied by server-side apply with
 * field manager `meridian`; objects already as wanted are not written at all. Status follows kstatus,
 * pinned to the generation Meridian's own apply produced; events come from comparing looks at the
 * cluster. Full applies prune what the fleet no longer has — only objects of Meridian's ApplySet, never
 * one another tool claims. See docs/kubernetes.md.
 */
import { KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import type { CanaryWeights } from '../canary-weights.js';
import { TargetError } from '../errors.js';
import type { ApplyRequest, ClusterStatus, Endpoint, RemoveRequest, Target, TargetEventListener } from '../target.js';
import { type KeepAliveKubeConfig, kubeConfigFor } from './connection.js';
import { parseKubernetesTarget } from './target-spec.js';
import { gatewayApiMissing, kubeError, partlyApplied } from './kube-errors.js';
import { inBatches } from './batches.js';
import { deploymentState } from './kstatus.js';
import {
  ANNOTATION,
  applySetId,
  applySetParent,
  FIELD_MANAGER,
  foreignOwner,
  httpRoute,
  type KubeObject,
  LABEL,
  type ManifestContext,
  routeCanaryWeight,
  trackObjects,
  workloadName,
} from './manifests.js';
import { podRequests, type QuotaAsk, quotaAsk, quotaError, type QuotaLike, quotaShortfalls } from './quota.js';
import { type CheckCounts, type DeploymentObject, diffEvents, observe, type Observation, type PodLike } from './observe.js';

export interface KubernetesTargetOptions {
  /** The `target` section of each kubernetes cluster, by cluster name. Clusters seen in an apply's state are added. */
  readonly clusters?: Readonly<Record<string, unknown>>;
  /** Relative kubeconfig / CA / `file:` token paths resolve against it. */
  readonly fleetDir: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Take over fields another field manager owns (`--force-conflicts`). */
  readonly forceConflicts?: boolean;
  /** Between two looks at the clusters while someone is subscribed (default 500 ms). */
  readonly pollMs?: number;
  /** How long `remove` waits for pods to be gone, and a canary's scaling for its replicas (default 120 s). */
  readonly removeTimeoutMs?: number;
}

/** How many objects of one cluster are applied at once (one request each, like kubectl, but not one by one). */
const APPLY_CONCURRENCY = 8;

/**
 * The field manager of the canary's replica count (the replica-ratio canary), apart from the objects' own:
 * the canary Deployment's manifest leaves `replicas` out in that mode, so the two never conflict.
 */
const TRAFFIC_MANAGER = 'meridian-traffic';

interface Conn {
  /** The cluster's client configuration (it keeps the connections: close it). */
  readonly kc: KeepAliveKubeConfig;
  readonly api: KubernetesObjectApi;
  readonly ctx: ManifestContext;
  readonly parent: string;
  readonly applied: Map<string, number>;
  readonly counts: CheckCounts;
  last?: Observation;
  /** Looks run one at a time, so that each is compared with the one before it. */
  looking: Promise<unknown>;
}

const KINDS = [
  ['apps/v1', 'Deployment'],
  ['v1', 'ConfigMap'],
  ['v1', 'Service'],
] as const;

/** The kubernetes driver. One instance serves any number of clusters (one namespace each). */
export class KubernetesTarget implements Target {
  readonly kind = 'kubernetes' as const;
  readonly #opts: KubernetesTargetOptions;
  readonly #conns = new Map<string, Conn>();
  readonly #specs = new Map<string, unknown>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #listeners = new Set<TargetEventListener>();
  #poller: NodeJS.Timeout | null = null;
  /** Objects written (server-side applies and deletes) since the driver started: 0 on an unchanged re-apply. */
  writes = 0;

  constructor(opts: KubernetesTargetOptions) {
    this.#opts = opts;
    for (const [c, spec] of Object.entries(opts.clusters ?? {})) this.#specs.set(c, spec);
  }

  #conn(cluster: string, target?: unknown): Conn | undefined {
    const known = this.#conns.get(cluster);
    if (known) return known;
    const raw = this.#specs.get(cluster) ?? target ?? undefined;
    if (raw === undefined || raw === null) return undefined;
    const spec = parseKubernetesTarget(cluster, raw);
    const kc = kubeConfigFor(cluster, spec, { fleetDir: this.#opts.fleetDir, env: this.#opts.env ?? process.env });
    const parent = `meridian-${cluster}`;
    const conn: Conn = {
      kc,
      api: KubernetesObjectApi.makeApiClient(kc),
      ctx: { cluster, namespace: spec.namespace, applySetId: applySetId(parent, spec.namespace), gateway: spec.gateway ?? null },
      parent,
      applied: new Map(),
      counts: new Map(),
      looking: Promise.resolve(),
    };
    this.#conns.set(cluster, conn);
    return conn;
  }

  /** Runs `fn` after every earlier call for the same cluster. */
  #serial<T>(cluster: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(cluster) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.#queues.set(
      cluster,
      next.catch(() => undefined),
    );
    return next;
  }

  async #list(conn: Conn, apiVersion: string, kind: string, selector: string): Promise<KubeObject[]> {
    try {
      const res = await conn.api.list<KubeObject>(
        apiVersion,
        kind,
        conn.ctx.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        selector,
      );
      return res.items.map((o) => ({ ...o, apiVersion, kind }));
    } catch (err) {
      throw kubeError(conn.ctx.cluster, `list ${kind}s in namespace ${conn.ctx.namespace}`, 'list', err);
    }
  }

  async #apply(conn: Conn, obj: KubeObject, dryRun = false): Promise<KubeObject> {
    try {
      if (!dryRun) this.writes += 1;
      return await conn.api.patch<KubeObject>(
        obj,
        undefined,
        dryRun ? 'All' : undefined,
        FIELD_MANAGER,
        this.#opts.forceConflicts ?? false,
        PatchStrategy.ServerSideApply,
      );
    } catch (err) {
      throw kubeError(conn.ctx.cluster, `apply ${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}`, 'patch', err);
    }
  }

  async #delete(conn: Conn, obj: KubeObject): Promise<void> {
    try {
      this.writes += 1;
      await conn.api.delete(
        { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name: obj.metadata.name, namespace: conn.ctx.namespace } },
        undefined,
        undefined,
        undefined,
        undefined,
        'Background',
      );
    } catch (err) {
      if ((err as { code?: number }).code === 404) return;
      throw kubeError(conn.ctx.cluster, `delete ${obj.kind} ${conn.ctx.namespace}/${obj.metadata.name}`, 'delete', err);
    }
  }

  /** Every object Meridian manages in the cluster (Deployments, ConfigMaps, Services; HTTPRoutes with a Gateway). */
  async #managed(conn: Conn): Promise<KubeObject[]> {
    const sel = `${LABEL.cluster}=${conn.ctx.cluster},${LABEL.managedBy}=meridian`;
    const lists = await Promise.all([
      ...KINDS.map(([v, k]) => this.#list(conn, v, k, sel)),
      conn.ctx.gateway ? this.#routes(conn, sel) : Promise.resolve([]),
    ]);
    return lists.flat();
  }

  /** The cluster's HTTPRoutes; a cluster that does not serve the Gateway API is a typed error, not a silent fallback. */
  async #routes(conn: Conn, selector: string): Promise<KubeObject[]> {
    try {
      return await this.#list(conn, 'gateway.networking.k8s.io/v1', 'HTTPRoute', selector);
    } catch (err) {
      if ((err as TargetError).code !== 'MERIDIAN_E_TARGET_K8S_NOT_FOUND') throw err;
      throw gatewayApiMissing(conn.ctx.cluster, conn.ctx.gateway, err);
    }
  }

  /**
   * The objects a request wants, as the driver would apply them (also what `render --format kubernetes`
   * and `validate --server-dry-run` use). `live` gives the Deployments' recorded spec revisions.
   */
  desiredObjects(conn: { ctx: ManifestContext; parent: string }, req: ApplyRequest, live: readonly KubeObject[] = []): KubeObject[] {
    const services = req.services ?? Object.keys(req.state.services);
    const out: KubeObject[] = [applySetParent(conn.ctx, conn.parent)];
    for (const s of services) {
      const dep = live.find((o) => o.kind === 'Deployment' && o.metadata.name === workloadName(s, req.track));
      let specRevisions: Record<string, string> = {};
      try {
        specRevisions = JSON.parse(dep?.metadata.annotations?.[ANNOTATION.specRevisions] ?? '{}') as Record<string, string>;
      } catch {
        specRevisions = {};
      }
      const route = live.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === s);
      const canaryWeight = routeCanaryWeight(route, s);
      out.push(
        ...trackObjects(conn.ctx, req.state, s, req.track, req.revisionId, {
          specRevisions,
          ...(canaryWeight === undefined ? {} : { canaryWeight }),
        }),
      );
    }
    return out;
  }

  apply(req: ApplyRequest): Promise<void> {
    const conn = this.#conn(req.cluster, req.state.target);
    if (!conn) {
      return Promise.reject(
        new TargetError('MERIDIAN_E_TARGET_K8S_CONFIG', `cluster ${req.cluster} has no kubernetes target`, {
          hint: 'give the cluster target: {namespace, kubeconfig} (or server, caFile, token) in the fleet',
        }),
      );
    }
    return this.#serial(req.cluster, async () => {
      const live = await this.#managed(conn);
      const parentLive = (await this.#list(conn, 'v1', 'ConfigMap', `applyset.kubernetes.io/id=${conn.ctx.applySetId}`))[0];
      const wanted = this.desiredObjects(conn, req, live);
      const liveHash = (o: KubeObject): string | undefined => {
        const found = o === wanted[0] ? parentLive : live.find((l) => l.kind === o.kind && l.metadata.name === o.metadata.name);
        return found?.metadata.annotations?.[ANNOTATION.objectHash];
      };
      const stale = wanted.filter((o) => liveHash(o) !== o.metadata.annotations?.[ANNOTATION.objectHash]); // as wanted: no write
      const services = req.services ?? Object.keys(req.state.services);
      await this.#checkQuota(conn, `the ${req.track} track of ${services.join(', ')}`, quotaAsk(stale, live, LABEL.specHash));
      const written: string[] = [];
      const total = stale.length;
      const applyOne = async (o: KubeObject): Promise<void> => {
        const res = await this.#apply(conn, o);
        written.push(`${o.kind}/${o.metadata.name}`);
        if (o.kind === 'Deployment' && typeof res.metadata.generation === 'number')
          conn.applied.set(o.metadata.name, res.metadata.generation);
      };
      try {
        // the ApplySet parent first (its members name it), then the members APPLY_CONCURRENCY at a time
        if (stale[0] === wanted[0]) await applyOne(stale.shift() as KubeObject);
        await inBatches(stale, APPLY_CONCURRENCY, applyOne);
      } catch (err) {
        throw partlyApplied(err, written, total);
      }
      if (req.services === undefined) {
        const keep = new Set(Object.keys(req.state.services));
        const stale = live.filter(
          (o) =>
            o.metadata.labels?.[LABEL.track] === req.track &&
            o.metadata.labels[LABEL.partOf] === conn.ctx.applySetId &&
            !keep.has(o.metadata.labels[LABEL.service] ?? '') &&
            foreignOwner(o) === null,
        );
        for (const o of stale) await this.#delete(conn, o);
      }
    });
  }

  remove(req: RemoveRequest): Promise<void> {
    const conn = this.#conn(req.cluster);
    if (!conn) return Promise.resolve();
    return this.#serial(req.cluster, async () => {
      const live = await this.#managed(conn);
      const hit = (labels: Record<string, string> | undefined): boolean =>
        (req.track === undefined || labels?.[LABEL.track] === req.track) &&
        (req.services === undefined || req.services.includes(labels?.[LABEL.service] ?? ''));
      for (const o of live) if (hit(o.metadata.labels) && foreignOwner(o) === null) await this.#delete(conn, o);
      const deadline = Date.now() + (this.#opts.removeTimeoutMs ?? 120_000);
      for (;;) {
        const o = await this.#look(conn, false);
        const left = [...o.present.values()].filter((t) => hit({ [LABEL.track]: t.track, [LABEL.service]: t.service }));
        if (left.length === 0) return;
        if (Date.now() > deadline) {
          throw new TargetError(
            'MERIDIAN_E_TARGET_TIMEOUT',
            `cluster ${req.cluster}: ${left.map((t) => `${t.service}/${t.track}`).join(', ')} still running after removal`,
            {
              hint: 'look at the pods: kubectl get pods -n ' + conn.ctx.namespace,
            },
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    });
  }

  /** Lists Deployments and pods once, updates endpoints and emits the events since the last look. */
  #look(conn: Conn, count: boolean): Promise<Observation> {
    const next = conn.looking.then(
      () => this.#lookNow(conn, count),
      () => this.#lookNow(conn, count),
    );
    conn.looking = next.catch(() => undefined);
    return next;
  }

  async #lookNow(conn: Conn, count: boolean): Promise<Observation> {
    const sel = `${LABEL.cluster}=${conn.ctx.cluster}`;
    const [deployments, pods] = await Promise.all([this.#list(conn, 'apps/v1', 'Deployment', sel), this.#list(conn, 'v1', 'Pod', sel)]);
    const o = observe(conn.ctx.cluster, deployments as DeploymentObject[], pods as PodLike[], conn.applied, conn.counts, count);
    const events = diffEvents(conn.ctx.cluster, conn.last, o, Date.now());
    conn.last = o;
    for (const e of events) {
      for (const l of this.#listeners) {
        try {
          l(e);
        } catch {
          // a listener's failure is its own
        }
      }
    }
    return o;
  }

  async status(cluster: string): Promise<ClusterStatus> {
    const conn = this.#conn(cluster);
    if (!conn) return { cluster, services: {} };
    return (await this.#look(conn, true)).status;
  }

  endpoints(cluster: string): readonly Endpoint[] {
    return this.#conns.get(cluster)?.last?.endpoints ?? [];
  }

  subscribe(listener: TargetEventListener): () => void {
    this.#listeners.add(listener);
    if (!this.#poller) {
      this.#poller = setInterval(() => {
        for (const conn of this.#conns.values()) void this.#look(conn, false).catch(() => undefined);
      }, this.#opts.pollMs ?? 500);
      this.#poller.unref();
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#poller) {
        clearInterval(this.#poller);
        this.#poller = null;
      }
    };
  }

  close(): Promise<void> {
    if (this.#poller) clearInterval(this.#poller);
    this.#poller = null;
    this.#listeners.clear();
    for (const c of this.#conns.values()) c.kc.close();
    return Promise.resolve();
  }

  /**
   * Refuses, before anything is written, what would take the namespace past a ResourceQuota: a typed
   * error naming the cluster, the quota, the numbers and the fix. Without the right to list quotas the
   * check is left to the API server (whose refusal is typed as well).
   */
  async #checkQuota(conn: Conn, what: string, ask: QuotaAsk): Promise<void> {
    if (ask.pods.length === 0 && Object.keys(ask.objects).length === 0) return;
    let quotas: QuotaLike[];
    try {
      quotas = (await this.#list(conn, 'v1', 'ResourceQuota', '')) as unknown as QuotaLike[];
    } catch (err) {
      if (/_K8S_(FORBIDDEN|NOT_FOUND)$/.test((err as TargetError).code)) return;
      throw err;
    }
    const short = quotaShortfalls(quotas, ask);
    if (short.length > 0) throw quotaError(conn.ctx.cluster, conn.ctx.namespace, what, short);
  }

  /** Sends every object of a request to the API server with dry-run: admission errors, nothing persisted. */
  async dryRun(req: ApplyRequest): Promise<{ object: KubeObject; error: TargetError | null }[]> {
    const conn = this.#conn(req.cluster, req.state.target);
    if (!conn) return [];
    const out: { object: KubeObject; error: TargetError | null }[] = [];
    for (const o of this.desiredObjects(conn, req)) {
      try {
        await this.#apply(conn, o, true);
        out.push({ object: o, error: null });
      } catch (err) {
        const e = err as TargetError;
        // the cluster itself is the problem (not reachable, credentials refused): one error, not one per object
        if (/_K8S_(UNREACHABLE|UNAUTHORIZED|CONFIG|FAILED)$/.test(e.code)) throw e;
        out.push({ object: o, error: e });
      }
    }
    return out;
  }

  /** How a cluster splits canary traffic: HTTPRoute weights on its Gateway, or the ratio of replicas. */
  canaryMode(cluster: string): 'gateway' | 'replicas' | null {
    const conn = this.#conn(cluster);
    return conn ? (conn.ctx.gateway ? 'gateway' : 'replicas') : null;
  }

  /**
   * Canary weights inside each cluster: with a Gateway, the HTTPRoute's backend weights; without, the
   * canary Deployment scaled so that canary / (stable + canary) replicas approximates the weight.
   */
  traffic(): CanaryWeights {
    const set = async (service: string, cluster: string, weight: number): Promise<void> => {
      const conn = this.#conn(cluster);
      if (!conn) return;
      const live = await this.#managed(conn);
      const stable = live.find((o) => o.kind === 'Deployment' && o.metadata.name === workloadName(service, 'stable'));
      const canary = live.find((o) => o.kind === 'Deployment' && o.metadata.name === workloadName(service, 'canary'));
      if (conn.ctx.gateway) {
        const port = (
          (stable ?? canary)?.['spec'] as { template?: { spec?: { containers?: { ports?: { containerPort?: number }[] }[] } } } | undefined
        )?.template?.spec?.containers?.[0]?.ports?.[0]?.containerPort;
        if (port === undefined) return;
        const route = httpRoute(conn.ctx, service, port, weight);
        const liveRoute = live.find((o) => o.kind === 'HTTPRoute' && o.metadata.name === service);
        if (liveRoute?.metadata.annotations?.[ANNOTATION.objectHash] === route.metadata.annotations?.[ANNOTATION.objectHash]) return; // as wanted: no write
        await this.#apply(conn, route);
        return;
      }
      if (!canary) return;
      const base = ((stable?.['spec'] as { replicas?: number } | undefined)?.replicas ?? 1) || 1;
      const want = weight <= 0 ? 0 : weight >= 100 ? base : Math.max(1, Math.round((base * weight) / (100 - weight)));
      const had = (canary['spec'] as { replicas?: number } | undefined)?.replicas ?? 0;
      if (had === want) return; // as wanted: no write
      const more = Array.from({ length: Math.max(0, want - had) }, () => podRequests(canary));
      await this.#checkQuota(conn, `scaling ${workloadName(service, 'canary')} to ${want} replicas (weight ${weight} %)`, {
        pods: more,
        objects: {},
      });
      await this.#scale(conn, workloadName(service, 'canary'), want);
    };
    return {
      setCanary: (service, cluster, weight) => this.#serial(cluster, () => set(service, cluster, weight)),
      clear: (service, cluster) => this.#serial(cluster, () => set(service, cluster, 0)),
    };
  }

  /**
   * Scales the canary Deployment and waits until the controller has rolled the new count out (kstatus
   * current at the generation this write produced), so that a weight, once set, is in effect and the
   * canary's health is judged on it, not on a scaling in flight.
   */
  async #scale(conn: Conn, name: string, replicas: number): Promise<void> {
    const what = `scale Deployment ${conn.ctx.namespace}/${name}`;
    let generation: number | undefined;
    try {
      this.writes += 1;
      const res = await conn.api.patch<KubeObject>(
        { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: conn.ctx.namespace }, spec: { replicas } } as KubeObject,
        undefined,
        undefined,
        TRAFFIC_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
      generation = typeof res.metadata.generation === 'number' ? res.metadata.generation : undefined;
    } catch (err) {
      throw kubeError(conn.ctx.cluster, what, 'patch', err);
    }
    if (generation !== undefined) conn.applied.set(name, generation);
    const deadline = Date.now() + (this.#opts.removeTimeoutMs ?? 120_000);
    for (;;) {
      let live: KubeObject;
      try {
        live = await conn.api.read<KubeObject>({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name, namespace: conn.ctx.namespace },
        } as KubeObject);
      } catch (err) {
        throw kubeError(conn.ctx.cluster, `read Deployment ${conn.ctx.namespace}/${name}`, 'get', err);
      }
      const ks = deploymentState(live as DeploymentObject, generation ?? 0);
      if (ks.state === 'current') return;
      const refused = (live as DeploymentObject).status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
      if (refused?.message !== undefined && /exceeded quota/.test(refused.message))
        throw kubeError(conn.ctx.cluster, `${what} to ${replicas}`, 'create', { code: 403, body: { message: refused.message } });
      if (ks.state === 'failed')
        throw new TargetError('MERIDIAN_E_TARGET_K8S_FAILED', `cluster ${conn.ctx.cluster}: ${what} to ${replicas}: ${ks.reason}`);
      if (Date.now() > deadline) {
        throw new TargetError(
          'MERIDIAN_E_TARGET_TIMEOUT',
          `cluster ${conn.ctx.cluster}: ${what} to ${replicas} did not finish: ${ks.reason}`,
          {
            hint: 'check the canary pods (kubectl get pods -l meridian.dev/track=canary) and the namespace quota',
          },
        );
      }
      await new Promise((r) => setTimeout(r, this.#opts.pollMs ?? 200));
    }
  }
}
