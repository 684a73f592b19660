/**
 * The server's line to the running fleet: what each cluster runs and its health, the endpoints the
 * routers send to, and the fleet router's counters. Either the local fleet's control API over HTTP
 * (`meridian serve --control URL`, a {@link RemoteTarget}) or, inside `meridian up`, the driver and
 * router of the same process.
 */
import type { Router } from '../router/router.js';
import { RemoteTarget } from '../targets/remote-target.js';
import type { ClusterStatus, Endpoint, Target, TargetEvent } from '../targets/target.js';

/** A drain as the fleet's router is told it. */
export interface FleetDrain {
  readonly kind: 'cluster' | 'region';
  readonly name: string;
  readonly reason?: string | undefined;
}

export interface FleetLink {
  /** Where it leads, for messages. */
  readonly describe: string;
  status(cluster: string): Promise<ClusterStatus>;
  endpoints(cluster: string): Promise<readonly Endpoint[]>;
  /** The fleet router's Prometheus text, or null when it has none. */
  routerMetrics(): Promise<string | null>;
  /**
   * Tells the fleet's own router about a drain (or undrain); in force on return. Rejects when the router
   * cannot be told (its control API does not answer, or refuses).
   */
  setDrained(names: readonly string[], drained: boolean, how?: { kind: 'cluster' | 'region'; reason?: string | undefined }): Promise<void>;
  /**
   * Brings the fleet's own router to exactly these drains: the ones it lacks are sent, the ones told
   * earlier and lifted since are undrained. Called at start and on every look at the fleet, so that a
   * restarted fleet or server converges. Absent: {@link setDrained} of every drain at start only.
   */
  syncDrained?(drains: readonly FleetDrain[]): Promise<void>;
  /**
   * Tells the fleet's own router the restore ramps in force (place → percent of its full traffic), all of
   * them: places not listed take their full share. In force on return. Absent: the router has no ramps.
   */
  syncRamps?(ramp: Readonly<Record<string, number>>): Promise<void>;
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
    setDrained: async (names, drained, how) => {
      for (const name of names) await t.drain({ kind: how?.kind ?? 'cluster', name, drained, reason: how?.reason });
    },
    // the router's drains, as told through the control API (all of them: a fresh `meridian up` has none)
    syncDrained: async (drains) => {
      const told = await t.drains();
      const want = new Map(drains.map((d) => [d.name, d]));
      for (const d of drains) {
        if (!told.some((x) => x.name === d.name)) await t.drain({ kind: d.kind, name: d.name, drained: true, reason: d.reason });
      }
      for (const x of told) if (!want.has(x.name)) await t.drain({ kind: x.kind, name: x.name, drained: false });
    },
    syncRamps: async (ramp) => {
      const told = await t.ramps();
      if (JSON.stringify(told) !== JSON.stringify(sorted(ramp))) await t.ramp(ramp);
    },
    subscribe: (l) => t.subscribe(l),
    close: () => t.close(),
  };
}

/** A link to a driver and router in this process (`meridian up`). */
export function localLink(
  target: Pick<Target, 'status' | 'endpoints' | 'subscribe'>,
  router: Pick<Router, 'setDrained' | 'flush' | 'metricsText'> & {
    /** The router's, or a data plane's that answers once the ramp is in force (HAProxy's reload). */
    setRamp?(ramp: Readonly<Record<string, number>>): void | Promise<void>;
  },
): FleetLink {
  /** What this link has drained in the router (it starts with none). */
  const applied = new Set<string>();
  let ramped = '{}';
  const setDrained = (names: readonly string[], drained: boolean): void => {
    router.setDrained(names, drained);
    router.flush(true);
    for (const n of names) {
      if (drained) applied.add(n);
      else applied.delete(n);
    }
  };
  return {
    describe: 'the local fleet in this process',
    status: (c) => target.status(c),
    endpoints: (c) => Promise.resolve(target.endpoints(c)),
    routerMetrics: () => router.metricsText(),
    setDrained: (names, drained) => {
      setDrained(names, drained);
      return Promise.resolve();
    },
    syncDrained: (drains) => {
      const want = new Set(drains.map((d) => d.name));
      const add = [...want].filter((n) => !applied.has(n));
      const lift = [...applied].filter((n) => !want.has(n));
      if (add.length > 0) setDrained(add, true);
      if (lift.length > 0) setDrained(lift, false);
      return Promise.resolve();
    },
    syncRamps: async (ramp) => {
      const key = JSON.stringify(sorted(ramp));
      if (key !== ramped && router.setRamp) {
        await router.setRamp(ramp);
        router.flush(true);
        ramped = key;
      }
    },
    subscribe: (l) => target.subscribe(l),
    close: () => Promise.resolve(),
  };
}

/** A ramp map with its keys in order (to compare two). */
function sorted(ramp: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(ramp).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
