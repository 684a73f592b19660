/**
 * Attack suite, OIDC (docs/security.md; findings of the security review): F-1 a rule without claims would
 * give its role to every token of its issuer — refused at start unless explicitly opted into, and never
 * for a shared CI issuer without a repository binding; F-16 `iat` in the future, lifetimes of years, a
 * discovery document naming another issuer and plain-http issuers beyond loopback are refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOidcConfig } from '../src/cli/commands/serve.js';
import { type OidcConfig, OidcVerifier } from '../src/server/auth/oidc.js';
import { MeridianError } from '../src/errors.js';
import { type Issuer, startIssuer } from './support/oidc-kit.js';

let issuer: Issuer;
let liar: Issuer;
let insecureJwks: Issuer;
beforeAll(async () => {
  issuer = await startIssuer();
  liar = await startIssuer(() => ({ issuer: 'https://someone-else.example' }));
  insecureJwks = await startIssuer(() => ({ jwks_uri: 'http://jwks.example/keys' }));
});
afterAll(() => {
  for (const i of [issuer, liar, insecureJwks]) i?.server.close();
});

const rule = (iss: Issuer, extra: Record<string, unknown> = {}): OidcConfig =>
  ({
    rules: [{ issuer: iss.url, audience: 'meridian', role: 'admin', claims: { repository: 'acme/fleet' }, identityClaim: 'sub', ...extra }],
  }) as OidcConfig;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof MeridianError ? err.code : String(err);
  }
}

const now = (): number => Math.floor(Date.now() / 1000);
function sign(iss: Issuer, t: { iat?: number; exp?: number; repository?: string } = {}): Promise<string> {
  return new SignJWT({ repository: t.repository ?? 'acme/fleet' })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setIssuer(iss.url)
    .setAudience('meridian')
    .setSubject('repo:acme/fleet:ref:refs/heads/main')
    .setIssuedAt(t.iat ?? now())
    .setExpirationTime(t.exp ?? now() + 300)
    .sign(iss.key);
}

async function refusal(v: OidcVerifier, token: string): Promise<string> {
  try {
    await v.identify(token);
    return 'accepted';
  } catch (err) {
    return err instanceof MeridianError ? `${err.code}: ${err.message}` : String(err);
  }
}

describe('F-1: an OIDC rule without claims', () => {
  it('is refused at start: by the verifier the server builds, and in the --oidc file, naming the rule', () => {
    const open = { rules: [{ issuer: 'https://idp.example.com', audience: 'meridian', role: 'admin', claims: {}, identityClaim: 'sub' }] };
    expect(codeOf(() => new OidcVerifier(open as OidcConfig))).toBe('MERIDIAN_E_OIDC_RULE');
    const dir = mkdtempSync(join(tmpdir(), 'meridian-sec-oidc-'));
    try {
      const f = join(dir, 'oidc.yaml');
      writeFileSync(f, 'rules:\n  - issuer: https://idp.example.com\n    audience: meridian\n    role: admin\n');
      expect(() => readOidcConfig(f)).toThrow(/rules\.0 .*no claims.*every token of https:\/\/idp\.example\.com/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is accepted with the explicit opt-in anyTokenOfIssuer for a private issuer', async () => {
    const v = new OidcVerifier({
      rules: [{ issuer: issuer.url, audience: 'meridian', role: 'viewer', claims: {}, identityClaim: 'sub', anyTokenOfIssuer: true }],
    } as OidcConfig);
    expect((await v.identify(await sign(issuer, { repository: 'evil/fleet' }))).role).toBe('viewer');
  });

  it('a shared CI issuer (GitHub, GitLab) needs a repository binding, opt-in or not', () => {
    const gh = 'https://token.actions.githubusercontent.com';
    const mk = (claims: Record<string, string>, extra: Record<string, unknown> = {}) =>
      ({ rules: [{ issuer: gh, audience: 'meridian', role: 'deployer', claims, identityClaim: 'sub', ...extra }] }) as OidcConfig;
    expect(codeOf(() => new OidcVerifier(mk({}, { anyTokenOfIssuer: true })))).toBe('MERIDIAN_E_OIDC_RULE');
    expect(codeOf(() => new OidcVerifier(mk({ ref: 'refs/heads/main' })))).toBe('MERIDIAN_E_OIDC_RULE');
    expect(codeOf(() => new OidcVerifier(mk({ repository: '*' })))).toBe('MERIDIAN_E_OIDC_RULE');
    expect(codeOf(() => new OidcVerifier(mk({ repository: 'acme/fleet' })))).toBeUndefined();
    expect(codeOf(() => new OidcVerifier(mk({ sub: 'repo:acme/fleet:ref:refs/heads/main' })))).toBeUndefined();
    const gl = { rules: [{ issuer: 'https://gitlab.com', audience: 'm', role: 'viewer', claims: { ref: 'main' }, identityClaim: 'sub' }] };
    expect(codeOf(() => new OidcVerifier(gl as OidcConfig))).toBe('MERIDIAN_E_OIDC_RULE');
  });
});

describe('F-16: OIDC as strict as its peers', () => {
  it('refuses iat a year in the future, and a token valid for a hundred years', async () => {
    const v = new OidcVerifier(rule(issuer));
    expect(await refusal(v, await sign(issuer))).toBe('accepted');
    const future = await sign(issuer, { iat: now() + 365 * 86400, exp: now() + 366 * 86400 });
    expect(await refusal(v, future)).toMatch(/MERIDIAN_E_API_UNAUTHENTICATED: .*iat/);
    const forever = await sign(issuer, { exp: now() + 100 * 365 * 86400 });
    expect(await refusal(v, forever)).toMatch(/MERIDIAN_E_API_UNAUTHENTICATED: .*(lifetime|valid for)/);
    const old = await sign(issuer, { iat: now() - 2 * 3600, exp: now() + 300 });
    expect(await refusal(v, old)).toMatch(/MERIDIAN_E_API_UNAUTHENTICATED: .*iat/);
  });

  it('refuses an issuer whose discovery document names another issuer', async () => {
    const v = new OidcVerifier(rule(liar));
    expect(await refusal(v, await sign(liar))).toMatch(/MERIDIAN_E_API_UNAUTHENTICATED: .*someone-else\.example/);
  });

  it('refuses plain-http issuers and key sets beyond loopback', async () => {
    expect(
      codeOf(
        () =>
          new OidcVerifier({
            rules: [{ issuer: 'http://idp.example.com', audience: 'm', role: 'viewer', claims: { sub: 'x' }, identityClaim: 'sub' }],
          } as OidcConfig),
      ),
    ).toBe('MERIDIAN_E_OIDC_RULE');
    const v = new OidcVerifier(rule(insecureJwks));
    expect(await refusal(v, await sign(insecureJwks))).toMatch(/MERIDIAN_E_API_UNAUTHENTICATED: .*https/);
  });
});
