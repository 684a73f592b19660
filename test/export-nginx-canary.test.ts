/**
 * The nginx export's sticky canary, on the real nginx: canaries at 30 % on eu-central-1 (alone in German
 * clients' first level) and on us-east-1 (weight 2 of 3 in the US level), routing.web.stickiness a
 * cookie. 400 users each send 5 requests: every user sees one version, and the users on the canary are
 * route simulate's share ± 7 points (3σ of a binomial over 400 users: nginx hashes with MurmurHash2,
 * not the model's bucket hash, so the share holds but not the same users) — 30 % in Germany, 20 % in
 * the US, where each cluster and version also takes route simulate's share of requests (same tolerance:
 * the canary's share of requests is its share of users).
 * Requests without the cookie are served, split per request, and get the cookie their split was made on.
 * With the canary's replicas gone, its users get the stable version of their first level.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, writeExport } from '../src/export/index.js';
import { nginxExporter } from '../src/export/nginx.js';
import type { Revision } from '../src/render/render.js';
import { trafficTable } from '../src/routing/index.js';
import type { LocalTarget } from '../src/targets/local/local-target.js';
import { isHealthyAt, waitForStatus } from '../src/targets/target.js';
import {
  fixtureRevision,
  freePort,
  localRevision,
  maxDiff,
  type Proc,
  spawnProc,
  startLocalFleet,
  tempDir,
  waitHttp,
} from './support/export-kit.js';
import { closeAgents, get, load, type Reply } from './support/router-kit.js';

const COOKIE = 'mrd_uid';
const USERS = 400;
const PER_USER = 5;
const WEIGHT = 30;
/** 3σ of the share of USERS users on a 30 % canary, in points. */
const TOLERANCE = 7;

/** The version that answered, or what went wrong. */
function answer(r: Reply | Error): string {
  if (r instanceof Error) return 'error';
  if (r.status !== 200) return `status:${r.status}`;
  const b = r.json<{ cluster: string; version: string }>();
  return `${b.cluster}@${b.version}`;
}

