/**
 * A saved plan for `meridian rollout --plan FILE`: read and checked, with the fleet it belongs to — the
 * one named on the command line, or else the one the plan was made from (its `source`).
 */
import { readFileSync } from 'node:fs';
import { PlanError, UsageError } from '../errors.js';
import { type Plan, verifyPlan } from '../plan/plan.js';
import { fleetSource } from '../spec/fleet-source.js';

/**
 * Reads the plan in `file` (its shape and hash checked) and picks its fleet: `dir` when given, else the
 * plan's own `source.path`, else the current directory. When the plan records its source, the fleet's
 * files must hash as they did when it was made (MERIDIAN_E_PLAN_MISMATCH names both).
 */
export function readSavedPlan(file: string, dir: string | undefined): { plan: Plan; dir: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the plan ${file}: ${(err as Error).message}`, 'pass the file that `meridian plan --out FILE` wrote');
  }
  const plan = verifyPlan(raw);
  const fleetDir = dir ?? plan.source?.path ?? '.';
  if (plan.source) {
    const now = fleetSource(fleetDir);
    if (now.contentHash !== plan.source.contentHash) {
      throw new PlanError(
        'MERIDIAN_E_PLAN_MISMATCH',
        `the plan ${file} was made from the fleet at ${plan.source.path} (files ${plan.source.contentHash.slice(0, 12)}), ` +
          `but the fleet at ${now.path} holds other files (${now.contentHash.slice(0, 12)})`,
        'roll out with the fleet the plan was made from, or make the plan again with `meridian plan FLEET --out FILE`',
      );
    }
  }
  return { plan, dir: fleetDir };
}
