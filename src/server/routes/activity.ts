/** The API's record of what happened: the audit log with its chain verified, and the server-sent event stream. */
import { ApiError } from '../api-error.js';
import { AuditVerifier } from '../audit-verifier.js';
import { auditJson } from '../control-state.js';
import { EVENT_TYPES, type EventType } from '../event-hub.js';
import type { RouteSpec } from '../route.js';
import * as S from '../schemas.js';
import { intParam, route, type RouteDeps } from './kit.js';

/** The audit and event routes. */
export function activityRoutes(d: RouteDeps): RouteSpec[] {
  const { store, hub } = d;
  const auditVerifier = new AuditVerifier(store);
  return [
    route({
      method: 'GET',
      path: '/api/v1/audit',
      operationId: 'listAudit',
      summary: 'The newest audit entries, and whether the hash chain verifies (and where it breaks)',
      tag: 'audit',
      permission: 'read',
      query: [{ name: 'limit', description: 'at most this many entries, newest first (1..1000, default 100)', type: 'integer' }],
      response: { kind: 'json', schema: S.Audit },
      errors: [422],
      handle: async ({ url }) => {
        const limit = intParam(url, 'limit', 100, 1000);
        const v = await auditVerifier.verify();
        const entries = (await store.listAudit({ limit, newestFirst: true })).map(auditJson);
        return v.ok
          ? { verified: true, count: v.count, headHash: v.headHash, entries }
          : { verified: false, count: v.count, headHash: v.headHash, brokenAt: v.seq, problem: `${v.problem}: ${v.message}`, entries };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/events',
      operationId: 'events',
      summary:
        'Server-sent events: routing, health, traffic, rollout, flag, audit. `Last-Event-ID` resumes; `?types=routing,health` filters; `?access_token=` for EventSource (here only); the stream ends when its token is revoked or expires',
      tag: 'events',
      permission: 'read',
      query: [
        { name: 'types', description: `comma-separated event names (default all): ${EVENT_TYPES.join(', ')}`, type: 'string' },
        { name: 'access_token', description: 'the bearer token, for clients that cannot set headers', type: 'string' },
      ],
      response: { kind: 'sse' },
      errors: [422],
      handle: ({ req, res, url, stillValid }) => {
        const raw = url.searchParams.get('types');
        const types = raw === null || raw === '' ? [...EVENT_TYPES] : raw.split(',').map((t) => t.trim());
        const bad = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
        if (bad.length > 0) {
          throw new ApiError('MERIDIAN_E_API_INVALID', `unknown event type ${bad.join(', ')}`, {
            hint: `the types are: ${EVENT_TYPES.join(', ')}`,
          });
        }
        if (req.method === 'HEAD') {
          // no body to stream: answer the headers and end, rather than hold a subscriber that is never sent anything
          res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' }).end();
          return Promise.resolve(undefined);
        }
        const last = req.headers['last-event-id'];
        hub.subscribe(res, types as EventType[], typeof last === 'string' ? last : url.searchParams.get('lastEventId'), { stillValid });
        return Promise.resolve(undefined);
      },
    }),
  ];
}
