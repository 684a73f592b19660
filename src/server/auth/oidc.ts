/**
 * OIDC ID tokens (for example GitHub Actions' `id-token`): accepted when a configured rule's issuer,
 * audience and claim rules match, with the signature verified against the issuer's JWKS (found through
 * its `/.well-known/openid-configuration`). The rule grants a role; the identity is one of the claims.
 */
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { MeridianError } from '../../errors.js';
import { ApiError } from '../api-error.js';
import { isLoopbackHost } from '../host-check.js';
import { type Identity, ROLES } from './roles.js';

/** One trust rule: tokens from `issuer` for `audience` whose claims match `claims` get `role`. */
export const OidcRule = z.strictObject({
  issuer: z.string().url(),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  role: z.enum(ROLES),
  /** Claim → required value; `*` in a value matches any run of characters (`refs/heads/*`). */
  claims: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
  /** The claim that names the caller in the audit log (default `sub`). */
  identityClaim: z.string().min(1).default('sub'),
  /**
   * The explicit opt-in for a rule without `claims`: every token this issuer signs for the audience gets
   * the role. Only for an issuer of your own (never a shared CI issuer: see {@link SHARED_ISSUERS}).
   */
  anyTokenOfIssuer: z.boolean().optional(),
});
export type OidcRule = z.infer<typeof OidcRule>;

/** The `--oidc FILE` document: `{ "rules": [ … ] }`. */
export const OidcConfig = z.strictObject({ rules: z.array(OidcRule) });
export type OidcConfig = z.infer<typeof OidcConfig>;

/** A rule that would trust more than it should; raised when the control plane starts (exit 2). */
export class OidcRuleError extends MeridianError {
  constructor(message: string) {
    super('MERIDIAN_E_OIDC_RULE', message, {
      hint: 'bind each rule to your repository, e.g. claims: {repository: "acme/fleet"} (docs/server.md, docs/security.md)',
    });
  }
}

/**
 * Issuers that sign tokens for anyone's workflows: one URL for every repository of every owner. A rule for
 * one of them must pin at least one of its claims that name the repository or project, to a value without `*`.
 */
export const SHARED_ISSUERS: Readonly<Record<string, readonly string[]>> = {
  'https://token.actions.githubusercontent.com': ['repository', 'repository_id', 'repository_owner', 'repository_owner_id', 'sub'],
  'https://gitlab.com': ['project_path', 'project_id', 'namespace_path', 'namespace_id', 'sub'],
};

/** What is wrong with each rule (empty when nothing): checked at start, so that a loose rule never serves. */
export function ruleProblems(config: OidcConfig): string[] {
  const out: string[] = [];
  config.rules.forEach((r, i) => {
    const where = `rules.${i} (issuer ${r.issuer}, role ${r.role})`;
    const issuer = r.issuer.replace(/\/$/, '');
    let url: URL | null = null;
    try {
      url = new URL(issuer);
    } catch {
      out.push(`${where}: the issuer is not a URL`);
    }
    if (url && url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      out.push(`${where}: the issuer must be https:// (plain http only on loopback), or a network attacker serves the keys`);
    }
    const claims = Object.keys(r.claims ?? {});
    const shared = SHARED_ISSUERS[issuer];
    if (shared) {
      const pinned = shared.filter((c) => {
        const want = r.claims?.[c];
        const values = want === undefined ? [] : Array.isArray(want) ? want : [want];
        return values.length > 0 && values.every((v) => v !== '' && !v.includes('*'));
      });
      if (pinned.length === 0) {
        out.push(
          `${where}: ${issuer} signs tokens for every repository of every owner, so the rule must pin one of ${shared.join(', ')} to a value without *`,
        );
      }
    } else if (claims.length === 0 && r.anyTokenOfIssuer !== true) {
      out.push(
        `${where} has no claims: it would give its role to every token of ${r.issuer} for audience ${JSON.stringify(r.audience)}; ` +
          'add claims, or set anyTokenOfIssuer: true if every such token should get it',
      );
    }
  });
  return out;
}

const CLOCK_TOLERANCE_S = 30;
/** The oldest `iat` accepted (CI ID tokens live minutes); `iat` in the future beyond the skew is refused too. */
const MAX_TOKEN_AGE_S = 60 * 60;
/** The longest lifetime (`exp` − `iat`) accepted. */
const MAX_LIFETIME_S = 24 * 60 * 60;

function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(value);
}

