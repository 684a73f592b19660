/**
 * The exporter contract: every data-plane exporter (HAProxy, nginx, …) reads the same routing
 * projection and cluster addresses and returns files plus a loss report — each rule of the model the
 * target cannot express, with what was exported instead and its effect. See docs/export.md.
 */
import type { ProjectedLevel, RoutingProjection } from '../routing/projection.js';
import type { Revision } from '../render/render.js';
import type { LossCode } from './loss.js';

/** One server a data plane sends a cluster's share of a service to. */
export interface UpstreamServer {
  readonly host: string;
  readonly port: number;
  /** A name unique within the cluster and service (a replica id, or `ingress`). */
  readonly name: string;
  /** The version track behind it, when the address is a replica's (local clusters). */
  readonly track?: 'stable' | 'canary';
  /** The version it runs, when known (a replica's). */
  readonly version?: string;
  /** The path the data plane checks. */
  readonly healthPath: string;
  /**
   * Out of service from the start (a drained cluster, a replica known dead): a data plane that starts or
   * reloads with it must not send it a request until told otherwise (HAProxy: `disabled`).
   */
  readonly disabled?: boolean;
}

/** cluster → service → servers. A cluster behind one ingress lists the same address for every service. */
export type ClusterAddresses = Readonly<Record<string, Readonly<Record<string, readonly UpstreamServer[]>>>>;

/** What the target is told about the listener and clients. */
export interface ExportSettings {
  /** The address the data plane listens on, `host:port` (default `127.0.0.1:8080`). */
  readonly listen: string;
  /**
   * Client country: from this request header when set (an edge in front sets it), else from the source
   * address through {@link ExportSettings.countryNets}.
   */
  readonly countryHeader: string | null;
  /** CIDR → country code, for the source-address lookup (tests map 127.x.y.z to countries). */
  readonly countryNets: Readonly<Record<string, string>>;
  /** DNS: the zone the services' names are in (`<service>.<zone>`), where the server listens, and its run/state directory (null: the package's defaults). */
  readonly dnsZone: string;
  readonly dnsListen: string;
  readonly dnsRunDir: string | null;
  /** Where HAProxy serves its built-in Prometheus exporter (`host:port`, path /metrics), or null for none. */
  readonly metricsListen: string | null;
  /** HAProxy's runtime API socket (a UNIX path, or `ipv4@host:port`). */
  readonly runtimeApi: string;
  /** Active health check interval, ms (default 2000). */
  readonly checkIntervalMs: number;
  /** How long a check waits for its answer once connected, ms (HAProxy's `timeout check`; null: the interval). */
  readonly checkTimeoutMs: number | null;
  /** The check interval while a server is going down or up, ms (HAProxy's `fastinter`; null: the interval). */
  readonly fastInterMs: number | null;
  /** Consecutive failed checks before a server is down (default 3). */
  readonly fall: number;
  /** Consecutive passed checks before it is up again (default 2). */
  readonly rise: number;
  /** Consecutive 5xx answers before a server is ejected (passive ejection; default 5). */
  readonly errorLimit: number;
}

/** The default settings, overridable one by one. */
export const DEFAULT_SETTINGS: ExportSettings = {
  listen: '127.0.0.1:8080',
  countryHeader: 'x-client-country',
  countryNets: {},
  dnsZone: 'meridian.test',
  dnsListen: '127.0.0.1:53',
  dnsRunDir: null,
  metricsListen: '127.0.0.1:8405',
  runtimeApi: '/run/haproxy/meridian.sock',
  checkIntervalMs: 2000,
  checkTimeoutMs: null,
  fastInterMs: null,
  fall: 3,
  rise: 2,
  errorLimit: 5,
};

/** Everything an exporter reads. */
export interface ExportInput {
  readonly projection: RoutingProjection;
  /**
   * For rows under a `prefer` rule: the levels outside the allowed set, in the order a widened row uses
   * them (service → client region → levels). A data plane falls back to them only when no allowed
   * cluster can serve.
   */
  readonly widened: Readonly<Record<string, Readonly<Record<string, readonly ProjectedLevel[]>>>>;
  /** The revision the projection was built from (hosts and path prefixes of services, health paths). */
  readonly revision: Revision;
  readonly addresses: ClusterAddresses;
  readonly settings: ExportSettings;
  /**
   * Clusters ramping back after a restore (docs/recovery.md, "The restore ramp"), sorted; empty when
   * nothing ramps. The projection's shares already hold the ramp: a target that shares traffic by live
   * health instead (HAProxy's priority load) fixes the shares of the rows these clusters are in.
   */
  readonly ramping: readonly string[];
}

/** One rule of the model a target cannot express. */
export interface LossFinding {
  /** Stable code from the loss catalogue (docs/export.md). */
  readonly code: LossCode;
  readonly target: string;
  /** Where in the model: the service (and client region) it concerns, or null for the whole fleet. */
  readonly service: string | null;
  readonly client?: string;
  /** The model's value, in words or numbers. */
  readonly model: string;
  /** What was exported instead. */
  readonly exported: string;
  /** What a user of the data plane will notice. */
  readonly effect: string;
  /** `fail-open`: under some failure the target serves what the model would refuse (residency). */
  readonly severity: 'info' | 'approximation' | 'fail-open';
}

/** What an exporter returns: files by relative path, and the loss report. */
export interface ExportResult {
  readonly files: Readonly<Record<string, string>>;
  readonly loss: readonly LossFinding[];
}

/** A data-plane exporter. */
export interface Exporter {
  /** The target's name, as in `meridian export <target>`. */
  readonly target: string;
  /** One line for `--help`. */
  readonly description: string;
  /** A command that checks the written files with the target's own tool, `{dir}` standing for the output directory. */
  readonly check?: readonly string[];
  /** Pure: the same input gives the same files and report. */
  export(input: ExportInput): ExportResult;
}
