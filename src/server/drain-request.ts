/**
 * A drain or undrain asked of the control plane (`POST /api/v1/drains`): what it must name to be carried
 * out, and the error when the fleet's own router did not take it. Pure.
 */
import type { Revision } from '../render/render.js';
import { ApiError } from './api-error.js';
import type { FleetLink } from './fleet-link.js';

/**
 * The revision in force, when `name` is a `kind` of it and every jurisdiction in `declaredDown` is one of
 * its own; else a 404 or 422 naming what the fleet has.
 */
export function checkDrainRequest(
  rev: Revision | null,
  kind: 'cluster' | 'region',
  name: string,
  declaredDown: readonly string[],
): Revision {
  const known = rev !== null && Object.hasOwn(kind === 'cluster' ? rev.clusters : rev.regions, name);
  if (!rev || !known) {
    const names = Object.keys((kind === 'cluster' ? rev?.clusters : rev?.regions) ?? {});
    throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no ${kind} ${name} in the fleet`, {
      hint: names.length ? `the ${kind}s are: ${names.join(', ')}` : 'the control plane knows no fleet yet',
    });
  }
  const jurisdictions = [...new Set(Object.values(rev.regions).map((r) => r.jurisdiction))].sort();
  const unknown = declaredDown.filter((j) => !jurisdictions.includes(j));
  if (unknown.length > 0) {
    throw new ApiError('MERIDIAN_E_API_INVALID', `declareDown names no jurisdiction of the fleet: ${unknown.join(', ')}`, {
      hint: `its jurisdictions are: ${jurisdictions.join(', ')}`,
    });
  }
  return rev;
}

/** A drain recorded and followed by routers, but not taken by the fleet's own router. */
export function fleetRouterFailed(
  link: Pick<FleetLink, 'describe'>,
  what: { readonly kind: 'cluster' | 'region'; readonly name: string; readonly drained: boolean },
  failure: unknown,
): ApiError {
  const which = `${what.drained ? 'the drain' : 'the undrain'} of ${what.kind} ${what.name}`;
  return new ApiError(
    'MERIDIAN_E_API_FLEET_ROUTER',
    `${which} is recorded and routers that follow this server apply it, but the fleet's own router did not: ` +
      `${link.describe} failed (${(failure as Error).message})`,
    {
      cause: failure,
      hint:
        'the server sends it again whenever it reaches the control API (it looks every few seconds); check that ' +
        '`meridian up` runs and that --control and MERIDIAN_CONTROL_TOKEN match its .meridian/up.json, or repeat the call',
    },
  );
}
