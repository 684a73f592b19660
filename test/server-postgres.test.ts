/**
 * The control plane on PostgreSQL: the same world as the SQLite tests (tokens in migration 5, a rollout
 * waiting for approval), one approval through the API and its audit entry, on a schema of its own.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../src/store/postgres-store.js';
import { api, NAMES, ROLLOUT, serverWorld } from './support/server-kit.js';

const URL_ = process.env['MERIDIAN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `mrd_server_${process.pid}_${Date.now().toString(36)}`;

afterAll(async () => {
  const c = new pg.Client({ connectionString: URL_ });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await c.end();
});

describe('the control plane on PostgreSQL', () => {
  it('authenticates by a stored token, approves through the API, and audits it with the identity', async () => {
    const sw = await serverWorld({}, () => openPostgresStore(URL_, { schema }));
    try {
      expect((await api(sw.url, 'GET', '/api/v1/whoami', { token: sw.tokens.approver })).body).toMatchObject({ identity: NAMES.approver });
      const a = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, {
        token: sw.tokens.approver,
        body: { wave: 'europe', role: 'release-manager' },
      });
      expect(a.status).toBe(200);
      expect(a.body).toMatchObject({ gate: { met: true } });
      const audit = (await api(sw.url, 'GET', '/api/v1/audit?limit=3', { token: sw.tokens.viewer })).body as {
        verified: boolean;
        entries: { action: string; actor: string }[];
      };
      expect(audit.verified).toBe(true);
      expect(audit.entries[0]).toMatchObject({ action: 'approval.approve', actor: NAMES.approver });
      const own = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, { token: sw.authorToken, body: { wave: 'europe' } });
      expect(own.status).toBe(403);
    } finally {
      await sw.close();
    }
  });
});
