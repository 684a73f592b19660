/** Who made a change: resolved once per command from a flag or the environment, and written into the audit log. */

/** The person or pipeline behind a change. `via` says how the identity was learnt (a flag, an env variable). */
export interface Actor {
  readonly id: string;
  readonly via?: string;
}

/** Identity sources in the order they are tried after the flag. */
const ENV_SOURCES: readonly { readonly name: string; readonly via: string }[] = [
  { name: 'MERIDIAN_ACTOR', via: 'MERIDIAN_ACTOR' },
  { name: 'GITHUB_ACTOR', via: 'github-actions' },
  { name: 'GITLAB_USER_LOGIN', via: 'gitlab-ci' },
  { name: 'USER', via: 'USER' },
  { name: 'LOGNAME', via: 'LOGNAME' },
];

/**
 * Resolves who is acting: the flag (`--actor`), else `MERIDIAN_ACTOR`, else `GITHUB_ACTOR` (via
 * github-actions), else `GITLAB_USER_LOGIN`, else `USER` / `LOGNAME`, else `unknown`. Blank values are skipped.
 */
export function resolveActor(flag?: string, env: NodeJS.ProcessEnv = process.env): Actor {
  const given = flag?.trim();
  if (given) return { id: given, via: 'flag' };
  for (const { name, via } of ENV_SOURCES) {
    const v = env[name]?.trim();
    if (v) return { id: v, via };
  }
  return { id: 'unknown', via: 'unknown' };
}