describe('nginx export: a sticky canary by split_clients, on the real nginx', () => {
  const base = localRevision(fixtureRevision());
  const web = base.routing['web'];
  if (!web) throw new Error('fixture: no routing.web');
  const live: Revision = { ...base, routing: { ...base.routing, web: { ...web, stickiness: { cookie: COOKIE } } } };
  const state = {
    canary: { web: { 'eu-central-1': { weight: WEIGHT, version: '2.5.0' }, 'us-east-1': { weight: WEIGHT, version: '2.5.0' } } },
  };
  let target: LocalTarget;
  let nginx: Proc;
  let port: number;
  const tmp = tempDir('meridian-nginx-canary-');

  /** Each user's answers, sending `perUser` requests as each of `users` users from `country`. */
  async function users(country: string, n: number, perUser: number): Promise<Map<string, string[]>> {
    const seen = new Map<string, string[]>();
    await load(
      n * perUser,
      16,
      (i) => get(port, '/', { headers: { 'x-client-country': country, cookie: `${COOKIE}=user-${i % n}` } }),
      (r, i) => void seen.set(`user-${i % n}`, [...(seen.get(`user-${i % n}`) ?? []), answer(r)]),
    );
    return seen;
  }

  beforeAll(async () => {
    target = await startLocalFleet(live);
    for (const name of ['eu-central-1', 'us-east-1']) {
      const cluster = live.clusters[name];
      const svc = cluster?.services['web'];
      if (!cluster || !svc) throw new Error(`fixture: no ${name}/web`);
      await target.apply({
        cluster: name,
        revisionId: 'canary-2.5.0',
        state: { ...cluster, services: { web: { ...svc, version: '2.5.0' } } },
        track: 'canary',
      });
      await waitForStatus(target, name, (s) => isHealthyAt(s, 'web', 'canary', 'canary-2.5.0'), { timeoutMs: 30_000 });
    }
    port = await freePort();
    const input = exportInput(
      live,
      clusterAddresses(live, (c) => target.endpoints(c)),
      { listen: `127.0.0.1:${port}` },
      state,
    );
    writeExport(tmp.dir, 'nginx', nginxExporter.export(input));
    execFileSync('nginx', ['-t', '-q', '-p', `${tmp.dir}/`, '-c', 'nginx.conf']);
    nginx = spawnProc('nginx', ['-p', `${tmp.dir}/`, '-c', 'nginx.conf', '-g', 'daemon off;']);
    await waitHttp(port, nginx);
  }, 120_000);

  afterAll(async () => {
    closeAgents();
    await nginx?.stop();
    await target?.close();
    tmp.cleanup();
  });

  it(`every user keeps one version; ${WEIGHT} % ± ${TOLERANCE} points of ${USERS} German users are on the canary, as route simulate's share`, async () => {
    const seen = await users('DE', USERS, PER_USER);
    const mixed = [...seen.entries()].filter(([, v]) => new Set(v).size !== 1);
    expect(mixed.length, `users who saw more than one answer: ${JSON.stringify(mixed.slice(0, 5))}`).toBe(0);
    const answers = new Set([...seen.values()].flat());
    expect([...answers].sort()).toEqual(['eu-central-1@2.4.0', 'eu-central-1@2.5.0']);
    const model = trafficTable(live, state).services['web']?.['eu-central']?.clusters['eu-central-1']?.canary ?? -1;
    expect(model).toBeCloseTo(WEIGHT / 100, 5);
    const onCanary = [...seen.values()].filter((v) => v[0] === 'eu-central-1@2.5.0').length / USERS;
    console.log(`nginx sticky canary, DE: ${(onCanary * 100).toFixed(1)} % of ${USERS} users on the canary (model ${WEIGHT} %)`);
    expect(Math.abs(onCanary - model) * 100).toBeLessThanOrEqual(TOLERANCE);
  }, 120_000);

  it('US (us-east-1 of weight 2 with the canary, us-east-2 of 1 without): every user keeps one version, 20 % of users on the canary, each cluster and version at route simulate’s share', async () => {
    const seen = await users('US', USERS, PER_USER);
    const version = (a: string): string => a.split('@')[1] ?? a;
    const mixed = [...seen.entries()].filter(([, v]) => new Set(v.map(version)).size !== 1);
    expect(mixed.length, `users who saw more than one version: ${JSON.stringify(mixed.slice(0, 5))}`).toBe(0);
    const row = trafficTable(live, state).services['web']?.['us-east'];
    const model = row?.clusters['us-east-1']?.canary ?? -1;
    expect(model).toBeCloseTo((2 / 3) * (WEIGHT / 100), 5);
    const onCanary = [...seen.values()].filter((v) => v[0] === 'us-east-1@2.5.0').length / USERS;
    console.log(
      `nginx sticky canary, US: ${(onCanary * 100).toFixed(1)} % of ${USERS} users on the canary (model ${(model * 100).toFixed(1)} %)`,
    );
    expect(Math.abs(onCanary - model) * 100).toBeLessThanOrEqual(TOLERANCE);
    // per request: the stable users' requests spread over both clusters, so compare with the model's shares of requests
    const requests: Record<string, number> = {};
    for (const a of [...seen.values()].flat()) requests[a] = (requests[a] ?? 0) + 1 / (USERS * PER_USER);
    const expected: Record<string, number> = {};
    for (const [c, v] of Object.entries(row?.clusters ?? {})) {
      if (v.stable > 0) expected[`${c}@2.4.0`] = v.stable;
      if (v.canary > 0) expected[`${c}@2.5.0`] = v.canary;
    }
    console.log(`nginx sticky canary, US requests: ${JSON.stringify(requests)} (model ${JSON.stringify(expected)})`);
    expect(maxDiff(requests, expected), JSON.stringify({ requests, expected })).toBeLessThanOrEqual(TOLERANCE);
  }, 120_000);

  it('a request without the cookie is served, split per request, and gets the cookie its split was made on: the user is sticky from then on', async () => {
    const first: { version: string; cookie: string }[] = [];
    await load(
      300,
      16,
      () => get(port, '/', { headers: { 'x-client-country': 'DE' } }),
      (r) => {
        const set = r instanceof Error ? [] : (r.headers['set-cookie'] ?? []);
        const cookie = set.find((c) => c.startsWith(`${COOKIE}=`))?.split(';')[0] ?? '';
        first.push({ version: answer(r), cookie });
      },
    );
    expect(first.every((f) => f.version.startsWith('eu-central-1@'))).toBe(true);
    expect(first.every((f) => /^mrd_uid=[0-9a-f]{32}$/.test(f.cookie))).toBe(true);
    const canary = first.filter((f) => f.version.endsWith('@2.5.0')).length / first.length;
    expect(Math.abs(canary - WEIGHT / 100) * 100, `canary share per request: ${canary}`).toBeLessThanOrEqual(9); // 3σ over 300 requests
    // the cookie handed out is the key the first request was split on: the same version again
    const sample = first.slice(0, 60);
    const again: string[] = [];
    await load(
      sample.length * 3,
      16,
      (i) => get(port, '/', { headers: { 'x-client-country': 'DE', cookie: sample[i % sample.length]?.cookie ?? '' } }),
      (r, i) => {
        if (answer(r) !== sample[i % sample.length]?.version) again.push(`${sample[i % sample.length]?.cookie}: ${answer(r)}`);
        if (!(r instanceof Error)) expect(r.headers['set-cookie'] ?? []).toEqual([]); // a user with the cookie gets no new one
      },
    );
    expect(again, 'a later request with the cookie on another version').toEqual([]);
  }, 120_000);

  it('Irish users, whose first level (eu-west) runs no canary, see only stable servers', async () => {
    const seen = new Set<string>();
    await load(
      200,
      16,
      (i) => get(port, '/', { headers: { 'x-client-country': 'IE', cookie: `${COOKIE}=user-${i}` } }),
      (r) => void seen.add(answer(r)),
    );
    expect(
      [...seen].every((v) => v.endsWith('@2.4.0')),
      [...seen].join(' '),
    ).toBe(true);
  }, 60_000);

  it('with eu-central-1’s canary gone, its users get the stable version there (its backup): nothing fails, nobody leaves eu-central', async () => {
    await target.remove({ cluster: 'eu-central-1', track: 'canary', services: ['web'] });
    const seen = await users('DE', 100, 3);
    expect([...new Set([...seen.values()].flat())]).toEqual(['eu-central-1@2.4.0']);
  }, 60_000);
});