function claimsMatch(rule: OidcRule, payload: JWTPayload): string | null {
  for (const [claim, want] of Object.entries(rule.claims)) {
    const got = payload[claim];
    if (typeof got !== 'string' && typeof got !== 'number' && typeof got !== 'boolean') return `claim ${claim} is missing`;
    const patterns = Array.isArray(want) ? want : [want];
    if (!patterns.some((p) => globMatch(p, String(got))))
      return `claim ${claim}=${JSON.stringify(got)} does not match ${patterns.join(' or ')}`;
  }
  return null;
}

/** Verifies ID tokens against the configured rules. JWKS are fetched lazily and cached per issuer. */
export class OidcVerifier {
  readonly #rules: readonly OidcRule[];
  readonly #keys = new Map<string, Promise<JWTVerifyGetKey>>();

  /** Throws {@link OidcRuleError} for a rule that trusts too much (see {@link ruleProblems}). */
  constructor(config: OidcConfig) {
    const problems = ruleProblems(config);
    if (problems.length > 0) throw new OidcRuleError(`the OIDC configuration is refused: ${problems.join('; ')}`);
    this.#rules = config.rules;
  }

  get enabled(): boolean {
    return this.#rules.length > 0;
  }

  /** The identity an ID token stands for; throws 401 saying why when no rule accepts it. */
  async identify(token: string): Promise<Identity> {
    const refuse = (why: string, cause?: unknown): ApiError =>
      new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', `the OIDC ID token is refused: ${why}`, {
        cause,
        hint: 'the control plane accepts ID tokens whose issuer, audience and claims match a rule of its --oidc configuration (docs/server.md)',
      });
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch (err) {
      throw refuse('it is not a JWT', err);
    }
    const rules = this.#rules.filter((r) => r.issuer === unverified.iss);
    if (rules.length === 0) throw refuse(`no rule trusts the issuer ${JSON.stringify(unverified.iss ?? null)}`);
    let why = '';
    for (const rule of rules) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, await this.#jwks(rule.issuer), {
          issuer: rule.issuer,
          audience: rule.audience,
          clockTolerance: CLOCK_TOLERANCE_S,
          maxTokenAge: MAX_TOKEN_AGE_S,
          requiredClaims: ['exp', 'iat'],
        }));
        const lifetime = Number(payload.exp) - Number(payload.iat);
        if (!(lifetime <= MAX_LIFETIME_S))
          throw new Error(`the token is valid for ${lifetime} s, more than the ${MAX_LIFETIME_S} s accepted`);
      } catch (err) {
        if (err instanceof ApiError) throw err;
        why = err instanceof joseErrors.JOSEError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
        continue;
      }
      const mismatch = claimsMatch(rule, payload);
      if (mismatch) {
        why = mismatch;
        continue;
      }
      const who = payload[rule.identityClaim];
      if (typeof who !== 'string' || who === '') {
        why = `claim ${rule.identityClaim} (the identity) is missing`;
        continue;
      }
      return { id: who, role: rule.role, via: `oidc:${rule.issuer}` };
    }
    throw refuse(why);
  }

  #jwks(issuer: string): Promise<JWTVerifyGetKey> {
    let p = this.#keys.get(issuer);
    if (!p) {
      p = discover(issuer).catch((err: unknown) => {
        throw err instanceof ApiError ? err : refuseIssuer(issuer, (err as Error).message);
      });
      this.#keys.set(issuer, p);
      p.catch(() => this.#keys.delete(issuer)); // try again next time
    }
    return p;
  }
}

async function discover(issuer: string): Promise<JWTVerifyGetKey> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let doc: { jwks_uri?: unknown; issuer?: unknown };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as { jwks_uri?: unknown; issuer?: unknown };
  } catch (err) {
    throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', `cannot read the OIDC discovery document ${url}: ${(err as Error).message}`, {
      cause: err,
      hint: 'the issuer must be reachable from the control plane; try again',
    });
  }
  if (typeof doc.jwks_uri !== 'string') {
    throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', `the OIDC discovery document ${url} has no jwks_uri`);
  }
  // OpenID Connect Discovery §4.3: the document's issuer must be the one asked for
  if (doc.issuer !== issuer) throw new Error(`its discovery document names the issuer ${JSON.stringify(doc.issuer ?? null)}`);
  const jwks = new URL(doc.jwks_uri);
  if (jwks.protocol !== 'https:' && !(jwks.protocol === 'http:' && isLoopbackHost(jwks.hostname))) {
    throw new Error(`its jwks_uri ${jwks.href} is not https:// (plain http only on loopback)`);
  }
  return createRemoteJWKSet(jwks);
}

function refuseIssuer(issuer: string, why: string): ApiError {
  return new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', `the OIDC ID token is refused: the issuer ${issuer} is not trusted: ${why}`, {
    hint: 'the issuer must serve /.well-known/openid-configuration naming itself as issuer, with an https jwks_uri',
  });
}
