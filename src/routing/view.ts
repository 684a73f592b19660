/**
 * The routing view: what the control plane sends to routers (`GET /api/v1/routing`, the `table` and
 * `routing` events), defined once as zod schemas. The server builds it with these types and checks its
 * answers with these schemas; the router parses what it receives with them.
 */
import { z } from 'zod';

/**
 * Tracks of one service in one cluster: `stable` serves the traffic; during a rollout the new version runs
 * beside it as `canary` until it is promoted (applied as stable) or rolled back (canary removed).
 */
export const TRACKS = ['stable', 'canary'] as const;
export type Track = (typeof TRACKS)[number];

/** One replica of a service track that routers may send requests to. */
export const RoutingEndpointSchema = z.object({
  cluster: z.string(),
  service: z.string(),
  track: z.enum(TRACKS),
  version: z.string(),
  host: z.string(),
  port: z.number().int().min(1).max(65535),
  healthy: z.boolean().describe("the driver's own view of the replica's health"),
  replica: z.string().describe("the replica's identity (changes when it is replaced)"),
});
export type RoutingEndpoint = z.infer<typeof RoutingEndpointSchema>;

/** A canary in force: `weight` percent of users get `version`. */
export const CanarySchema = z.object({ weight: z.number(), version: z.string() });
export type Canary = z.infer<typeof CanarySchema>;

/** A flag gate in force in a region. */
export const FlagGateSchema = z.object({ enabled: z.boolean(), percent: z.number() });

/** A share of one client region's traffic. */
export const RoutingShareSchema = z.object({ cluster: z.string(), version: z.string(), share: z.number() });
export type RoutingShare = z.infer<typeof RoutingShareSchema>;

/** What routers follow (the `table` event): everything their table is built from. */
export const TableViewSchema = z.object({
  tableVersion: z.number().int().describe('goes up by one on every change a router follows'),
  revision: z.string().nullable(),
  at: z.string().describe('when the server made the change (ISO 8601)'),
  drained: z.array(z.string()),
  /** Places ramping back after a restore → the percentage of their full traffic they take now (docs/recovery.md). */
  ramp: z.record(z.string(), z.number()).default({}),
  /** service → cluster → canary */
  canary: z.record(z.string(), z.record(z.string(), CanarySchema)),
  /** flag → region → gate in force (operators' settings over the fleet file) */
  flags: z.record(z.string(), z.record(z.string(), FlagGateSchema)),
  endpoints: z.array(RoutingEndpointSchema),
});
export type TableView = z.infer<typeof TableViewSchema>;

/**
 * The whole routing view (`GET /api/v1/routing`, the `routing` event): the table view and the traffic
 * shares the dashboard reads (service → client region → where its traffic goes, shares of 1).
 */
export const RoutingViewSchema = TableViewSchema.extend({
  services: z.record(z.string(), z.record(z.string(), z.array(RoutingShareSchema))),
});
export type RoutingView = z.infer<typeof RoutingViewSchema>;
