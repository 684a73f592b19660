/**
 * The event stream: ids, resuming with Last-Event-ID, heartbeats, filters, the token in the query; and
 * a router that follows the server — it applies table changes, keeps serving with its last table when
 * the server stops, and catches up when the server comes back.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followServer, type ServerFollower } from '../src/router/server-follower.js';
import { EventHub } from '../src/server/event-hub.js';
import type { FleetLink } from '../src/server/fleet-link.js';
import { startServer } from '../src/server/server.js';
import type { Endpoint } from '../src/targets/target.js';
import { closeAgents, get, startUpstream, type Upstream } from './support/router-kit.js';
import { api, codeOf, serverWorld, sse, until, type ServerWorld } from './support/server-kit.js';
import { TRUST_LOOPBACK } from './support/router-kit.js';

let sw: ServerWorld;
const upstreams: Upstream[] = [];
beforeAll(async () => {
  for (const c of ['eu-west-1', 'eu-west-2', 'eu-central-1', 'us-east-1']) upstreams.push(await startUpstream(c, '2.4.0'));
  const link: FleetLink = {
    describe: 'upstreams in the test',
    status: (cluster) => Promise.resolve({ cluster, services: {} }),
    endpoints: (cluster) =>
      Promise.resolve(
        upstreams
          .filter((u) => u.cluster === cluster)
          .map((u): Endpoint => ({ ...u.endpoint(), revisionId: 'rev-1', healthy: true, replica: `${cluster}-r1` })),
      ),
    routerMetrics: () => Promise.resolve(null),
    setDrained: () => Promise.resolve(),
    subscribe: () => () => undefined,
    close: () => Promise.resolve(),
  };
  sw = await serverWorld({ link });
});
afterAll(async () => {
  await sw?.close();
  for (const u of upstreams) await u.kill();
  closeAgents();
});

const auth = (): Record<string, string> => ({ authorization: `Bearer ${sw.tokens.viewer}` });
const drain = (name: string, drained: boolean, url = sw.url) =>
  api(url, 'POST', `/api/v1/clusters/${name}/drain`, { token: sw.tokens.deployer, body: { drained } });

describe('the event stream', () => {
  it('starts with the current routing view, then sends every change with an id; audit entries follow', async () => {
    const s = await sse(sw.url, '/api/v1/events', auth());
    try {
      expect(s.status).toBe(200);
      const first = await s.next((e) => e.event === 'routing', 'the routing snapshot');
      expect(first.id).toMatch(/^[0-9a-f]+-\d+$/);
      const v0 = (first.data as { tableVersion: number }).tableVersion;
      await drain('eu-central-1', true);
      const changed = await s.next((e) => e.event === 'routing' && (e.data as { tableVersion: number }).tableVersion > v0, 'the new table');
      expect(changed.data).toMatchObject({ drained: ['eu-central-1'] });
      const audit = await s.next((e) => e.event === 'audit', 'the audit entry');
      expect(audit.data).toMatchObject({ action: 'routing.drain', subject: 'eu-central-1', actor: 'dev' });
      const ids = s.events.filter((e) => e.id !== null && e !== first).map((e) => Number(e.id!.split('-')[1]));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      await drain('eu-central-1', false);
    } finally {
      s.close();
    }
  });

  it('resumes after Last-Event-ID with exactly what was missed, and sends the snapshot for an id it does not know', async () => {
    const s = await sse(sw.url, '/api/v1/events?types=table,routing', auth());
    const first = await s.next((e) => e.event === 'table', 'snapshot');
    await s.next((e) => e.event === 'routing', 'snapshot');
    const last = s.events[s.events.length - 1]!;
    s.close();
    await drain('us-east-1', true);
    await drain('us-east-1', false);
    const resumed = await sse(sw.url, '/api/v1/events?types=table,routing', { ...auth(), 'last-event-id': last.id! });
    try {
      await until(() => resumed.events.filter((e) => e.event === 'table').length >= 2, 'the two missed tables');
      const tables = resumed.events.filter((e) => e.event === 'table');
      expect(tables.map((e) => (e.data as { drained: string[] }).drained)).toEqual([['us-east-1'], []]);
      expect((tables[0]!.data as { tableVersion: number }).tableVersion).toBe((first.data as { tableVersion: number }).tableVersion + 1);
      // `routing` is published only while someone watches it; the resumer ends with the current view either way
      await until(() => {
        const views = resumed.events.filter((e) => e.event === 'routing');
        return views.length > 0 && (views[views.length - 1]!.data as { drained: string[] }).drained.length === 0;
      }, 'the current routing view');
    } finally {
      resumed.close();
    }
    const stranger = await sse(sw.url, '/api/v1/events?types=routing', { ...auth(), 'last-event-id': 'ffffffff-3' });
    try {
      const snap = await stranger.next((e) => e.event === 'routing', 'the snapshot');
      expect((snap.data as { drained: string[] }).drained).toEqual([]);
    } finally {
      stranger.close();
    }
  });

  it('sends heartbeats, takes the token in the query (for EventSource), and filters by type', async () => {
    const s = await sse(sw.url, `/api/v1/events?types=audit&access_token=${sw.tokens.viewer}`);
    try {
      expect(s.status).toBe(200);
      await until(() => s.comments.some((c) => c.startsWith('heartbeat')), 'a heartbeat');
      await drain('eu-west-2', true);
      await s.next((e) => e.event === 'audit', 'an audit event');
      await drain('eu-west-2', false);
      expect(s.events.every((e) => e.event === 'audit')).toBe(true);
    } finally {
      s.close();
    }
    const bad = await api(sw.url, 'GET', '/api/v1/events?types=weather', { token: sw.tokens.viewer });
    expect([bad.status, codeOf(bad)]).toEqual([422, 'MERIDIAN_E_API_INVALID']);
  });
});

describe('a router that follows the server', () => {
  let follower: ServerFollower;
  let port = 0;
  const clusterOf = async (): Promise<string> =>
    (await get(port, '/', { headers: { 'x-client-country': 'IE' } })).json<{ cluster: string }>().cluster;
  const clustersOf = async (n: number): Promise<Set<string>> => {
    const out = new Set<string>();
    for (let i = 0; i < n; i++) out.add(await clusterOf());
    return out;
  };

  afterAll(async () => {
    await follower?.close();
  });

  it('routes by the server’s table and applies each change', async () => {
    const logs: string[] = [];
    follower = await followServer({
      server: sw.url,
      token: sw.tokens.viewer,
      router: { ...TRUST_LOOPBACK, healthChecks: false, geoip: null },
      backoffMs: 50,
      maxBackoffMs: 200,
      idleMs: 3000,
      log: (_l, m) => void logs.push(m),
    });
    port = (await follower.router.listen(0)).port;
    await until(() => follower.connected, 'the stream');
    expect(await clustersOf(40)).toEqual(new Set(['eu-west-1', 'eu-west-2']));
    const a = await drain('eu-west-1', true);
    const version = (a.body as { tableVersion: number }).tableVersion;
    await until(() => follower.applied >= version, 'the drain applied');
    expect(await clustersOf(30)).toEqual(new Set(['eu-west-2']));
  });

  it('loads and applies a new revision when the one in force changes', async () => {
    expect(follower.router.revision.id).toBe(sw.w.rev1.id);
    for (const [name, state] of Object.entries(sw.w.rev2.clusters)) {
      await sw.store.recordClusterState(name, sw.w.rev2.id, state, 'healthy', { id: 'test' });
    }
    await until(() => follower.router.revision.id === sw.w.rev2.id, 'the new revision in the router');
    expect((await get(port, '/', { headers: { 'x-client-country': 'IE' } })).status).toBe(200);
  });

  it('keeps serving with its last table when the server stops, and catches up when it comes back', async () => {
    const serverPort = sw.server.port;
    await sw.server.close();
    await until(() => !follower.connected, 'the router to notice');
    expect(await clustersOf(20)).toEqual(new Set(['eu-west-2'])); // the last table
    // while the server is away, another operator changes the drains (as recorded in the store)
    await sw.store.appendAudit({
      actor: { id: 'ops' },
      action: 'routing.drain',
      subject: 'eu-west-1',
      data: { kind: 'cluster', drained: false },
    });
    await sw.store.appendAudit({
      actor: { id: 'ops' },
      action: 'routing.drain',
      subject: 'eu-west-2',
      data: { kind: 'cluster', drained: true },
    });
    const told: string[] = [];
    const link = sw.server.state.link!;
    const again = await startServer({
      store: sw.store,
      port: serverPort,
      link: { ...link, setDrained: (names, drained) => (drained && told.push(...names), Promise.resolve()) },
      written: sw.w.rev1,
      storePollMs: 30,
      fleetPollMs: 100,
      heartbeatMs: 200,
    });
    (sw as { server: typeof again }).server = again;
    await until(() => follower.connected, 'the reconnect', 15_000);
    await until(async () => (await clusterOf()) === 'eu-west-1', 'the new table');
    expect(await clustersOf(30)).toEqual(new Set(['eu-west-1']));
    expect(told).toEqual(['eu-west-2']); // the fleet's own router learns the recorded drains at start too
  });
});

describe('the event hub', () => {
  it('resumes from its buffer only: an id that fell out of it gets the snapshot instead', async () => {
    const hub = new EventHub({ buffer: 3, heartbeatMs: 60_000, snapshot: (t) => (t === 'audit' ? { snapshot: true } : undefined) });
    const server = createServer((req, res) => {
      const last = req.headers['last-event-id'];
      hub.subscribe(res, ['audit'], typeof last === 'string' ? last : null);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    try {
      const ids = [1, 2, 3, 4, 5].map((n) => hub.publish('audit', { n }).id);
      const recent = await sse(url, '/', { 'last-event-id': ids[2]! }); // 4 and 5 are in the buffer
      await until(() => recent.events.length >= 2, 'the missed events');
      expect(recent.events.map((e) => e.data)).toEqual([{ n: 4 }, { n: 5 }]);
      recent.close();
      const old = await sse(url, '/', { 'last-event-id': ids[0]! }); // 2 fell out: 2..5 cannot be replayed whole
      await until(() => old.events.length >= 1, 'the snapshot');
      expect(old.events[0]!.data).toEqual({ snapshot: true });
      old.close();
    } finally {
      hub.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
