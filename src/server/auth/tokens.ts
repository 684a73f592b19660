/**
 * API tokens: `mrd_<id>_<secret>` with 256 random bits of secret. The store keeps only the SHA-256 of
 * the whole token (enough for a high-entropy secret: no salt or slow hash is needed), so a copy of the
 * store does not let anyone in.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ApiError } from '../api-error.js';
import type { ApiTokenRecord, Actor, Store } from '../../store/store.js';
import { type Identity, isRole, type Role, ROLES } from './roles.js';

const PREFIX = 'mrd_';

/** The longest lifetime a token may be given: ten years, in hours (a longer one is refused, not clamped). */
export const MAX_TOKEN_LIFETIME_HOURS = 87_600;
const SHAPE = /^mrd_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$/;

/** SHA-256 (hex) of a token. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** True when `bearer` has the shape of an API token (not an OIDC ID token). */
export function isApiToken(bearer: string): boolean {
  return bearer.startsWith(PREFIX);
}

/** A new token and the record to store for it. The token itself is shown once and never stored. */
export function newApiToken(
  name: string,
  role: Role,
  by: Actor,
  opts: { now?: Date; expiresAt?: string | null } = {},
): { token: string; record: Omit<ApiTokenRecord, 'revokedAt' | 'revokedBy'> } {
  if (!isRole(role))
    throw new ApiError('MERIDIAN_E_API_INVALID', `unknown role ${JSON.stringify(role)}`, { hint: `use one of ${ROLES.join(', ')}` });
  const id = Array.from(randomBytes(10), (b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
  const token = `${PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  return {
    token,
    record: {
      id,
      name,
      role,
      hash: tokenHash(token),
      createdAt: (opts.now ?? new Date()).toISOString(),
      createdBy: by.id,
      expiresAt: opts.expiresAt ?? null,
    },
  };
}

/** Resolves an API token to its identity; throws 401 when it is unknown, revoked or expired. */
export async function identifyApiToken(store: Store, token: string, now: Date): Promise<Identity> {
  const refuse = (why: string): ApiError =>
    new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', `the API token is ${why}`, {
      hint: 'create one with `meridian token create --role viewer --name NAME` and send it as `Authorization: Bearer mrd_…`',
    });
  if (!SHAPE.test(token)) throw refuse('malformed');
  const rec = await store.apiTokenByHash(tokenHash(token));
  if (!rec) throw refuse('not known to this control plane');
  if (rec.revokedAt !== null) throw refuse(`revoked (since ${rec.revokedAt} by ${rec.revokedBy ?? '?'})`);
  if (rec.expiresAt !== null && Date.parse(rec.expiresAt) <= now.getTime()) throw refuse(`expired (at ${rec.expiresAt})`);
  if (!isRole(rec.role)) throw refuse(`for an unknown role ${rec.role}`);
  return { id: rec.name, role: rec.role, via: `token:${rec.id}` };
}
