/**
 * Who drives a rollout, vouched for by the control plane: with `--server URL`, the bearer token in
 * MERIDIAN_SERVER_TOKEN (an API token, or a CI's OIDC ID token that `meridian serve --oidc` trusts) is
 * shown to the server's `GET /api/v1/whoami`, and the identity it answers — with how it was learnt, e.g.
 * `oidc:https://token.actions.githubusercontent.com` — is the actor of every audit entry the rollout
 * writes. The token must carry a role that drives rollouts (deployer or admin). Without `--server`, the
 * actor comes from `--actor` or the environment, as before.
 */
import { RolloutError, UsageError } from '../errors.js';
import { resolveActor } from '../store/actor.js';
import type { Actor } from '../store/store.js';
import type { Io } from './io.js';

/** The flags that say who acts. */
export interface ActorFlags {
  readonly actor?: string | undefined;
  readonly server?: string | undefined;
}

interface Whoami {
  readonly identity: string;
  readonly via: string;
  readonly roles: readonly string[];
}

/** Roles that may drive a rollout (docs/server.md: a deployer drives them; an approver does not). */
const DRIVERS = ['deployer', 'admin'];

/** The actor of a command that drives a rollout: the identity the control plane vouches for, or {@link resolveActor}. */
export async function driverActor(flags: ActorFlags, io: Io): Promise<Actor> {
  if (flags.server === undefined) return resolveActor(flags.actor, io.env);
  if (flags.actor !== undefined)
    throw new UsageError('--actor and --server exclude each other', 'with --server, the control plane names who acts from the token');
  const token = io.env['MERIDIAN_SERVER_TOKEN']?.trim();
  if (!token)
    throw new UsageError(
      '--server needs a bearer token in MERIDIAN_SERVER_TOKEN',
      "an API token of role deployer (`meridian token create --role deployer --name ci`), or the CI's OIDC ID token (docs/ci.md)",
    );
  let url: URL;
  try {
    url = new URL('api/v1/whoami', flags.server.endsWith('/') ? flags.server : `${flags.server}/`);
  } catch {
    throw new UsageError(`--server must be an http(s) URL, not ${JSON.stringify(flags.server)}`);
  }
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new RolloutError('MERIDIAN_E_ROLLOUT_SERVER', `the control plane at ${flags.server} does not answer (${String(err)})`, {
      cause: err,
    });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const e = (body as { error?: { code?: string; message?: string; hint?: string | null } } | undefined)?.error;
    throw new RolloutError(
      'MERIDIAN_E_ROLLOUT_IDENTITY',
      `the control plane at ${flags.server} refused the token in MERIDIAN_SERVER_TOKEN (${res.status}${e?.code ? ` ${e.code}` : ''}): ${e?.message ?? text.slice(0, 200)}`,
      e?.hint ? { hint: e.hint } : {},
    );
  }
  const who = body as Partial<Whoami> | undefined;
  if (typeof who?.identity !== 'string' || typeof who.via !== 'string' || !Array.isArray(who.roles)) {
    throw new RolloutError('MERIDIAN_E_ROLLOUT_SERVER', `${url.href} answered something other than an identity: ${text.slice(0, 200)}`);
  }
  if (!who.roles.some((r) => DRIVERS.includes(r))) {
    throw new RolloutError(
      'MERIDIAN_E_ROLLOUT_IDENTITY',
      `${who.identity} (${who.via}, role ${who.roles.join(', ')}) may not drive rollouts`,
      { hint: `this needs the role ${DRIVERS.join(' or ')}: change the token, or the OIDC rule that gives its role` },
    );
  }
  return { id: who.identity, via: who.via };
}
