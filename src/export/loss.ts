/**
 * The loss catalogue: one stable code per rule of Meridian's routing model that some data plane cannot
 * express. Each exporter reports the codes that apply to what it wrote (docs/export.md lists them with
 * the effect on each target).
 */
import type { ProjectedService } from '../routing/projection.js';
import type { ExportInput, LossFinding } from './contract.js';

/** Every loss code, with the model rule it is about. */
export const LOSS_CODES = {
  MERIDIAN_LOSS_PRIORITY_LOAD: 'fractional spill between priority levels (Envoy priority load, overprovisioning factor)',
  MERIDIAN_LOSS_PANIC: 'panic mode: a level under the panic threshold routes to all its clusters, healthy or not',
  MERIDIAN_LOSS_CAPACITY_CAPS: 'capacity caps on spill-over from declared traffic.rps and capacity.rps',
  MERIDIAN_LOSS_STICKY_CANARY: 'sticky canary: the same user stays on the same version (user bucket)',
  MERIDIAN_LOSS_FLAG_GATE: 'per-user flag gates on a service (routing.<service>.flag)',
  MERIDIAN_LOSS_ACTIVE_HEALTH: 'active health checks',
  MERIDIAN_LOSS_LEVELS: 'more than the target’s number of failover tiers',
  MERIDIAN_LOSS_WIDENING: 'a prefer rule widens to every jurisdiction, in proximity order, when nothing allowed can serve',
  MERIDIAN_LOSS_RETRY_BUDGET: 'retry budget and retries to another level of the same row',
  MERIDIAN_LOSS_LIVE_WEIGHTS: 'weights changed live, without a reload',
  MERIDIAN_LOSS_OUTLIER_DETECTION: 'outlier detection (consecutive 5xx eject, then return after a base time)',
  MERIDIAN_LOSS_LOCALITY_FAILOVER: 'failover in each row’s own level order, never outside its allowed jurisdictions, whatever fails',
  MERIDIAN_LOSS_DRAIN: 'a drained cluster leaves its level: it neither takes traffic nor counts in the level’s health',
  MERIDIAN_LOSS_RESTORE_RAMP: 'a place ramping back after a restore takes its ramp’s share of its traffic, whatever else fails',
} as const;

/** A stable loss code. */
export type LossCode = keyof typeof LOSS_CODES;

/** Sorts a loss report for stable output: by code, service, client. */
export function sortLoss(loss: readonly LossFinding[]): LossFinding[] {
  const key = (f: LossFinding): string => `${f.code}\u0000${f.service ?? ''}\u0000${f.client ?? ''}`;
  return [...loss].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Renders a loss report as text, one finding per paragraph. */
export function formatLoss(target: string, loss: readonly LossFinding[]): string {
  if (loss.length === 0) return `${target}: the export expresses every rule of the routing model\n`;
  const lines = [`${target}: ${loss.length} rule(s) of the routing model are not expressed exactly`];
  for (const f of loss) {
    const where = f.service === null ? 'fleet' : f.client === undefined ? f.service : `${f.service} (clients of ${f.client})`;
    lines.push(`\n${f.code} [${f.severity}] ${where}`, `  model:    ${f.model}`, `  exported: ${f.exported}`, `  effect:   ${f.effect}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The `MERIDIAN_LOSS_CAPACITY_CAPS` finding, when the fleet caps spill-over by capacity (none otherwise). */
export function capacityCapsLoss(
  input: ExportInput,
  target: string,
  text: Pick<LossFinding, 'model' | 'exported' | 'effect'>,
): LossFinding[] {
  if (!input.projection.capacityCaps) return [];
  return [{ code: 'MERIDIAN_LOSS_CAPACITY_CAPS', target, service: null, ...text, severity: 'approximation' }];
}

/** One `MERIDIAN_LOSS_WIDENING` finding per row of a service that widens to at least `min` outside levels. */
export function wideningLoss(
  input: ExportInput,
  target: string,
  service: string,
  text:
    | Pick<LossFinding, 'model' | 'exported' | 'effect' | 'severity'>
    | ((levels: number) => Pick<LossFinding, 'model' | 'exported' | 'effect' | 'severity'>),
  min = 1,
): LossFinding[] {
  return Object.entries(input.widened[service] ?? {})
    .filter(([, levels]) => levels.length >= min)
    .map(([client, levels]) => ({
      code: 'MERIDIAN_LOSS_WIDENING',
      target,
      service,
      client,
      ...(typeof text === 'function' ? text(levels.length) : text),
    }));
}

type LossText = Pick<LossFinding, 'model' | 'exported' | 'effect'>;

/** The `MERIDIAN_LOSS_FLAG_GATE` finding of a flag-gated service (none without a flag): a static data plane routes every user as the main variant. */
export function flagGateLoss(
  target: string,
  service: string,
  sp: Pick<ProjectedService, 'flag'>,
  text: Partial<LossText> = {},
): LossFinding[] {
  if (sp.flag === null) return [];
  return [
    {
      code: 'MERIDIAN_LOSS_FLAG_GATE',
      target,
      service,
      model: `flag ${sp.flag} gates the service per user and region`,
      exported: 'the routing of the flag variant with the most users',
      effect: 'users of the other variants are routed as the main variant is',
      ...text,
      severity: 'approximation',
    },
  ];
}

/** The `MERIDIAN_LOSS_RETRY_BUDGET` finding of a service with retries (none without): the target's own retries, in `text`. */
export function retryBudgetLoss(
  target: string,
  service: string,
  sp: Pick<ProjectedService, 'retries'>,
  text: (retries: NonNullable<ProjectedService['retries']>) => Pick<LossText, 'exported' | 'effect'> & Partial<LossText>,
): LossFinding[] {
  if (sp.retries === null) return [];
  return [
    {
      code: 'MERIDIAN_LOSS_RETRY_BUDGET',
      target,
      service,
      model: `${sp.retries.attempts} retries within a ${Math.round(sp.retries.budget * 100)}% budget`,
      ...text(sp.retries),
      severity: 'approximation',
    },
  ];
}
