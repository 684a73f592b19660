/** Registers every command. One file per command; each is thin. */
import type { Command } from 'commander';
import type { Io } from '../io.js';
import { registerApprove } from './approve.js';
import { registerAudit } from './audit.js';
import { registerFlag } from './flag.js';
import { registerExport } from './export.js';
import { registerPlan } from './plan.js';
import { registerRender } from './render.js';
import { registerRollback } from './rollback.js';
import { registerRollout } from './rollout.js';
import { registerRouter } from './router.js';
import { registerRoute } from './route.js';
import { registerSchema } from './schema.js';
import { registerServe } from './serve.js';
import { registerToken } from './token.js';
import { registerTraffic } from './traffic.js';
import { registerUp } from './up.js';
import { registerValidate } from './validate.js';

/** Where a command leaves its exit code. */
export interface Result {
  code: number;
}

export function registerCommands(program: Command, io: Io, result: Result): void {
  registerSchema(program, io, result);
  registerRender(program, io, result);
  registerValidate(program, io, result);
  registerPlan(program, io, result);
  registerAudit(program, io, result);
  registerRoute(program, io, result);
  registerTraffic(program, io, result);
  registerUp(program, io, result);
  registerRouter(program, io, result);
  registerRollout(program, io, result);
  registerApprove(program, io, result);
  registerRollback(program, io, result);
  registerServe(program, io, result);
  registerToken(program, io, result);
  registerFlag(program, io, result);
  registerExport(program, io, result);
}
