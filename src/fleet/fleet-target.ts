/**
 * One {@link Target} over a whole fleet: each call goes to the driver of the cluster it names (local
 * processes behind `meridian up`, a Kubernetes API, …), so the rollout engine and the router see one
 * target whatever each cluster runs on. Events of every driver come out of one subscription.
 */
import type { CanaryWeights } from '../rollout/ports.js';
import { TargetError } from '../targets/errors.js';
import type { ApplyRequest, ClusterStatus, Endpoint, RemoveRequest, Target, TargetEventListener, TargetKind } from '../targets/target.js';

/** A driver as the fleet uses it: a target, and optionally the traffic control of its clusters. */
export interface FleetDriver extends Target {
  /** Canary weights for this driver's clusters (the router's, or in-cluster routes); absent: none to set. */
  traffic?(): CanaryWeights;
}

export interface FleetTargetOptions {
  /** The driver of each kind in use. */
  readonly drivers: Partial<Record<TargetKind, FleetDriver>>;
  /** The driver kind of a cluster, or undefined for a cluster the fleet does not have. */
  readonly driverOf: (cluster: string) => TargetKind | undefined;
}

/** A target that dispatches each call to its cluster's driver; unknown clusters are empty. */
export class FleetTarget implements Target {
  /** The kind of the fleet's only driver, or the first one's when several are in use. */
  readonly kind: TargetKind;
  readonly #drivers: Partial<Record<TargetKind, FleetDriver>>;
  readonly #driverOf: (cluster: string) => TargetKind | undefined;

  constructor(opts: FleetTargetOptions) {
    this.#drivers = opts.drivers;
    this.#driverOf = opts.driverOf;
    this.kind = (Object.keys(opts.drivers)[0] as TargetKind | undefined) ?? 'local';
  }

  /** The driver that serves `cluster`, if any. */
  driverFor(cluster: string): FleetDriver | undefined {
    const kind = this.#driverOf(cluster);
    return kind === undefined ? undefined : this.#drivers[kind];
  }

  async apply(req: ApplyRequest): Promise<void> {
    const d = this.driverFor(req.cluster) ?? this.#drivers[req.state.driver];
    if (!d) throw missingDriver(req.cluster, req.state.driver);
    await d.apply(req);
  }

  async remove(req: RemoveRequest): Promise<void> {
    await this.driverFor(req.cluster)?.remove(req);
  }

  async status(cluster: string): Promise<ClusterStatus> {
    const d = this.driverFor(cluster);
    return d ? d.status(cluster) : { cluster, services: {} };
  }

  endpoints(cluster: string): readonly Endpoint[] {
    return this.driverFor(cluster)?.endpoints(cluster) ?? [];
  }

  subscribe(listener: TargetEventListener): () => void {
    const offs = Object.values(this.#drivers).map((d) => d.subscribe(listener));
    return () => {
      for (const off of offs) off();
    };
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.#drivers).map((d) => d.close()));
  }

  /** Traffic control that sends each cluster's canary weights to its driver's (a no-op for a driver without one). */
  traffic(): CanaryWeights {
    const of = (cluster: string): CanaryWeights | undefined => this.driverFor(cluster)?.traffic?.();
    const all = Object.values(this.#drivers)
      .map((d) => d.traffic?.())
      .filter((t): t is CanaryWeights => t !== undefined);
    return {
      setCanary: async (service, cluster, weight, version) => {
        await of(cluster)?.setCanary(service, cluster, weight, version);
      },
      clear: async (service, cluster) => {
        await of(cluster)?.clear(service, cluster);
      },
      setRevision: async (revision) => {
        for (const t of all) await t.setRevision?.(revision);
      },
    };
  }
}

function missingDriver(cluster: string, kind: TargetKind): TargetError {
  return new TargetError('MERIDIAN_E_TARGET_NO_DRIVER', `no ${kind} driver is connected for cluster ${cluster}`, {
    hint:
      kind === 'gitops'
        ? 'the gitops driver is not built yet; use driver: local or kubernetes'
        : "check the cluster's driver and target in the fleet",
  });
}
