/**
 * The server's line to the running fleet: what each cluster runs and its health, the endpoints the
 * routers send to, and the fleet router's counters. Either the local fleet's control API over HTTP
 * (`meridian serve --control URL`, a {@link RemoteTarget}) or, inside `meridian up`, the driver and
 * router of the same process.
 */
import type { Router } from '../router/router.js';
import { RemoteTarget } from '../targets/remote-target.js';
import type { ClusterStatus, Endpoint, Target, TargetEvent } from '../targets/target.js';

export interface FleetLink {
  /** Where it leads, for messages. */
  readonly describe: string;
  status(cluster: string): Promise<ClusterStatus>;
  endpoints(cluster: string): Promise<readonly Endpoint[]>;
  /** The fleet router's Prometheus text, or null when it has none. */
  routerMetrics(): Promise<string | null>;
  /** Tells the fleet's own router about a drain, when that router can be reached. */
  setDrained(names: readonly string[], drained: boolean): Promise<void>;
  subscribe(listener: (e: TargetEvent) => void): () => void;
  close(): Promise<void>;
}

/** A link over the local fleet's control API (src/targets/local/control-api.ts). */
export function remoteLink(url: string, token: string): FleetLink {
  const t = new RemoteTarget({ url, token, timeoutMs: 5000 });
  return {
    describe: `the control API at ${url}`,
    status: (c) => t.status(c),
    endpoints: (c) => t.refreshEndpoints(c),
    routerMetrics: async () => {
      try {
        return await t.routerMetrics();
      } catch {
        return null;
      }
    },
    // the control API has no drain call: routers that follow this server get drains from its event stream
    setDrained: () => Promise.resolve(),
    subscribe: (l) => t.subscribe(l),
    close: () => t.close(),
  };
}

/** A link to a driver and router in this process (`meridian up`). */
export function localLink(
  target: Pick<Target, 'status' | 'endpoints' | 'subscribe'>,
  router: Pick<Router, 'setDrained' | 'flush' | 'metricsText'>,
): FleetLink {
  return {
    describe: 'the local fleet in this process',
    status: (c) => target.status(c),
    endpoints: (c) => Promise.resolve(target.endpoints(c)),
    routerMetrics: () => router.metricsText(),
    setDrained: (names, drained) => {
      router.setDrained(names, drained);
      router.flush(true);
      return Promise.resolve();
    },
    subscribe: (l) => target.subscribe(l),
    close: () => Promise.resolve(),
  };
}
