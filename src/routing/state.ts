/**
 * The live inputs of routing besides the revision: health, drains, ejections, canary weights, flag
 * gates and measured latency. Plain data, supplied by the router, the control plane or a simulation.
 */

/** The merged health of one cluster (active checks, outlier detection, the control plane's view). */
export interface ClusterHealth {
  readonly healthy: boolean;
  /**
   * The fraction of the cluster that is lost, 0..1 (0 = whole, 0.25 = a quarter of its endpoints are
   * failing). The cluster counts with `weight × (1 − degraded)`; 1 makes it unavailable.
   */
  readonly degraded?: number;
}

/** The canary of one service on one cluster: its version and the percentage of users it receives. */
export interface CanaryWeight {
  /** 0..100, applied at 0.01% granularity (user buckets 0..9999). */
  readonly weight: number;
  readonly version: string;
}

/** A flag's gate in one region. */
export interface FlagGate {
  readonly enabled: boolean;
  /** 0..100: the percentage of users (by a sticky hash of user key and flag name) for whom the gate is open. */
  readonly percent: number;
}

/** Everything routing needs to know beyond the revision. Every field is optional: absent means "all well". */
export interface RoutingState {
  /** Per cluster; a cluster that is not listed is healthy. */
  readonly health?: Readonly<Record<string, ClusterHealth>>;
  /** Drained clusters or whole regions (by name): they take no traffic and do not count in level health. */
  readonly drained?: ReadonlySet<string> | readonly string[] | Readonly<Record<string, boolean>>;
  /** Clusters ejected by outlier detection: unavailable, but they count in level health (as unhealthy). */
  readonly ejected?: Readonly<Record<string, boolean>>;
  /** service → cluster → canary. */
  readonly canary?: Readonly<Record<string, Readonly<Record<string, CanaryWeight>>>>;
  /** flag → region → gate; overrides the revision's `flags` section. */
  readonly flags?: Readonly<Record<string, Readonly<Record<string, FlagGate>>>>;
  /** Measured latency in milliseconds, client region → serving region (used by `steering: latency`). */
  readonly latency?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /**
   * Places (clusters or whole regions, by name) ramping back after a restore → the percentage 0..100 of
   * the traffic they would take in full that they take now; the rest goes where it went while they were
   * evacuated (src/routing/ramp.ts). A place not listed, or at 100, takes its full share.
   */
  readonly ramp?: Readonly<Record<string, number>>;
}

/** A set view of {@link RoutingState.drained}. */
export function drainedSet(drained: RoutingState['drained']): ReadonlySet<string> {
  if (drained === undefined) return new Set();
  if (drained instanceof Set) return drained;
  if (Array.isArray(drained)) return new Set(drained as readonly string[]);
  return new Set(
    Object.entries(drained as Readonly<Record<string, boolean>>)
      .filter(([, v]) => v)
      .map(([k]) => k),
  );
}

/** A simulation's what-ifs, as for `meridian route simulate --down eu-west-1 --drain us-east`. */
export interface Simulation {
  /** Clusters to mark unhealthy. */
  readonly down?: readonly string[];
  /** Clusters or regions to drain. */
  readonly drain?: readonly string[];
  /** Clusters to mark ejected. */
  readonly eject?: readonly string[];
  /** Clusters with a degraded fraction (0..1). */
  readonly degraded?: Readonly<Record<string, number>>;
}

/** Builds a {@link RoutingState} from a simulation's what-ifs, on top of an optional base state. */
export function simulatedState(sim: Simulation, base: RoutingState = {}): RoutingState {
  const health: Record<string, ClusterHealth> = { ...base.health };
  for (const [c, d] of Object.entries(sim.degraded ?? {})) health[c] = { healthy: health[c]?.healthy ?? true, degraded: d };
  for (const c of sim.down ?? []) health[c] = { healthy: false };
  const drained = new Set(drainedSet(base.drained));
  for (const d of sim.drain ?? []) drained.add(d);
  const ejected: Record<string, boolean> = { ...base.ejected };
  for (const c of sim.eject ?? []) ejected[c] = true;
  return { ...base, health, drained, ejected };
}
