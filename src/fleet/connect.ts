/**
 * The fleet assembled in one place: for the clusters a rollout touches, a driver per cluster's `driver:`
 * (the local fleet's control API for `local`, the Kubernetes API for `kubernetes`), one target over all
 * of them, the traffic control of each, and the analysis the engine judges canaries with. Commands call
 * this and print; they do not wire drivers themselves.
 */
import type { Revision } from '../render/render.js';
import { PrometheusSource, routerCountersFromText } from '../rollout/analysis/index.js';
import { CanaryAnalysis } from '../rollout/canary-analysis.js';
import type { Analysis, CanaryWeights } from '../rollout/ports.js';
import type { RolloutSpec } from '../rollout/rollout-spec.js';
import { TargetError } from '../targets/errors.js';
import type { KubernetesTarget } from '../targets/kubernetes/kubernetes-target.js';
import { RemoteTarget } from '../targets/remote-target.js';
import type { TargetKind } from '../targets/target.js';
import { type FleetDriver, FleetTarget } from './fleet-target.js';

/** A cluster as the fleet wiring needs it: its driver and its `target` section. */
export interface ClusterWiring {
  readonly driver: TargetKind;
  readonly target: Readonly<Record<string, unknown>> | null;
}

/** The local fleet's control API (`meridian up`): its URL and bearer token. */
export interface ControlEndpoint {
  readonly url: string;
  readonly token: string;
}

export interface ConnectOptions {
  /** Every cluster the rollout may touch, by name (from the revisions involved). */
  readonly clusters: Readonly<Record<string, ClusterWiring>>;
  /**
   * Finds the local fleet's control API; called only when a cluster uses the local driver. It throws a
   * typed error when there is none (the CLI's says to start `meridian up`).
   */
  readonly control: () => ControlEndpoint;
  /** The fleet's directory: relative kubeconfig, CA and `file:` token paths resolve against it. */
  readonly fleetDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Take over fields other field managers own (`--force-conflicts`). */
  readonly forceConflicts?: boolean;
}

/** A connected fleet: one target over every cluster's driver, and what the rollout engine needs besides. */
export interface FleetConnection {
  readonly target: FleetTarget;
  readonly traffic: CanaryWeights;
  /** The local fleet's control API client, when a cluster is local (router counters, drains). */
  readonly local: RemoteTarget | null;
  readonly kubernetes: KubernetesTarget | null;
  /** The analysis gate for a rollout: the canaries' health, and the judge over the fleet's metrics. */
  analysis(spec: RolloutSpec): Analysis;
  close(): Promise<void>;
}

/** The clusters of the given revisions (the later one wins for a cluster in both). */
export function clustersOf(...revisions: readonly (Revision | undefined | null)[]): Record<string, ClusterWiring> {
  const out: Record<string, ClusterWiring> = {};
  for (const r of revisions) {
    if (!r) continue;
    for (const [name, c] of Object.entries(r.clusters)) out[name] = { driver: c.driver, target: c.target };
  }
  return out;
}

/**
 * Connects a driver for each kind of cluster in use and one target over them. Nothing is contacted yet.
 * The kubernetes driver (and its client library, slow to load) is loaded only for a fleet that has one.
 */
export async function connectFleet(opts: ConnectOptions): Promise<FleetConnection> {
  const kinds = new Set(Object.values(opts.clusters).map((c) => c.driver));
  const gitops = Object.entries(opts.clusters).find(([, c]) => c.driver === 'gitops');
  if (gitops) {
    throw new TargetError(
      'MERIDIAN_E_TARGET_NO_DRIVER',
      `cluster ${gitops[0]} uses the gitops driver, which this build of meridian does not have yet`,
      {
        hint: 'use driver: local or driver: kubernetes for it',
      },
    );
  }
  let local: RemoteTarget | null = null;
  if (kinds.has('local')) {
    const c = opts.control();
    local = new RemoteTarget({ url: c.url, token: c.token });
  }
  let kubernetes: KubernetesTarget | null = null;
  if (kinds.has('kubernetes')) {
    const targets = Object.fromEntries(
      Object.entries(opts.clusters)
        .filter(([, c]) => c.driver === 'kubernetes')
        .map(([name, c]) => [name, c.target]),
    );
    const { KubernetesTarget } = await import('../targets/kubernetes/kubernetes-target.js');
    kubernetes = new KubernetesTarget({
      clusters: targets,
      fleetDir: opts.fleetDir,
      env: opts.env,
      forceConflicts: opts.forceConflicts ?? false,
    });
  }
  const drivers: Partial<Record<TargetKind, FleetDriver>> = {};
  if (local) drivers.local = local;
  if (kubernetes) drivers.kubernetes = kubernetes;
  const target = new FleetTarget({ drivers, driverOf: (cluster) => opts.clusters[cluster]?.driver });
  const traffic = target.traffic();
  return {
    target,
    traffic,
    local,
    kubernetes,
    analysis: (spec) =>
      new CanaryAnalysis({
        analysis: spec.analysis ?? null,
        health: target,
        // router metrics come from the fleet's router (the local fleet's); a fleet without one has none
        counters: async () => routerCountersFromText(local ? await local.routerMetrics() : '', new Date().toISOString()),
        prometheus: new PrometheusSource(),
      }),
    close: () => target.close(),
  };
}
