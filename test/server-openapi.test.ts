/**
 * Keeps the OpenAPI document true: it is built from the route table the server dispatches from, and
 * every operation in it is called on the live server; each answer must have a documented status, and a
 * JSON answer must match its documented schema exactly (no undocumented fields).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiToken } from '../src/server/auth/tokens.js';
import { ErrorBody } from '../src/server/schemas.js';
import { api, ROLLOUT, serverWorld, type ServerWorld } from './support/server-kit.js';

let sw: ServerWorld;
let revocable = '';
beforeAll(async () => {
  sw = await serverWorld();
  const t = newApiToken('to-revoke', 'viewer', { id: 'setup' });
  await sw.store.createApiToken(t.record, { id: 'setup' });
  revocable = t.record.id;
});
afterAll(async () => {
  await sw?.close();
});

interface Operation {
  readonly operationId: string;
  readonly parameters?: { name: string; in: string }[];
  readonly requestBody?: unknown;
  readonly responses: Record<string, { content?: Record<string, unknown> }>;
}

const VALUES: Record<string, (path: string) => string> = {
  id: (p) => (p.startsWith('/api/v1/revisions') ? sw.w.rev2.id : p.startsWith('/api/v1/tokens') ? revocable : ROLLOUT),
  name: (p) => (p.startsWith('/api/v1/clusters') ? 'eu-west-1' : p.startsWith('/api/v1/regions') ? 'eu-west' : 'new-checkout'),
  region: () => 'eu-west',
};

const BODIES: Record<string, unknown> = {
  approveRollout: { wave: 'europe', role: 'release-manager', comment: 'ok' },
  rejectRollout: { wave: 'europe', reason: 'not yet' },
  pauseRollout: { reason: 'look first' },
  resumeRollout: {},
  abortRollout: { reason: 'walk test' },
  promoteRollout: { reason: 'walk test' },
  drainCluster: { drained: true },
  drainRegion: { drained: false },
  setFlag: { enabled: true, percent: 30 },
  createToken: { name: 'walker', role: 'viewer' },
};

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1 with one operation per route of the table, each with its security and responses', async () => {
    const a = await api(sw.url, 'GET', '/api/v1/openapi.json');
    const doc = a.body as { openapi: string; paths: Record<string, Record<string, Operation>> };
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`));
    expect(ops.sort()).toEqual(sw.server.routes.map((r) => `${r.method} ${r.path}`).sort());
    expect(new Set(Object.values(doc.paths).flatMap((m) => Object.values(m).map((o) => o.operationId))).size).toBe(ops.length);
  });

  it('every operation answers on the live server as documented', async () => {
    const doc = sw.server.openapi as { paths: Record<string, Record<string, Operation>> };
    // reads first, then the actions in an order that keeps the rollout answering (abort last)
    const order = ['get', 'put', 'post', 'delete'];
    const ops = Object.entries(doc.paths)
      .flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })))
      .sort(
        (x, y) =>
          order.indexOf(x.method) - order.indexOf(y.method) ||
          (x.op.operationId === 'abortRollout' ? 1 : y.op.operationId === 'abortRollout' ? -1 : 0),
      );
    let walked = 0;
    const refused: string[] = [];
    for (const { path, method, op } of ops) {
      const concrete = path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(VALUES[name]?.(path) ?? 'x'));
      const route = sw.server.routes.find((r) => r.operationId === op.operationId);
      expect(route, op.operationId).toBeDefined();
      const where = `${method.toUpperCase()} ${concrete}`;
      if (route!.response.kind === 'sse') {
        const ctl = new AbortController();
        const res = await fetch(new URL(concrete.slice(1), sw.url), {
          headers: { authorization: `Bearer ${sw.tokens.admin}` },
          signal: ctl.signal,
        });
        expect([where, res.status, res.headers.get('content-type')]).toEqual([where, 200, 'text/event-stream; charset=utf-8']);
        expect(Object.keys(op.responses['200']?.content ?? {})).toEqual(['text/event-stream']);
        ctl.abort();
        walked++;
        continue;
      }
      const a = await api(sw.url, method.toUpperCase(), concrete, {
        token: sw.tokens.admin,
        body: op.requestBody ? BODIES[op.operationId] : undefined,
      });
      const documented = Object.keys(op.responses);
      expect([where, documented]).toEqual([where, expect.arrayContaining([String(a.status)])]);
      if (a.status >= 400) {
        // only a control that does not apply to the rollout's state (resume, promote while it waits for approval) may refuse
        expect([where, a.status, ErrorBody.safeParse(a.body).success]).toEqual([where, 409, true]);
        refused.push(op.operationId);
      } else if (route!.response.kind === 'json') {
        const parsed = route!.response.schema.safeParse(a.body);
        expect([where, parsed.success ? 'ok' : parsed.error.message]).toEqual([where, 'ok']);
        // nothing undocumented: the schema keeps every field the server sent
        expect([where, parsed.data]).toEqual([where, a.body]);
      } else {
        expect(typeof a.body).toBe('string');
      }
      walked++;
    }
    expect(walked).toBe(sw.server.routes.length);
    expect(refused.sort()).toEqual(['promoteRollout', 'resumeRollout']); // neither applies to a rollout waiting for approval
  });

  it('documents the error shape and the roles of each operation', () => {
    const doc = sw.server.openapi as {
      components: { schemas: Record<string, unknown> };
      paths: Record<string, Record<string, Record<string, unknown>>>;
    };
    expect(doc.components.schemas['Error']).toBeDefined();
    const approve = doc.paths['/api/v1/rollouts/{id}/approve']?.['post'];
    expect(approve?.['x-meridian-roles']).toEqual(['approver', 'admin']);
    expect(Object.keys(approve?.['responses'] as object)).toEqual(expect.arrayContaining(['200', '401', '403', '404', '422']));
  });
});
