/**
 * `vault:MOUNT/PATH#KEY`: HashiCorp Vault KV version 2. Reads `GET /v1/MOUNT/data/PATH` with
 * `X-Vault-Token` and checks that `data.data` has KEY; the values are dropped at once. Each secret
 * path is read once per Vault (address, namespace, token) however many clusters refer to it.
 */
import { getJson } from './http.js';
import type { SecretLookup } from './presence.js';

/** Where a cluster's Vault is and how to authenticate; the token comes from an environment variable. */
export interface VaultSettings {
  readonly address: string;
  readonly token: string;
  /** Names where the token came from (for the cache key and messages), e.g. `VAULT_TOKEN`. */
  readonly tokenSource: string;
  /** Vault Enterprise namespace (`X-Vault-Namespace`). */
  readonly namespace?: string;
  readonly ca?: string;
}

type Doc = { readonly keys: ReadonlySet<string> } | 'missing' | { readonly error: string };

export class VaultSecretStore {
  private readonly cache = new Map<string, Promise<Doc>>();
  constructor(private readonly timeoutMs = 5000) {}

  async has(settings: VaultSettings, mount: string, path: string, key: string): Promise<SecretLookup> {
    const id = `${settings.address}|${settings.namespace ?? ''}|${settings.tokenSource}|${mount}/${path}`;
    let doc = this.cache.get(id);
    if (!doc) {
      doc = this.read(settings, mount, path);
      this.cache.set(id, doc);
    }
    const d = await doc;
    if (d === 'missing') return 'missing';
    if ('error' in d) return { error: d.error };
    return d.keys.has(key) ? 'present' : 'missing';
  }

  /** How many secret paths were read (for tests of the cache). */
  get reads(): number {
    return this.cache.size;
  }

  private async read(s: VaultSettings, mount: string, path: string): Promise<Doc> {
    const base = s.address.replace(/\/+$/, '');
    const url = `${base}/v1/${encodeSegments(mount)}/data/${encodeSegments(path)}`;
    const headers: Record<string, string> = { 'x-vault-token': s.token };
    if (s.namespace) headers['x-vault-namespace'] = s.namespace;
    const r = await getJson(url, { headers, timeoutMs: this.timeoutMs, ...(s.ca ? { ca: s.ca } : {}) });
    const where = `Vault at ${base} (${mount}/${path})`;
    if ('error' in r) return { error: `${where}: ${r.error}` };
    if (r.status === 404) return 'missing'; // no such secret, or its latest version is deleted
    if (r.status === 401 || r.status === 403)
      return { error: `${where}: permission denied (HTTP ${r.status}); check the token in ${s.tokenSource} and its policy` };
    if (r.status !== 200) return { error: `${where}: HTTP ${r.status}` };
    const data = (r.json as { data?: { data?: unknown } } | null)?.data?.data;
    if (data === null || data === undefined) return 'missing';
    if (typeof data !== 'object' || Array.isArray(data))
      return { error: `${where}: not a KV version 2 secret (is ${mount} a KV v2 mount?)` };
    return { keys: new Set(Object.keys(data)) };
  }
}

function encodeSegments(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}
