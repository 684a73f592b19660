/**
 * What every route module of the control-plane API shares: the handlers' dependencies and the helpers
 * that find what a request names (the revision in force, a rollout, a query parameter).
 */
import type { Registry } from 'prom-client';
import type { FlagDefinitions } from '../../flags/flag-state.js';
import type { Revision } from '../../render/render.js';
import type { RolloutRecord, Store } from '../../store/store.js';
import { ApiError } from '../api-error.js';
import type { ControlState } from '../control-state.js';
import type { EventHub } from '../event-hub.js';
import type { RouteSpec } from '../route.js';

/** What the handlers work with. */
export interface RouteDeps {
  readonly store: Store;
  readonly state: ControlState;
  readonly hub: EventHub;
  readonly registry: Registry;
  readonly version: string;
  /** The OpenAPI document (built from this same table). */
  readonly openapi: () => unknown;
}

/** A route with a typed body, as it goes into the table. */
export function route<B>(spec: RouteSpec<B>): RouteSpec {
  return spec as unknown as RouteSpec;
}

/** The revision in force; 503 MERIDIAN_E_API_UNAVAILABLE while the control plane knows none. */
export function fleetRevision(state: ControlState): Revision {
  const rev = state.revision;
  if (!rev) {
    throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', 'the control plane knows no fleet yet', {
      hint: 'start it with the fleet directory (`meridian serve examples/shop`), or record a revision with `meridian plan`',
    });
  }
  return rev;
}

/** The rollout `id`; 404 MERIDIAN_E_API_NOT_FOUND when there is none. */
export async function rolloutOf(store: Store, id: string): Promise<RolloutRecord> {
  const r = await store.getRollout(id);
  if (!r) {
    throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no rollout ${id}`, { hint: 'list them with GET /api/v1/rollouts' });
  }
  return r;
}

/** A whole-number query parameter from 1 to `max` (`dflt` when absent); 422 MERIDIAN_E_API_INVALID otherwise. */
export function intParam(url: URL, name: string, dflt: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new ApiError(
      'MERIDIAN_E_API_INVALID',
      `the query parameter ${name} must be a whole number from 1 to ${max}, not ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** The flag definitions of a revision, as src/flags wants them. */
export function flagDefinitions(rev: Revision): FlagDefinitions {
  return { fleet: rev.fleet, regions: rev.regions, flags: rev.flags };
}
