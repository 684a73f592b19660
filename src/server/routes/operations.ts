/** The API's operations routes: Prometheus metrics, the OpenAPI document, liveness. */
import type { RouteSpec } from '../route.js';
import * as S from '../schemas.js';
import { route, type RouteDeps } from './kit.js';

/** The operations routes. */
export function operationRoutes(d: RouteDeps): RouteSpec[] {
  return [
    route({
      method: 'GET',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics of the control plane (API requests, event subscribers, rollouts, deployments, gate verdicts)',
      tag: 'operations',
      permission: 'read',
      response: { kind: 'text', contentType: 'text/plain; version=0.0.4; charset=utf-8' },
      handle: () => d.registry.metrics(),
    }),
    route({
      method: 'GET',
      path: '/api/v1/openapi.json',
      operationId: 'openapi',
      summary: 'This document',
      tag: 'operations',
      permission: null,
      response: { kind: 'json', schema: S.OpenApiDoc },
      handle: () => Promise.resolve(d.openapi()),
    }),
    route({
      method: 'GET',
      path: '/healthz',
      operationId: 'healthz',
      summary: 'Liveness of the control plane',
      tag: 'operations',
      permission: null,
      response: { kind: 'json', schema: S.Health },
      handle: () => Promise.resolve({ ok: true, version: d.version }),
    }),
  ];
}
