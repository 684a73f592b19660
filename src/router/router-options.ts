/** What a {@link Router} is made with, and the shapes it reports. See docs/router.md. */
import type { Registry } from 'prom-client';
import type { HttpLimits } from '../http-limits.js';
import type { Revision } from '../render/render.js';
import type { RoutingState } from '../routing/index.js';
import type { RequestTracer } from '../telemetry/request-tracing.js';
import type { Probe } from './active-health-checker.js';
import type { RouterClock } from './clock.js';
import type { EndpointSource } from './endpoints.js';
import type { GeoIp } from './geoip.js';
import type { PoolOptions } from './upstream.js';

export type LogLevel = 'info' | 'warn' | 'error';
export type RouterLog = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export interface RouterOptions {
  readonly revision: Revision;
  readonly endpoints: EndpointSource;
  /** The control plane's initial view: drained, canary weights, flags, latency, health, ejected. */
  readonly state?: Partial<RoutingState>;
  readonly clock?: RouterClock;
  /** A GeoIP instance, a path to a .mmdb country database, or null for none (default: the bundled database). */
  readonly geoip?: GeoIp | string | null;
  readonly log?: RouterLog;
  /** Minimum time between two table rebuilds, ms (default 50). */
  readonly rebuildIntervalMs?: number;
  /** Admin path prefix on the traffic port, or null for none (default `/_meridian`). */
  readonly adminPrefix?: string | null;
  /**
   * Who may use the admin endpoints. Without it, the admin prefix on the traffic port is an ordinary path
   * (a TLS terminator on the same host would otherwise make every client an admin), and the admin port of
   * `Router.listenAdmin` answers loopback only.
   */
  readonly adminSources?: readonly string[];
  /**
   * Clients whose country header, `x-meridian-cluster` pin, `X-Forwarded-For` and `X-Forwarded-Proto` are
   * believed, for services whose routing names no `trustedSources` (default: none).
   */
  readonly trustedSources?: readonly string[];
  /** Run active health checks (default true). */
  readonly healthChecks?: boolean;
  /** Replaces the HTTP/TCP health probe (tests). */
  readonly probe?: Probe;
  readonly pool?: PoolOptions;
  /** Request bodies up to this many bytes (with a Content-Length) are buffered so they can be retried (default 64 KiB). */
  readonly maxBufferedBodyBytes?: number;
  /** `generate` (default): requests without a valid W3C `traceparent` get one; `pass`: forward as received. */
  readonly traceparent?: 'generate' | 'pass';
  /** Spans for requests (see src/telemetry/request-tracing.ts); none by default. */
  readonly tracer?: RequestTracer;
  /** Registry for the metrics (default: a new one). */
  readonly registry?: Registry;
  /** On close, requests in flight get this long to finish before their connections are cut, ms (default 10000). */
  readonly closeGraceMs?: number;
  /** Timeouts and the connection cap of every port the router listens on (defaults: `DEFAULT_HTTP_LIMITS`, src/http-limits.ts). */
  readonly limits?: Partial<HttpLimits>;
}

/** A canary of one service on one cluster. */
export interface CanarySetting {
  readonly weight: number;
  readonly version: string;
}

/** One service in `Router.stats`: its table, requests and retries in flight, endpoints per cluster. */
export interface ServiceStats {
  readonly table: string;
  readonly active: number;
  readonly retries: number;
  readonly clusters: Record<string, { endpoints: number; usable: number; detail: unknown[] }>;
}
