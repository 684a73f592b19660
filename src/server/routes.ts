/**
 * The control-plane API: every route, its permission, its request and response shapes and its handler,
 * one module per resource in `routes/`. The server dispatches from this table and the OpenAPI document is
 * built from it, so the two agree.
 */
import type { RouteSpec } from './route.js';
import { activityRoutes } from './routes/activity.js';
import { tokenRoutes, whoamiRoutes } from './routes/auth.js';
import { drainRoutes, fleetRoutes } from './routes/fleet.js';
import { flagRoutes } from './routes/flags.js';
import type { RouteDeps } from './routes/kit.js';
import { operationRoutes } from './routes/operations.js';
import { rolloutRoutes } from './routes/rollouts.js';

export { flagDefinitions, type RouteDeps } from './routes/kit.js';

/** Every route of the API, in the order of the OpenAPI document. */
export function apiRoutes(d: RouteDeps): RouteSpec[] {
  return [
    ...whoamiRoutes(),
    ...fleetRoutes(d),
    ...rolloutRoutes(d),
    ...drainRoutes(d),
    ...flagRoutes(d),
    ...activityRoutes(d),
    ...tokenRoutes(d),
    ...operationRoutes(d),
  ];
}
