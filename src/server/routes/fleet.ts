/**
 * The API's fleet and routing: the fleet in force, recorded revisions, clusters, the routing view and live
 * traffic; and drains of a cluster or region (checked against the fleet's safety rules first).
 */
import { ApiError } from '../api-error.js';
import type { RouteSpec } from '../route.js';
import * as S from '../schemas.js';
import { fleetRevision, route, type RouteDeps } from './kit.js';

/** The fleet, revision, cluster, routing and traffic routes. */
export function fleetRoutes(d: RouteDeps): RouteSpec[] {
  const { store, state } = d;
  return [
    route({
      method: 'GET',
      path: '/api/v1/fleet',
      operationId: 'getFleet',
      summary: 'The fleet in force: regions with their clusters, and services',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.Fleet },
      errors: [503],
      handle: () => {
        const rev = fleetRevision(state);
        const services = new Set<string>();
        for (const c of Object.values(rev.clusters)) for (const s of Object.keys(c.services)) services.add(s);
        return Promise.resolve({
          name: rev.fleet,
          revision: rev.id,
          regions: Object.entries(rev.regions).map(([name, r]) => ({
            name,
            jurisdiction: r.jurisdiction,
            location: { lat: r.location.lat, lon: r.location.lon },
            countries: [...r.countries],
            clusters: Object.entries(rev.clusters)
              .filter(([, c]) => c.region === name)
              .map(([c]) => c),
          })),
          clusters: Object.entries(rev.clusters).map(([name, c]) => ({
            name,
            region: c.region,
            labels: { ...c.labels },
            capacityRps: c.capacity.rps,
          })),
          services: [...services].sort(),
        });
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/revisions',
      operationId: 'listRevisions',
      summary: 'Recorded revisions, newest first',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.RevisionSummary.array() },
      handle: async () => {
        const inForce = state.revision?.id ?? null;
        return (await store.listRevisions()).reverse().map((r) => ({ ...r, inForce: r.id === inForce }));
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/revisions/{id}',
      operationId: 'getRevision',
      summary: 'One revision, whole (what a router following the server loads)',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.RevisionContent },
      errors: [404],
      handle: async ({ params }) => {
        const rev = await state.revisionById(params['id'] ?? '');
        if (!rev)
          throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no revision ${params['id'] ?? ''}`, {
            hint: 'list them with GET /api/v1/revisions',
          });
        return rev;
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/clusters',
      operationId: 'listClusters',
      summary: 'Every cluster: what runs there (per service and track), its health, and whether it is drained',
      tag: 'fleet',
      permission: 'read',
      response: { kind: 'json', schema: S.Cluster.array() },
      handle: () => Promise.resolve(state.clusters),
    }),
    route({
      method: 'GET',
      path: '/api/v1/routing',
      operationId: 'getRouting',
      summary: 'The routing view: shares of each client region per cluster and version, drains, canaries, flags and endpoints',
      tag: 'routing',
      permission: 'read',
      response: { kind: 'json', schema: S.Routing },
      handle: () => Promise.resolve(state.routing),
    }),
    route({
      method: 'GET',
      path: '/api/v1/traffic',
      operationId: 'getTraffic',
      summary: "Live traffic from the fleet router's counters: rate, error rate and p99 per client region, cluster and version",
      tag: 'routing',
      permission: 'read',
      response: { kind: 'json', schema: S.Traffic },
      handle: () => Promise.resolve(state.traffic),
    }),
  ];
}

/** Draining (or undraining) a cluster or a region. */
export function drainRoutes(d: RouteDeps): RouteSpec[] {
  const { state } = d;
  const drain = (kind: 'cluster' | 'region') =>
    route<{ drained: boolean; reason?: string | undefined; declareDown?: string[] | undefined }>({
      method: 'POST',
      path: `/api/v1/${kind === 'cluster' ? 'clusters' : 'regions'}/{name}/drain`,
      operationId: `drain${kind === 'cluster' ? 'Cluster' : 'Region'}`,
      summary: `Drain (or undrain) a ${kind}: it takes no new traffic; every router that follows the server applies it, and the fleet's own router (502 when it cannot be told). A drain is an evacuation: the fleet's safety rules are checked first (409 with each rule's numbers when it breaks one)`,
      tag: 'routing',
      permission: 'drain',
      action: `drain a ${kind}`,
      body: S.DrainBody,
      response: { kind: 'json', schema: S.DrainResult },
      errors: [404, 409, 502],
      handle: async ({ params, body, actor }) => {
        const name = params['name'] ?? '';
        const view = await state.drain(kind, name, body.drained, actor, body.reason, { declaredDown: body.declareDown });
        return { name, kind, drained: body.drained, tableVersion: view.tableVersion };
      },
    });

  return [drain('cluster'), drain('region')];
}
