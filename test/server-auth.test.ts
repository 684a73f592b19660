/**
 * Authentication and roles: every route of the API is tried without a token (401), with each role too
 * weak for it (403) and with one that is allowed (neither); OIDC ID tokens from a local issuer (discovery
 * and JWKS on loopback) are accepted only when issuer, audience, claims, expiry and signature are right.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readOidcConfig } from '../src/cli/commands/serve.js';
import { allows, ROLES, type Role } from '../src/server/auth/roles.js';
import { newApiToken } from '../src/server/auth/tokens.js';
import type { RouteSpec } from '../src/server/route.js';
import { type Issuer, startIssuer } from './support/oidc-kit.js';
import { api, codeOf, ROLLOUT, serverWorld, type ServerWorld } from './support/server-kit.js';

let sw: ServerWorld;
let issuer: Issuer;
let stranger: Issuer;
let revocable = '';

beforeAll(async () => {
  issuer = await startIssuer();
  stranger = await startIssuer();
  sw = await serverWorld({
    oidc: {
      rules: [
        {
          issuer: issuer.url,
          audience: 'meridian',
          role: 'deployer',
          claims: { repository: 'acme/fleet', ref: 'refs/heads/*' },
          identityClaim: 'actor',
        },
      ],
    },
  });
  const t = newApiToken('to-revoke', 'viewer', { id: 'setup' });
  await sw.store.createApiToken(t.record, { id: 'setup' });
  revocable = t.record.id;
});
afterAll(async () => {
  await sw?.close();
  issuer?.server.close();
  stranger?.server.close();
});

/** A concrete path for a route, and a body it accepts. */
function sample(r: RouteSpec): { path: string; body?: unknown } {
  const path = r.path
    .replace('/revisions/{id}', `/revisions/${sw.w.rev1.id}`)
    .replace('/rollouts/{id}', `/rollouts/${ROLLOUT}`)
    .replace('/tokens/{id}', `/tokens/${revocable}`)
    .replace('/clusters/{name}', '/clusters/eu-west-2')
    .replace('/regions/{name}', '/regions/us-east')
    .replace('/flags/{name}/regions/{region}', '/flags/new-checkout/regions/eu-west');
  const bodies: Record<string, unknown> = {
    approveRollout: { wave: 'europe', role: 'release-manager' },
    rejectRollout: { wave: 'europe', role: 'release-manager', reason: 'not now' },
    promoteRollout: { reason: 'tested enough' },
    drainCluster: { drained: false },
    drainRegion: { drained: false },
    setFlag: { enabled: true, percent: 5 },
    createToken: { name: 'made-in-test', role: 'viewer' },
  };
  const body = bodies[r.operationId] ?? (r.body ? {} : undefined);
  return body === undefined ? { path } : { path, body };
}

async function call(r: RouteSpec, token: string | undefined): Promise<{ status: number; code: string | undefined }> {
  const { path, body } = sample(r);
  if (r.response.kind === 'sse') {
    const ctl = new AbortController();
    const res = await fetch(new URL(path.slice(1), sw.url), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: ctl.signal,
    });
    const code = res.status >= 400 ? ((await res.json()) as { error: { code: string } }).error.code : undefined;
    ctl.abort();
    return { status: res.status, code };
  }
  const a = await api(sw.url, r.method, path, { token, body });
  return { status: a.status, code: codeOf(a) };
}

