/**
 * OIDC ID tokens (for example GitHub Actions' `id-token`): accepted when a configured rule's issuer,
 * audience and claim rules match, with the signature verified against the issuer's JWKS (found through
 * its `/.well-known/openid-configuration`). The rule grants a role; the identity is one of the claims.
 */
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ApiError } from '../api-error.js';
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
});
export type OidcRule = z.infer<typeof OidcRule>;

/** The `--oidc FILE` document: `{ "rules": [ … ] }`. */
export const OidcConfig = z.strictObject({ rules: z.array(OidcRule) });
export type OidcConfig = z.infer<typeof OidcConfig>;

const CLOCK_TOLERANCE_S = 30;

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

  constructor(config: OidcConfig) {
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
          requiredClaims: ['exp', 'iat'],
        }));
      } catch (err) {
        if (err instanceof ApiError) throw err;
        why = err instanceof joseErrors.JOSEError ? `${err.code}: ${err.message}` : String(err);
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
      p = discover(issuer);
      this.#keys.set(issuer, p);
      p.catch(() => this.#keys.delete(issuer)); // try again next time
    }
    return p;
  }
}

async function discover(issuer: string): Promise<JWTVerifyGetKey> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let doc: { jwks_uri?: unknown };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as { jwks_uri?: unknown };
  } catch (err) {
    throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', `cannot read the OIDC discovery document ${url}: ${(err as Error).message}`, {
      cause: err,
      hint: 'the issuer must be reachable from the control plane; try again',
    });
  }
  if (typeof doc.jwks_uri !== 'string') {
    throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', `the OIDC discovery document ${url} has no jwks_uri`);
  }
  return createRemoteJWKSet(new URL(doc.jwks_uri));
}
