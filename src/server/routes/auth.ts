/** The API's identity and tokens: who a token belongs to and what it may do; listing, creating and revoking API tokens. */
import { ApiError } from '../api-error.js';
import { capabilities } from '../auth/roles.js';
import { newApiToken } from '../auth/tokens.js';
import type { RouteSpec } from '../route.js';
import * as S from '../schemas.js';
import { route, type RouteDeps } from './kit.js';

/** `whoami`. */
export function whoamiRoutes(): RouteSpec[] {
  return [
    route({
      method: 'GET',
      path: '/api/v1/whoami',
      operationId: 'whoami',
      summary: 'Who the token belongs to, its role, and what it may do (the dashboard shows buttons by `can`)',
      tag: 'auth',
      permission: 'read',
      response: { kind: 'json', schema: S.Whoami },
      handle: ({ identity }) => {
        const id = identity as NonNullable<typeof identity>;
        return Promise.resolve({ identity: id.id, via: id.via, roles: [id.role], can: capabilities(id.role) });
      },
    }),
  ];
}

/** The API token routes. */
export function tokenRoutes(d: RouteDeps): RouteSpec[] {
  const { store } = d;
  return [
    route({
      method: 'GET',
      path: '/api/v1/tokens',
      operationId: 'listTokens',
      summary: 'API tokens (never the tokens themselves)',
      tag: 'auth',
      permission: 'tokens',
      action: 'list API tokens',
      response: { kind: 'json', schema: S.Token.array() },
      handle: async () => (await store.listApiTokens()).map(({ hash: _hash, ...t }) => t),
    }),
    route<{ name: string; role: S.TokenBodyT['role']; expiresInHours?: number | undefined }>({
      method: 'POST',
      path: '/api/v1/tokens',
      operationId: 'createToken',
      summary: 'Create an API token; the answer holds the token, once',
      tag: 'auth',
      permission: 'tokens',
      action: 'create API tokens',
      body: S.TokenBody,
      response: { kind: 'json', schema: S.CreatedToken, status: 201 },
      handle: async ({ body, actor }) => {
        const now = new Date();
        const expiresAt =
          body.expiresInHours === undefined ? null : new Date(now.getTime() + body.expiresInHours * 3_600_000).toISOString();
        const { token, record } = newApiToken(body.name, body.role, actor, { now, expiresAt });
        await store.createApiToken(record, actor);
        const { hash: _hash, ...shown } = record;
        return { token, record: { ...shown, revokedAt: null, revokedBy: null } };
      },
    }),
    route({
      method: 'DELETE',
      path: '/api/v1/tokens/{id}',
      operationId: 'revokeToken',
      summary: 'Revoke an API token',
      tag: 'auth',
      permission: 'tokens',
      action: 'revoke API tokens',
      response: { kind: 'json', schema: S.Revoked },
      errors: [404],
      handle: async ({ params, actor }) => {
        const id = params['id'] ?? '';
        if (!(await store.revokeApiToken(id, actor))) {
          throw new ApiError('MERIDIAN_E_API_NOT_FOUND', `there is no unrevoked API token ${id}`, {
            hint: 'list them with GET /api/v1/tokens',
          });
        }
        return { id, revoked: true };
      },
    }),
  ];
}
