/** What a router process is given (its settings, or what it needs to follow the control plane), and the handle it hands back when it runs. */
import type { HttpLimits } from '../http-limits.js';
import type { Router, RouterOptions } from './router.js';

/** The router's own settings, shared by every way of starting one; plain data, passed to workers as JSON. */
export interface RouterSettings {
  /** Path to a .mmdb country database, or null for no GeoIP; default the bundled one. */
  readonly geoip?: string | null;
  readonly healthChecks?: boolean;
  readonly traceparent?: 'generate' | 'pass';
  /** Timeouts and connection cap of every listener (src/http-limits.ts). */
  readonly limits?: Partial<HttpLimits>;
  /** Trusted sources of services whose routing names none (default: none). */
  readonly trustedSources?: readonly string[];
  /** Who may use `/_meridian/*` on the traffic port (default: nobody) and the admin port (default: loopback). */
  readonly adminSources?: readonly string[];
}

/** The {@link Router} options that {@link RouterSettings} set. */
export function routerOptionsOf(settings: RouterSettings): Omit<RouterOptions, 'revision' | 'endpoints' | 'state'> {
  return {
    ...(settings.geoip !== undefined ? { geoip: settings.geoip } : {}),
    ...(settings.healthChecks !== undefined ? { healthChecks: settings.healthChecks } : {}),
    ...(settings.traceparent ? { traceparent: settings.traceparent } : {}),
    ...(settings.limits ? { limits: settings.limits } : {}),
    ...(settings.trustedSources ? { trustedSources: settings.trustedSources } : {}),
    ...(settings.adminSources ? { adminSources: settings.adminSources } : {}),
  };
}

/** The {@link RouterSettings} of a larger configuration, and nothing else (a worker gets no server token). */
export function routerSettingsOf(config: RouterSettings): RouterSettings {
  const out: Record<string, unknown> = {};
  for (const k of ['geoip', 'healthChecks', 'traceparent', 'limits', 'trustedSources', 'adminSources'] as const)
    if (config[k] !== undefined) out[k] = config[k];
  return out as RouterSettings;
}

/** A router that follows the control plane (`meridian router --server URL`) instead of a fleet and an endpoints file. */
export interface FollowingConfig extends RouterSettings {
  readonly server: string;
  readonly token: string;
  readonly port: number;
  readonly host: string;
  readonly adminPort?: number;
  /**
   * Worker processes; 1 (default) runs the router in this process. With more, this process follows the
   * server once and relays each table to the workers (src/router/table-relay.ts).
   */
  readonly workers?: number;
}

/** A running router process (one, or the primary of several workers). */
export interface RunningRouter {
  /** The traffic port. */
  readonly port: number;
  readonly adminPort: number | null;
  /** The router (single process only). */
  readonly router: Router | null;
  /** Re-reads the endpoints file (also on SIGHUP). */
  reload(): void;
  close(): Promise<void>;
}
