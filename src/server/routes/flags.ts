/** The API's flags: every flag's state in every region, and setting one in a region (audited). */
import { flagState } from '../../flags/flag-state.js';
import { unknownFlag, unknownRegion } from '../../flags/errors.js';
import type { RouteSpec } from '../route.js';
import * as S from '../schemas.js';
import { flagDefinitions, fleetRevision, route, type RouteDeps } from './kit.js';

/** The flag routes. */
export function flagRoutes(d: RouteDeps): RouteSpec[] {
  const { store, state } = d;
  return [
    route({
      method: 'GET',
      path: '/api/v1/flags',
      operationId: 'listFlags',
      summary: 'Every flag and its state in every region (operator setting, else the fleet file, else the default)',
      tag: 'flags',
      permission: 'read',
      response: { kind: 'json', schema: S.Flag.array() },
      errors: [503],
      handle: async () => {
        const rev = fleetRevision(state);
        const st = flagState(flagDefinitions(rev), await store.listFlagSettings(rev.fleet));
        return Object.values(st.flags);
      },
    }),
    route<{ enabled: boolean; percent: number; reason?: string | undefined }>({
      method: 'PUT',
      path: '/api/v1/flags/{name}/regions/{region}',
      operationId: 'setFlag',
      summary: 'Set a flag in a region (enabled, and the percentage of users)',
      tag: 'flags',
      permission: 'flag',
      action: 'set a flag',
      body: S.FlagBody,
      response: { kind: 'json', schema: S.Flag },
      errors: [404, 503],
      handle: async ({ params, body, actor }) => {
        const rev = fleetRevision(state);
        const name = params['name'] ?? '';
        const region = params['region'] ?? '';
        const defs = flagDefinitions(rev);
        if (!Object.hasOwn(rev.flags, name)) throw unknownFlag(name, rev.fleet, Object.keys(rev.flags));
        if (!Object.hasOwn(rev.regions, region)) throw unknownRegion(region, rev.fleet, Object.keys(rev.regions));
        const before = flagState(defs, await store.listFlagSettings(rev.fleet)).flags[name]?.regions[region];
        await store.setFlag(
          {
            fleet: rev.fleet,
            flag: name,
            region,
            enabled: body.enabled,
            percent: body.percent,
            was: before ? { enabled: before.enabled, percent: before.percent, source: before.source } : null,
          },
          actor,
          body.reason,
        );
        await state.pollStore();
        return flagState(defs, await store.listFlagSettings(rev.fleet)).flags[name];
      },
    }),
  ];
}
