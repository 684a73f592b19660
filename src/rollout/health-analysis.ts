/**
 * The analysis used until the real judge (src/rollout/analysis/) is wired in: a step passes when every
 * canary of the batch reports the new revision healthy, and fails when one does not. It never says
 * anything about error rates or latency; its verdict says so.
 */
import { isHealthyAt } from '../targets/target.js';
import type { Analysis, ClusterDriver, StepContext, StepVerdictLike } from './ports.js';

export class HealthAnalysis implements Analysis {
  constructor(private readonly driver: Pick<ClusterDriver, 'status'>) {}

  async judge(ctx: StepContext): Promise<StepVerdictLike> {
    const metrics: { name: string; cluster: string; service: string; healthy: boolean; readyReplicas: number; desiredReplicas: number }[] =
      [];
    for (const c of ctx.clusters) {
      const status = await this.driver.status(c.cluster);
      for (const svc of c.services) {
        const t = status.services[svc]?.canary;
        metrics.push({
          name: 'canary-health',
          cluster: c.cluster,
          service: svc,
          healthy: isHealthyAt(status, svc, 'canary', c.toRevision),
          readyReplicas: t?.readyReplicas ?? 0,
          desiredReplicas: t?.desiredReplicas ?? 0,
        });
      }
    }
    const bad = metrics.filter((m) => !m.healthy);
    if (bad.length > 0) {
      return {
        outcome: 'fail',
        metrics,
        reason: `canary unhealthy: ${bad.map((m) => `${m.cluster}/${m.service} ${m.readyReplicas}/${m.desiredReplicas} ready`).join(', ')}`,
      };
    }
    return {
      outcome: 'pass',
      metrics,
      reason: 'health only: every canary reports the new revision healthy (no metric analysis configured)',
    };
  }
}
