/** What a router process is given to follow the control plane, and the handle it hands back when it runs. */
import type { Router } from './router.js';

/** A router that follows the control plane (`meridian router --server URL`) instead of a fleet and an endpoints file. */
export interface FollowingConfig {
  readonly server: string;
  readonly token: string;
  readonly port: number;
  readonly host: string;
  readonly adminPort?: number;
  readonly geoip?: string | null;
  readonly healthChecks?: boolean;
  readonly traceparent?: 'generate' | 'pass';
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
