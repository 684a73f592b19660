/**
 * The default {@link SecretPresence}: parses a reference and asks the provider it names. Stores are
 * configured per cluster from its `target` (`vault: {address, tokenEnv, namespace, caFile}`,
 * `kubernetes: {server, tokenEnv, caFile}`), else from the environment (`VAULT_ADDR`, `VAULT_TOKEN`,
 * `KUBERNETES_SERVER`, `KUBERNETES_TOKEN`). Tokens are only ever read from environment variables.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { EnvSecretStore } from './env.js';
import { FileSecretStore } from './file.js';
import { type KubernetesSettings, KubernetesSecretStore } from './kubernetes.js';
import type { SecretContext, SecretLookup, SecretPresence, StoreTargets } from './presence.js';
import { parseSecretRef } from './ref.js';
import { type VaultSettings, VaultSecretStore } from './vault.js';

export type { SecretContext, SecretLookup, SecretPresence, StoreTargets } from './presence.js';
export { parseSecretRef, type SecretRef, type SecretProvider } from './ref.js';

export interface SecretPresenceOptions {
  /** Each cluster's `target`, where Vault and Kubernetes settings live. */
  readonly clusters?: StoreTargets;
  /** The environment `env:` refers to and tokens come from (default: `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Per-request timeout for Vault and Kubernetes, in ms (default 5000). */
  readonly timeoutMs?: number;
}

/** The stores behind the default presence, exposed for tests of the per-ref cache. */
export interface DefaultSecretPresence extends SecretPresence {
  readonly stores: { readonly file: FileSecretStore; readonly vault: VaultSecretStore; readonly k8s: KubernetesSecretStore };
}

function record(v: unknown): Readonly<Record<string, unknown>> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function createSecretPresence(opts: SecretPresenceOptions = {}): DefaultSecretPresence {
  const env = opts.env ?? process.env;
  const envStore = new EnvSecretStore(env);
  const file = new FileSecretStore();
  const vault = new VaultSecretStore(opts.timeoutMs);
  const k8s = new KubernetesSecretStore(opts.timeoutMs);
  const cas = new Map<string, string | { error: string }>();
  const readCa = (path: string, fleetDir: string): string | { error: string } => {
    const abs = isAbsolute(path) ? path : resolve(fleetDir, path);
    let ca = cas.get(abs);
    if (ca === undefined) {
      try {
        ca = readFileSync(abs, 'utf8');
      } catch {
        ca = { error: `the CA file ${path} cannot be read` };
      }
      cas.set(abs, ca);
    }
    return ca;
  };
  const target = (cluster: string): Readonly<Record<string, unknown>> => record(opts.clusters?.[cluster]?.target) ?? {};

  const vaultSettings = (ctx: SecretContext): VaultSettings | { error: string } => {
    const t = record(target(ctx.cluster)['vault']) ?? {};
    const address = str(t['address']) ?? str(env['VAULT_ADDR']);
    if (!address) return { error: `no Vault address: set target.vault.address or VAULT_ADDR` };
    const tokenSource = str(t['tokenEnv']) ?? 'VAULT_TOKEN';
    const token = str(env[tokenSource]);
    if (!token) return { error: `no Vault token: set the environment variable ${tokenSource}` };
    const namespace = str(t['namespace']) ?? str(env['VAULT_NAMESPACE']);
    const caFile = str(t['caFile']) ?? str(env['VAULT_CACERT']);
    const ca = caFile ? readCa(caFile, ctx.fleetDir) : undefined;
    if (ca && typeof ca === 'object') return ca;
    return { address, token, tokenSource, ...(namespace ? { namespace } : {}), ...(ca ? { ca } : {}) };
  };

  const k8sSettings = (ctx: SecretContext): KubernetesSettings | { error: string } => {
    const all = target(ctx.cluster);
    const t = record(all['kubernetes']) ?? {};
    const server = str(t['server']) ?? str(all['server']) ?? str(env['KUBERNETES_SERVER']);
    if (!server) return { error: `no Kubernetes API server: set target.kubernetes.server or KUBERNETES_SERVER` };
    const tokenSource = str(t['tokenEnv']) ?? 'KUBERNETES_TOKEN';
    const token = str(env[tokenSource]);
    if (!token) return { error: `no Kubernetes token: set the environment variable ${tokenSource}` };
    const caFile = str(t['caFile']) ?? str(env['KUBERNETES_CA_FILE']);
    const ca = caFile ? readCa(caFile, ctx.fleetDir) : undefined;
    if (ca && typeof ca === 'object') return ca;
    return { server, token, tokenSource, ...(ca ? { ca } : {}) };
  };

  return {
    stores: { file, vault, k8s },
    async has(ref: string, ctx: SecretContext): Promise<SecretLookup> {
      const r = parseSecretRef(ref);
      if ('error' in r) return { error: r.error };
      switch (r.provider) {
        case 'env':
          return envStore.has(r.name);
        case 'file':
          return file.has(r.path, r.key, ctx.fleetDir);
        case 'vault': {
          const s = vaultSettings(ctx);
          return 'error' in s ? { error: s.error } : vault.has(s, r.mount, r.path, r.key);
        }
        case 'k8s': {
          const s = k8sSettings(ctx);
          return 'error' in s ? { error: s.error } : k8s.has(s, r.namespace, r.name, r.key);
        }
      }
    },
  };
}
