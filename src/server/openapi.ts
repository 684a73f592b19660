/** The OpenAPI 3.1 document of the API, built from the same route table the server dispatches from. */
import { z } from 'zod';
import { rolesFor } from './auth/roles.js';
import type { RouteSpec } from './route.js';
import { ErrorBody } from './schemas.js';

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'the request is malformed (bad JSON)',
  401: 'no token, or a token that is refused',
  403: 'the role of the token does not allow this',
  404: 'not found',
  409: 'conflicts with the current state',
  422: 'the request is well-formed but invalid',
  502: "recorded, but the fleet's control API failed to carry it out",
  503: 'the fleet or the store cannot be reached',
};

function schemaOf(s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete out['$schema'];
  return out;
}

/** Builds the document. */
export function openApiDocument(routes: readonly RouteSpec[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const error = { description: '', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  for (const r of routes) {
    const params: Record<string, unknown>[] = [];
    for (const m of r.path.matchAll(/\{(\w+)\}/g)) params.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
    for (const q of r.query ?? [])
      params.push({ name: q.name, in: 'query', required: false, description: q.description, schema: { type: q.type } });
    const responses: Record<string, unknown> = {};
    const res = r.response;
    if (res.kind === 'json') {
      responses[String(res.status ?? 200)] = {
        description: 'OK',
        content: { 'application/json': { schema: schemaOf(res.schema, 'output') } },
      };
    } else if (res.kind === 'text') {
      responses['200'] = {
        description: 'OK',
        content: { [res.contentType.split(';')[0] ?? 'text/plain']: { schema: { type: 'string' } } },
      };
    } else {
      responses['200'] = { description: 'an event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } };
    }
    const codes = new Set<number>(r.errors ?? []);
    if (r.body) {
      codes.add(400);
      codes.add(422);
    }
    if (r.permission !== null) {
      codes.add(401);
      codes.add(403);
    }
    for (const c of [...codes].sort()) responses[String(c)] = { ...error, description: STATUS_TEXT[c] ?? 'error' };
    const op: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.body, 'input') } } } } : {}),
      responses,
      security: r.permission === null ? [] : [{ bearer: [] }],
      ...(r.permission === null ? {} : { 'x-meridian-roles': rolesFor(r.permission), 'x-meridian-permission': r.permission }),
    };
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Meridian control plane',
      version,
      description:
        'The REST API of `meridian serve`: fleet, revisions, clusters, routing, traffic, rollouts and their gates, approvals, flags, audit; an event stream; Prometheus metrics. See docs/server.md.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'an API token (mrd_…) or an OIDC ID token accepted by the configured rules',
        },
      },
      schemas: { Error: schemaOf(ErrorBody, 'output') },
    },
    paths,
  };
}
