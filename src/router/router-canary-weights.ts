/** Traffic control through a {@link Router} in this process (what `meridian up` and the tests use). */
import type { Revision } from '../render/render.js';
import type { Router } from './router.js';
import type { CanaryWeights } from '../targets/canary-weights.js';

/** Sets canary weights on a router; the table is rebuilt at once so that the weight is in force on return. */
export class RouterCanaryWeights implements CanaryWeights {
  constructor(private readonly router: Pick<Router, 'setCanary' | 'flush' | 'setRevision'>) {}

  setCanary(service: string, cluster: string, weight: number, version: string): Promise<void> {
    this.router.setCanary(service, cluster, { weight, version });
    this.router.flush();
    return Promise.resolve();
  }

  setRevision(revision: Revision): Promise<void> {
    this.router.setRevision(revision);
    return Promise.resolve();
  }

  clear(service: string, cluster: string): Promise<void> {
    this.router.setCanary(service, cluster, null);
    this.router.flush();
    return Promise.resolve();
  }
}
