/**
 * What a fleet's data plane offers a rollout beside its drivers: the canary weights on every router, and
 * the revision the routers route by. The rollout engine sees it as a port (src/rollout/ports.ts).
 */
import type { Revision } from '../render/render.js';

/** Sets the share of a service's traffic in a cluster that goes to its canary, on every router. Both idempotent. */
export interface CanaryWeights {
  /** `weight` percent (0..100) of users get `version` (the canary track). */
  setCanary(service: string, cluster: string, weight: number, version: string): Promise<void>;
  /** No canary: all traffic to the stable track. */
  clear(service: string, cluster: string): Promise<void>;
  /**
   * Routes with this revision's policies and clusters from now on (after a promotion, or a rollback to
   * it). Idempotent. Optional: a data plane configured elsewhere may have nothing to do.
   */
  setRevision?(revision: Revision): Promise<void>;
}
