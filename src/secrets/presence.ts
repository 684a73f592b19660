/**
 * The one interface preflight uses to ask a secret store whether a key exists — never for its value.
 * Every provider (env, file, vault, k8s) answers through it.
 */

/** The answer: the key is there, it is not, or the store could not be asked (fail closed). */
export type SecretLookup = 'present' | 'missing' | { readonly error: string };

/** Which cluster asks, and the fleet directory that relative `file:` paths start from. */
export interface SecretContext {
  readonly cluster: string;
  readonly fleetDir: string;
}

/** Asks whether a referenced secret exists in the store a cluster uses. */
export interface SecretPresence {
  has(ref: string, ctx: SecretContext): Promise<SecretLookup>;
}

/** Settings a cluster's `target` may give for its stores (tokens come from environment variables only). */
export interface StoreTargets {
  readonly [cluster: string]: { readonly target?: Readonly<Record<string, unknown>> | null } | undefined;
}
