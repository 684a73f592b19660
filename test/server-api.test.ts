/** The control-plane API over real HTTP on 127.0.0.1 with a real SQLite store: every endpoint, its answers and its errors. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../src/server/server.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { api, codeOf, NAMES, ROLLOUT, serverWorld, until, type ServerWorld } from './support/server-kit.js';

let sw: ServerWorld;
beforeAll(async () => {
  sw = await serverWorld();
});
afterAll(async () => {
  await sw?.close();
});

const get = (path: string, token = sw.tokens.viewer) => api(sw.url, 'GET', path, { token });

describe('reads', () => {
  it('whoami says who the token is and what it may do', async () => {
    const a = await get('/api/v1/whoami', sw.tokens.approver);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      identity: NAMES.approver,
      roles: ['approver'],
      can: { approve: true, reject: true, pause: false, drain: false },
    });
    expect((await get('/api/v1/whoami', sw.tokens.deployer)).body).toMatchObject({
      can: { approve: false, pause: true, drain: true, flag: true },
    });
  });

  it('fleet lists regions with their clusters, and services', async () => {
    const a = await get('/api/v1/fleet');
    expect(a.status).toBe(200);
    const f = a.body as { name: string; revision: string; regions: { name: string; clusters: string[] }[]; services: string[] };
    expect(f.revision).toBe(sw.w.rev1.id);
    expect(f.services).toEqual(expect.arrayContaining(['api', 'web']));
    const eu = f.regions.find((r) => r.name === 'eu-west');
    expect(eu?.clusters).toContain('eu-west-1');
  });

  it('revisions: newest first, the one in force marked; one revision whole; an unknown one is 404', async () => {
    const list = (await get('/api/v1/revisions')).body as { id: string; inForce: boolean }[];
    expect(list.map((r) => r.id)).toEqual(expect.arrayContaining([sw.w.rev1.id, sw.w.rev2.id]));
    expect(list.find((r) => r.inForce)?.id).toBe(sw.w.rev1.id);
    const one = await get(`/api/v1/revisions/${sw.w.rev2.id}`);
    expect(one.body).toMatchObject({ id: sw.w.rev2.id, fleet: sw.w.rev2.fleet });
    const none = await get('/api/v1/revisions/nope');
    expect(none.status).toBe(404);
    expect(codeOf(none)).toBe('MERIDIAN_E_API_NOT_FOUND');
  });

  it('clusters show what runs per service and track, with health', async () => {
    await until(async () => ((await get('/api/v1/clusters')).body as unknown[]).length > 0, 'clusters');
    const list = (await get('/api/v1/clusters')).body as {
      name: string;
      healthy: boolean;
      services: { service: string; track: string; revision: string }[];
    }[];
    const eu1 = list.find((c) => c.name === 'eu-west-1');
    // the canary wave deployed rev2 beside rev1 on eu-west-1
    expect(eu1?.services.some((s) => s.revision === sw.w.rev2.id)).toBe(true);
    expect(eu1?.healthy).toBe(true);
    expect(list.find((c) => c.name === 'eu-west-2')?.services.every((s) => s.revision === sw.w.rev1.id)).toBe(true);
  });

  it('routing gives every client region shares per cluster that sum to at most 1', async () => {
    const r = (await get('/api/v1/routing')).body as {
      tableVersion: number;
      revision: string;
      services: Record<string, Record<string, { share: number }[]>>;
    };
    expect(r.tableVersion).toBeGreaterThan(0);
    expect(r.revision).toBe(sw.w.rev1.id);
    const web = r.services['web'] ?? {};
    expect(Object.keys(web).length).toBeGreaterThan(0);
    for (const shares of Object.values(web)) expect(shares.reduce((n, s) => n + s.share, 0)).toBeLessThanOrEqual(1.000001);
  });

  it('traffic answers with a window and flows', async () => {
    const a = await get('/api/v1/traffic');
    expect(a.status).toBe(200);
    expect(a.body).toHaveProperty('flows');
  });

  it('rollouts list the waiting rollout; its view has waves, approvals and gate verdicts with numbers', async () => {
    const list = (await get('/api/v1/rollouts')).body as { id: string; state: string; wave: string }[];
    expect(list[0]).toMatchObject({ id: ROLLOUT, state: 'awaiting-approval', wave: 'europe' });
    const one = (await get(`/api/v1/rollouts/${ROLLOUT}`)).body as {
      waves: { name: string; state: string; approvals: { required: number; roles: string[]; given: string[] } | null }[];
      verdicts: { wave: string; outcome: string; metric: string | null; value: unknown; threshold: unknown }[];
      events: { text: string }[];
    };
    expect(one.waves.find((w) => w.name === 'europe')).toMatchObject({
      state: 'awaiting-approval',
      approvals: { required: 1, roles: ['release-manager'], given: [] },
    });
    expect(one.verdicts.length).toBeGreaterThan(0);
    expect(one.verdicts[0]).toMatchObject({ wave: 'canary', outcome: 'pass', metric: 'error-rate', value: 0.001, threshold: 0.01 });
    expect(one.events.length).toBeGreaterThan(3);
    const missing = await get('/api/v1/rollouts/ro-none');
    expect([missing.status, codeOf(missing)]).toEqual([404, 'MERIDIAN_E_API_NOT_FOUND']);
  });

  it('audit verifies the chain and lists the newest entries first', async () => {
    const a = (await get('/api/v1/audit?limit=5')).body as { verified: boolean; entries: { seq: number }[] };
    expect(a.verified).toBe(true);
    expect(a.entries).toHaveLength(5);
    expect(a.entries[0]!.seq).toBeGreaterThan(a.entries[4]!.seq);
    const bad = await get('/api/v1/audit?limit=0');
    expect([bad.status, codeOf(bad)]).toEqual([422, 'MERIDIAN_E_API_INVALID']);
  });

  it('metrics: API requests, subscribers, and rollout numbers from the store', async () => {
    const text = (await get('/metrics')).body as string;
    expect(text).toMatch(/meridian_server_http_requests_total\{method="GET",route="\/api\/v1\/fleet",code="200"\} \d/);
    expect(text).toContain('meridian_server_event_subscribers');
    expect(text).toMatch(/meridian_rollout_step_verdicts_total\{fleet="shop",wave="canary",verdict="pass"\} [1-9]/);
    expect(text).toMatch(
      /meridian_rollout_waiting_since_timestamp_seconds\{fleet="shop",rollout="ro-server",wave="europe",reason="approval"\} \d/,
    );
    expect(text).toMatch(/meridian_rollout_deployments_total\{fleet="shop",region="eu-west"\} [1-9]/);
  });

  it('an unknown path is 404, a wrong method 405, both with the error shape', async () => {
    const a = await get('/api/v1/nothing');
    expect([a.status, codeOf(a)]).toEqual([404, 'MERIDIAN_E_API_NOT_FOUND']);
    const b = await api(sw.url, 'DELETE', '/api/v1/fleet', { token: sw.tokens.admin });
    expect([b.status, codeOf(b), b.headers.get('allow')]).toEqual([405, 'MERIDIAN_E_API_METHOD', 'GET']);
  });
});

describe('actions', () => {
  it('the author cannot approve their own change (403), a bad body is 422, bad JSON 400', async () => {
    const own = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, {
      token: sw.authorToken,
      body: { wave: 'europe', role: 'release-manager' },
    });
    expect([own.status, codeOf(own)]).toEqual([403, 'MERIDIAN_E_APPROVAL_AUTHOR']);
    // the refusal is in the audit log under the API identity, and the chain still verifies
    const audit = (await get('/api/v1/audit?limit=5')).body as {
      verified: boolean;
      entries: { action: string; actor: string; via: string; subject: string; detail: Record<string, unknown> }[];
    };
    expect(audit.verified).toBe(true);
    expect(audit.entries.find((e) => e.action === 'approval.refused')).toMatchObject({
      actor: 'alice',
      via: expect.stringMatching(/^token:/),
      subject: ROLLOUT,
      detail: { code: 'MERIDIAN_E_APPROVAL_AUTHOR', wave: 'europe', decision: 'approve' },
    });
    const badBody = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, { token: sw.tokens.approver, body: { wave: 7 } });
    expect([badBody.status, codeOf(badBody)]).toEqual([422, 'MERIDIAN_E_API_INVALID']);
    const badJson = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, { token: sw.tokens.approver, raw: '{nope' });
    expect([badJson.status, codeOf(badJson)]).toEqual([400, 'MERIDIAN_E_API_BAD_REQUEST']);
    const badWave = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, { token: sw.tokens.approver, body: { wave: 'mars' } });
    expect([badWave.status, codeOf(badWave)]).toEqual([422, 'MERIDIAN_E_APPROVAL_UNKNOWN_WAVE']);
  });

  it('an approver approves the waiting wave: the gate opens, and the audit log names the approver', async () => {
    const a = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, {
      token: sw.tokens.approver,
      body: { wave: 'europe', role: 'release-manager', comment: 'looks good' },
    });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      approval: { actor: NAMES.approver, wave: 'europe', decision: 'approve' },
      gate: { met: true, approvers: [NAMES.approver] },
    });
    const audit = (await get('/api/v1/audit?limit=20')).body as { entries: { action: string; actor: string; via: string }[] };
    expect(audit.entries.find((e) => e.action === 'approval.approve')).toMatchObject({
      actor: NAMES.approver,
      via: expect.stringMatching(/^token:/),
    });
  });

  it('pause records the request for the driver; an illegal control is 409; promote needs a reason', async () => {
    const p = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/pause`, { token: sw.tokens.deployer, body: { reason: 'incident' } });
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ rollout: ROLLOUT, action: 'pause', driven: false });
    expect((await sw.store.getRollout(ROLLOUT))?.control).toMatchObject({ action: 'pause', by: NAMES.deployer });
    const audit = (await get('/api/v1/audit?limit=5')).body as { entries: { action: string; actor: string; reason: string | null }[] };
    expect(audit.entries.find((e) => e.action === 'rollout.pause-requested')).toMatchObject({ actor: NAMES.deployer, reason: 'incident' });
    const promote = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/promote`, { token: sw.tokens.deployer, body: {} });
    expect(promote.status).toBe(409);
    expect(codeOf(promote)).toBe('MERIDIAN_E_ROLLOUT_CONTROL');
  });

  it('draining a cluster and a region reaches the fleet router, the routing view and the audit log', async () => {
    const before = ((await get('/api/v1/routing')).body as { tableVersion: number }).tableVersion;
    const a = await api(sw.url, 'POST', '/api/v1/clusters/eu-west-1/drain', {
      token: sw.tokens.deployer,
      body: { drained: true, reason: 'maintenance' },
    });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ name: 'eu-west-1', kind: 'cluster', drained: true });
    expect(sw.drained).toContain('eu-west-1');
    const r = (await get('/api/v1/routing')).body as {
      tableVersion: number;
      drained: string[];
      services: Record<string, Record<string, { cluster: string }[]>>;
    };
    expect(r.tableVersion).toBeGreaterThan(before);
    expect(r.drained).toEqual(['eu-west-1']);
    for (const shares of Object.values(r.services['web'] ?? {})) expect(shares.map((s) => s.cluster)).not.toContain('eu-west-1');
    const cl = (await get('/api/v1/clusters')).body as { name: string; drained: boolean }[];
    expect(cl.find((c) => c.name === 'eu-west-1')?.drained).toBe(true);
    const region = await api(sw.url, 'POST', '/api/v1/regions/us-east/drain', { token: sw.tokens.admin, body: { drained: true } });
    expect(region.status).toBe(200);
    await api(sw.url, 'POST', '/api/v1/regions/us-east/drain', { token: sw.tokens.admin, body: { drained: false } });
    await api(sw.url, 'POST', '/api/v1/clusters/eu-west-1/drain', { token: sw.tokens.deployer, body: { drained: false } });
    expect(sw.drained).toEqual([]);
    const unknown = await api(sw.url, 'POST', '/api/v1/clusters/mars-1/drain', { token: sw.tokens.deployer, body: { drained: true } });
    expect([unknown.status, codeOf(unknown)]).toEqual([404, 'MERIDIAN_E_API_NOT_FOUND']);
    const audit = (await get('/api/v1/audit?limit=10')).body as { entries: { action: string; actor: string; subject: string }[] };
    expect(audit.entries.filter((e) => e.action === 'routing.drain').map((e) => `${e.actor}:${e.subject}`)).toEqual(
      expect.arrayContaining([`${NAMES.deployer}:eu-west-1`, `${NAMES.admin}:us-east`]),
    );
  });

  it('a drain is an evacuation: one that strands locked EU clients is refused (409) naming the rule, audited, and changes nothing', async () => {
    const drain = (region: string, body: Record<string, unknown>) =>
      api(sw.url, 'POST', `/api/v1/regions/${region}/drain`, { token: sw.tokens.admin, body });
    const typo = await drain('eu-central', { drained: true, reason: 'x', declareDown: ['EUU'] });
    expect([typo.status, codeOf(typo)]).toEqual([422, 'MERIDIAN_E_API_INVALID']);
    expect((typo.body as { error: { message: string; hint: string } }).error).toMatchObject({
      message: expect.stringContaining('EUU'),
      hint: expect.stringContaining('EU'),
    });
    const first = await drain('eu-central', { drained: true, reason: 'eu-central serves errors' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const refused = await drain('eu-west', { drained: true, reason: 'eu-west too' });
    expect([refused.status, codeOf(refused)], JSON.stringify(refused.body)).toEqual([409, 'MERIDIAN_E_API_EVACUATION_REFUSED']);
    const err = (refused.body as { error: { message: string; hint: string } }).error;
    expect(err.message).toMatch(/residency/);
    expect(err.message).toMatch(/EU/);
    expect(err.hint.length).toBeGreaterThan(0);
    expect(sw.drained).toEqual(['eu-central']);
    expect(((await get('/api/v1/routing')).body as { drained: string[] }).drained).toEqual(['eu-central']);
    const audit = (await get('/api/v1/audit?limit=5')).body as { entries: { action: string; subject: string }[] };
    expect(audit.entries.map((e) => `${e.action}:${e.subject}`)).toContain('recovery.refused:eu-west');
    const undo = await drain('eu-central', { drained: false, reason: 'fixed' });
    expect(undo.status).toBe(200);
    expect(sw.drained).toEqual([]);
  });

  it("canary weights in the routing view follow the rollouts' persisted weight steps, for the services that changed", async () => {
    // as the engine records a step: the event, then its audit entry (which the server watches)
    await sw.store.appendRolloutEvent({
      rolloutId: ROLLOUT,
      at: new Date().toISOString(),
      type: 'weight-set',
      actor: 'alice',
      data: { weight: 25, clusters: ['eu-west-2'] },
    });
    await sw.store.appendAudit({ actor: { id: 'alice' }, action: 'rollout.weight-set', subject: ROLLOUT });
    await until(async () => Object.keys(((await get('/api/v1/routing')).body as { canary: object }).canary).length > 0, 'the canary');
    const r = (await get('/api/v1/routing')).body as {
      canary: Record<string, Record<string, { weight: number; version: string }>>;
      services: Record<string, Record<string, { cluster: string; version: string; share: number }[]>>;
    };
    expect(r.canary).toEqual({ web: { 'eu-west-2': { weight: 25, version: '2.5.0' } } }); // api did not change between the revisions
    const ie = r.services['web']?.['eu-west'] ?? [];
    expect(ie.find((x) => x.cluster === 'eu-west-2' && x.version === '2.5.0')?.share).toBeGreaterThan(0);
    expect((await get('/api/v1/rollouts')).body).toMatchObject([{ id: ROLLOUT, canaryWeight: 25 }]);
  });

  it('flags: list per region; a deployer sets one; unknown flag or region is 404', async () => {
    const list = (await get('/api/v1/flags')).body as {
      name: string;
      regions: Record<string, { enabled: boolean; percent: number; source: string }>;
    }[];
    expect(list.length).toBeGreaterThan(0);
    const flag = list[0]!;
    const region = Object.keys(flag.regions)[0]!;
    const put = await api(sw.url, 'PUT', `/api/v1/flags/${flag.name}/regions/${region}`, {
      token: sw.tokens.deployer,
      body: { enabled: true, percent: 42 },
    });
    expect(put.status).toBe(200);
    expect((put.body as typeof flag).regions[region]).toMatchObject({
      enabled: true,
      percent: 42,
      source: 'operator',
      updatedBy: NAMES.deployer,
    });
    await until(
      async () =>
        (((await get('/api/v1/routing')).body as { flags: Record<string, Record<string, { percent: number }>> }).flags[flag.name]?.[region]
          ?.percent ?? -1) === 42,
      'the flag in the routing view',
    );
    const nf = await api(sw.url, 'PUT', `/api/v1/flags/nope/regions/${region}`, { token: sw.tokens.deployer, body: { enabled: true } });
    expect([nf.status, codeOf(nf)]).toEqual([404, 'MERIDIAN_E_FLAG_UNKNOWN']);
    const nr = await api(sw.url, 'PUT', `/api/v1/flags/${flag.name}/regions/mars`, { token: sw.tokens.deployer, body: { enabled: true } });
    expect([nr.status, codeOf(nr)]).toEqual([404, 'MERIDIAN_E_FLAG_UNKNOWN_REGION']);
    const bad = await api(sw.url, 'PUT', `/api/v1/flags/${flag.name}/regions/${region}`, {
      token: sw.tokens.deployer,
      body: { enabled: true, percent: 120 },
    });
    expect(bad.status).toBe(422);
  });

  it('OFREP evaluates flags at /ofrep/v1/', async () => {
    const res = await fetch(new URL('ofrep/v1/configuration', sw.url));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'meridian' });
  });

  it('tokens: an admin creates one (shown once), it works, it is listed without its secret, and revoked it stops working', async () => {
    const c = await api(sw.url, 'POST', '/api/v1/tokens', { token: sw.tokens.admin, body: { name: 'ci', role: 'viewer' } });
    expect(c.status).toBe(201);
    const { token, record } = c.body as { token: string; record: { id: string } };
    expect(token).toMatch(/^mrd_/);
    expect((await get('/api/v1/whoami', token)).body).toMatchObject({ identity: 'ci', roles: ['viewer'] });
    const list = await get('/api/v1/tokens', sw.tokens.admin);
    expect(JSON.stringify(list.body)).not.toContain(token.slice(16));
    expect((list.body as { id: string }[]).some((t) => t.id === record.id)).toBe(true);
    expect((await api(sw.url, 'DELETE', `/api/v1/tokens/${record.id}`, { token: sw.tokens.admin })).status).toBe(200);
    const after = await get('/api/v1/whoami', token);
    expect([after.status, codeOf(after)]).toEqual([401, 'MERIDIAN_E_API_UNAUTHENTICATED']);
    expect((after.body as { error: { message: string } }).error.message).toContain('revoked');
    expect((await api(sw.url, 'DELETE', `/api/v1/tokens/${record.id}`, { token: sw.tokens.admin })).status).toBe(404);
  });
});

describe('a control plane that knows no fleet yet', () => {
  it('answers fleet and flags with 503 and says how to fix it; lists and views stay empty', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-server-empty-'));
    const store = await openSqliteStore(join(dir, 'state.db'));
    const server = await startServer({ store, localAdmin: { token: 'mrl_test-local-admin', id: 'me' } });
    try {
      const token = 'mrl_test-local-admin';
      const f = await api(server.url, 'GET', '/api/v1/fleet', { token });
      expect([f.status, codeOf(f)]).toEqual([503, 'MERIDIAN_E_API_UNAVAILABLE']);
      expect((f.body as { error: { hint: string } }).error.hint).toContain('meridian serve examples/shop');
      expect((await api(server.url, 'GET', '/api/v1/flags', { token })).status).toBe(503);
      expect((await api(server.url, 'GET', '/api/v1/clusters', { token })).body).toEqual([]);
      expect((await api(server.url, 'GET', '/api/v1/rollouts', { token })).body).toEqual([]);
      expect((await api(server.url, 'GET', '/api/v1/routing', { token })).body).toMatchObject({ revision: null, services: {} });
      expect((await api(server.url, 'GET', '/api/v1/whoami', { token })).body).toMatchObject({
        identity: 'me',
        via: 'local',
        roles: ['admin'],
      });
    } finally {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
