/** Resolves the bearer of a request to an identity: the local admin token, an API token, or an OIDC ID token. */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Store } from '../../store/store.js';
import { ApiError } from '../api-error.js';
import { isLoopbackAddress } from '../host-check.js';
import type { OidcVerifier } from './oidc.js';
import { allows, type Identity, type Permission, rolesFor } from './roles.js';
import { identifyApiToken, isApiToken } from './tokens.js';

export interface AuthOptions {
  readonly store: Store;
  readonly oidc?: OidcVerifier | undefined;
  /** A token held only in memory that acts as admin (what `meridian up` prints in the dashboard URL). */
  readonly localAdmin?: { readonly token: string; readonly id: string } | undefined;
  readonly now?: () => Date;
}

/**
 * The bearer of a request: `Authorization: Bearer …`; with `allowQuery` (only the event stream, for
 * EventSource, which cannot set headers) also `?access_token=`. Anywhere else a query token is refused
 * rather than ignored, so that a client learns to stop putting tokens into URLs (they end up in logs).
 */
export function bearerOf(req: IncomingMessage, url: URL, allowQuery = false): string | null {
  const h = req.headers.authorization;
  if (h !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m?.[1] ?? null;
  }
  if (!url.searchParams.has('access_token')) return null;
  if (allowQuery) return url.searchParams.get('access_token');
  throw new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', '?access_token= is accepted only by the event stream (GET /api/v1/events)', {
    hint: 'send the token as `Authorization: Bearer <token>`: tokens in URLs end up in proxy logs and browser history',
  });
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Authenticates requests. */
export class Authenticator {
  constructor(private readonly opts: AuthOptions) {}

  /**
   * The identity behind a bearer; 401 when there is none or it is refused. `peer` is the client's address:
   * the local admin token is accepted only from loopback (it is meant for the person at this machine).
   */
  async identify(bearer: string | null, peer?: string): Promise<Identity> {
    if (bearer === null || bearer === '') {
      throw new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', 'this call needs a bearer token', {
        hint: 'send `Authorization: Bearer <token>`; create a token with `meridian token create --role viewer --name NAME`',
      });
    }
    const local = this.opts.localAdmin;
    if (local && sameSecret(bearer, local.token)) {
      if (peer === undefined || isLoopbackAddress(peer)) return { id: local.id, role: 'admin', via: 'local' };
      throw new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', `the local admin token is accepted only from this machine, not from ${peer}`, {
        hint: 'create a token for remote use with `meridian token create --role ROLE --name NAME`',
      });
    }
    if (isApiToken(bearer)) return identifyApiToken(this.opts.store, bearer, (this.opts.now ?? (() => new Date()))());
    if (this.opts.oidc?.enabled && bearer.split('.').length === 3) return this.opts.oidc.identify(bearer);
    throw new ApiError('MERIDIAN_E_API_UNAUTHENTICATED', 'the bearer token is neither an API token (mrd_…) nor an accepted OIDC ID token', {
      hint: 'create a token with `meridian token create`, or configure OIDC rules with `meridian serve --oidc FILE`',
    });
  }
}

/** Throws 403 unless the identity may do `permission`. */
export function authorize(identity: Identity, permission: Permission, what: string): void {
  if (allows(identity.role, permission)) return;
  throw new ApiError('MERIDIAN_E_API_FORBIDDEN', `${identity.id} (role ${identity.role}) may not ${what}`, {
    hint: `this needs the role ${rolesFor(permission).join(' or ')}`,
  });
}
