/**
 * Signals beside the metrics that hide a canary's failures, judged purely: a canary endpoint taken out of
 * rotation during the step (ejected by outlier detection, failing active health checks, refusing
 * connections) fails the step — its requests went elsewhere, so its error rate looks better than it is;
 * a canary that lost its share of the traffic (failover to the stable track or other clusters) cannot pass.
 */
import { z } from 'zod';
import { binomialLowerTail } from './stats.js';

/** What the router saw of the canary's endpoints over a step's window. */
export const CanarySignals = z.strictObject({
  /** Times a canary endpoint was taken out of rotation in the window, by cluster and cause (`ejected`, `unhealthy`, `unreachable`). */
  takenOut: z.array(z.strictObject({ cluster: z.string(), cause: z.string(), count: z.number() })),
  /**
   * The canary's upstream attempts and all attempts to the service's canary and baseline versions in the
   * wave's clusters, with the canary's weight there (percent); null when there is no baseline to compare with.
   */
  share: z.strictObject({ canary: z.number(), total: z.number(), weight: z.number() }).nullable(),
});
export type CanarySignals = z.output<typeof CanarySignals>;

/** `fail`: the step fails at once; `hold`: the step cannot pass (at its end it is inconclusive); `ok`: nothing hidden. */
export const SignalJudgement = z.strictObject({
  outcome: z.enum(['fail', 'hold', 'ok']),
  reason: z.string(),
  signals: CanarySignals,
});
export type SignalJudgement = z.output<typeof SignalJudgement>;

const CAUSE_TEXT: Readonly<Record<string, string>> = {
  ejected: 'ejected by outlier detection',
  unhealthy: 'failing active health checks',
  unreachable: 'refusing connections',
};

/**
 * Judges the signals. A share is lost when the canary got less than half its weight's share of the
 * attempts, significantly (one-sided exact binomial test at `alpha`), once there are `minSamples` attempts.
 */
export function judgeSignals(s: CanarySignals, opts: { readonly alpha: number; readonly minSamples: number }): SignalJudgement {
  const out = s.takenOut.filter((t) => t.count > 0);
  if (out.length > 0) {
    const what = out.map((t) => `${t.cluster} ${CAUSE_TEXT[t.cause] ?? t.cause} (${t.count}×)`).join(', ');
    return { outcome: 'fail', reason: `canary endpoints taken out of rotation during the step: ${what}`, signals: s };
  }
  const sh = s.share;
  if (sh !== null && sh.weight > 0 && sh.total >= Math.max(1, opts.minSamples)) {
    const expected = Math.min(1, sh.weight / 100);
    const floor = expected / 2;
    const got = sh.canary / sh.total;
    const p = binomialLowerTail(Math.floor(sh.canary), Math.floor(sh.total), floor);
    if (got < floor && p <= opts.alpha) {
      const pct = (x: number) => `${Number((x * 100).toPrecision(3))}%`;
      return {
        outcome: 'hold',
        reason: `the canary lost its share of the traffic: ${sh.canary} of ${sh.total} attempts (${pct(got)}) at weight ${sh.weight}%, below half of it (p=${p.toPrecision(2)} ≤ α ${opts.alpha}); its traffic failed over elsewhere`,
        signals: s,
      };
    }
  }
  return { outcome: 'ok', reason: 'no canary endpoint taken out; the canary kept its share of the traffic', signals: s };
}