describe('roles on every route', () => {
  it('every route but the document and liveness needs a token: 401 without one', async () => {
    const guarded = sw.server.routes.filter((r) => r.permission !== null);
    expect(guarded.length).toBeGreaterThan(20);
    for (const r of guarded) {
      const a = await call(r, undefined);
      expect([`${r.method} ${r.path}`, a.status, a.code]).toEqual([`${r.method} ${r.path}`, 401, 'MERIDIAN_E_API_UNAUTHENTICATED']);
      const b = await call(r, 'mrd_abcdefghij_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
      expect([`${r.method} ${r.path}`, b.status]).toEqual([`${r.method} ${r.path}`, 401]);
    }
  });

  it('every role too weak for a route gets 403; a role that may gets through', async () => {
    let refused = 0;
    for (const r of sw.server.routes) {
      if (r.permission === null) continue;
      const permission = r.permission;
      for (const role of ROLES.filter((x) => !allows(x, permission))) {
        const a = await call(r, sw.tokens[role]);
        expect([`${role} ${r.method} ${r.path}`, a.status, a.code]).toEqual([
          `${role} ${r.method} ${r.path}`,
          403,
          'MERIDIAN_E_API_FORBIDDEN',
        ]);
        refused++;
      }
    }
    expect(refused).toBeGreaterThanOrEqual(27);
    // then the weakest role that may, once per route (actions may answer 409 for the rollout's state, never 401/403)
    for (const r of sw.server.routes) {
      if (r.permission === null) continue;
      const permission = r.permission;
      const role = ROLES.find((x) => allows(x, permission)) as Role;
      const a = await call(r, sw.tokens[role]);
      expect([`${role} ${r.method} ${r.path}`, a.status < 300 || a.status === 409]).toEqual([`${role} ${r.method} ${r.path}`, true]);
    }
  });

  it('the author of the change, as approver, is refused by the approval rule (403 MERIDIAN_E_APPROVAL_AUTHOR)', async () => {
    const a = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, { token: sw.authorToken, body: { wave: 'europe' } });
    expect([a.status, codeOf(a)]).toEqual([403, 'MERIDIAN_E_APPROVAL_AUTHOR']);
  });

  it('the document and liveness are public', async () => {
    expect((await api(sw.url, 'GET', '/api/v1/openapi.json')).status).toBe(200);
    expect((await api(sw.url, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('OIDC ID tokens', () => {
  const claims = { repository: 'acme/fleet', ref: 'refs/heads/main', actor: 'octocat' };
  const sign = (
    iss: Issuer,
    opts: { aud?: string; claims?: Record<string, unknown>; exp?: number | string; issuer?: string } = {},
  ): Promise<string> =>
    new SignJWT(opts.claims ?? claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(opts.issuer ?? iss.url)
      .setAudience(opts.aud ?? 'meridian')
      .setSubject('repo:acme/fleet:ref:refs/heads/main')
      .setIssuedAt(typeof opts.exp === 'number' ? opts.exp - 600 : undefined)
      .setExpirationTime(opts.exp ?? '5m')
      .sign(iss.key);

  it('a token that matches the rule acts with its role, named by the identity claim, and is audited so', async () => {
    const t = await sign(issuer);
    const who = await api(sw.url, 'GET', '/api/v1/whoami', { token: t });
    expect(who.body).toMatchObject({ identity: 'octocat', roles: ['deployer'], via: `oidc:${issuer.url}` });
    const d = await api(sw.url, 'POST', '/api/v1/clusters/eu-west-2/drain', { token: t, body: { drained: false } });
    expect(d.status).toBe(200);
    const audit = (await api(sw.url, 'GET', '/api/v1/audit?limit=3', { token: sw.tokens.viewer })).body as {
      entries: { action: string; actor: string; via: string }[];
    };
    expect(audit.entries[0]).toMatchObject({ action: 'routing.drain', actor: 'octocat', via: `oidc:${issuer.url}` });
    // its role is deployer: approving is refused
    const ap = await api(sw.url, 'POST', `/api/v1/rollouts/${ROLLOUT}/approve`, { token: t, body: { wave: 'europe' } });
    expect(ap.status).toBe(403);
  });

  it.each([
    ['an issuer no rule trusts', async () => sign(stranger)],
    ['a trusted issuer claimed by a token signed with another key', async () => sign(stranger, { issuer: issuer.url })],
    ['a wrong audience', async () => sign(issuer, { aud: 'someone-else' })],
    ['a claim that does not match', async () => sign(issuer, { claims: { ...claims, repository: 'evil/fleet' } })],
    ['a ref outside the pattern', async () => sign(issuer, { claims: { ...claims, ref: 'refs/tags/v1' } })],
    ['an expired token', async () => sign(issuer, { exp: Math.floor(Date.now() / 1000) - 300 })],
    ['a missing identity claim', async () => sign(issuer, { claims: { repository: 'acme/fleet', ref: 'refs/heads/main' } })],
  ])('refuses %s with 401', async (_what, make) => {
    const a = await api(sw.url, 'GET', '/api/v1/whoami', { token: await make() });
    expect([a.status, codeOf(a)]).toEqual([401, 'MERIDIAN_E_API_UNAUTHENTICATED']);
  });

  it('refuses a token whose payload was altered after signing', async () => {
    const [h, , s] = (await sign(issuer)).split('.');
    const forged = Buffer.from(
      JSON.stringify({
        ...claims,
        iss: issuer.url,
        aud: 'meridian',
        exp: Math.floor(Date.now() / 1000) + 300,
        iat: Math.floor(Date.now() / 1000),
        actor: 'mallory',
      }),
    ).toString('base64url');
    const a = await api(sw.url, 'GET', '/api/v1/whoami', { token: `${h}.${forged}.${s}` });
    expect(a.status).toBe(401);
  });
});

describe('the --oidc configuration file', () => {
  it('is read from YAML, and a bad one is refused naming the file and every problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-oidc-'));
    try {
      const good = join(dir, 'good.yaml');
      writeFileSync(
        good,
        'rules:\n  - issuer: https://token.actions.githubusercontent.com\n    audience: meridian\n    role: deployer\n    claims: { repository: acme/fleet }\n',
      );
      expect(readOidcConfig(good).rules[0]).toMatchObject({ role: 'deployer', identityClaim: 'sub', claims: { repository: 'acme/fleet' } });
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'rules:\n  - issuer: not-a-url\n    audience: meridian\n    role: owner\n');
      expect(() => readOidcConfig(bad)).toThrow(/bad\.yaml is invalid: rules\.0\.issuer: .*; rules\.0\.role: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
