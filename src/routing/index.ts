/** Routing: precomputed tables and the per-request decision. Pure: no I/O, no clocks. See docs/routing.md. */
export { buildRoutingTable, rowPlan, ROW, type RoutingTable, type RoutingTableOptions } from './table.js';
export { createDecision, decide, nextAttempt, type Decision, type DecisionKind } from './decide.js';
export { explain, type Explanation, type ExplainedCandidate, type ExplainedLevel, type ClusterState } from './explain.js';
export {
  clientShares,
  clusterShares,
  formatTrafficTable,
  trafficFromProjection,
  trafficFromTable,
  trafficTable,
  UNKNOWN_CLIENT,
  type ClientTraffic,
  type FormatOptions,
  type TrafficTable,
  type VersionShare,
} from './traffic-table.js';
export {
  routingProjection,
  type ProjectedClient,
  type ProjectedCluster,
  type ProjectedLevel,
  type ProjectedService,
  type ProjectedState,
  type ProjectedVariant,
  type ProjectedVersions,
  type RoutingProjection,
} from './projection.js';
export {
  levelHealth,
  priorityLoad,
  priorityLoadFromPercents,
  type LoadRounding,
  type PriorityLevelInput,
  type PriorityLoad,
  type PriorityLoadOptions,
} from './priority-load.js';
export { capLoads } from './capacity.js';
export { biasedDistance, countryRegions, haversineKm, EARTH_RADIUS_KM, type LatLon } from './geo.js';
export { bucketOf, fmix32, fnv1aString, hashSeed, unitOf, userBucket, userHash, BUCKETS } from './hash.js';
export {
  DEFAULT_ROUTE_TIMEOUT_MS,
  IDEMPOTENT_METHODS,
  isIdempotent,
  RetryBudget,
  retryBudgetFor,
  routeTimeouts,
  type RouteTimeouts,
  type RetryBudgetOptions,
  type RetryCounters,
} from './retry-budget.js';
export {
  drainedSet,
  simulatedState,
  type CanaryWeight,
  type ClusterHealth,
  type FlagGate,
  type RoutingState,
  type Simulation,
} from './state.js';
export {
  regionOrder,
  resolvePolicy,
  type OrderBasis,
  type RegionOrder,
  type ResidencyRule,
  type ServicePolicy,
  type Steering,
} from './model.js';
export { residencyRule, type ExclusionReason, type RowOutcome, type RowPlan } from './row-plan.js';
