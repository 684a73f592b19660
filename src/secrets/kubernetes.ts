/**
 * `k8s:NAMESPACE/NAME#KEY`: a key of a Kubernetes Secret. Reads `GET /api/v1/namespaces/NS/secrets/NAME`
 * with a bearer token and checks that `data` (or `stringData`) has KEY; the values are dropped at once.
 */
import { getJson } from './http.js';
import type { SecretLookup } from './presence.js';

/** The API server of a cluster and how to authenticate; the token comes from an environment variable. */
export interface KubernetesSettings {
  readonly server: string;
  readonly token: string;
  readonly tokenSource: string;
  readonly ca?: string;
}

type Doc = { readonly keys: ReadonlySet<string> } | 'missing' | { readonly error: string };

export class KubernetesSecretStore {
  private readonly cache = new Map<string, Promise<Doc>>();
  constructor(private readonly timeoutMs = 5000) {}

  async has(settings: KubernetesSettings, namespace: string, name: string, key: string): Promise<SecretLookup> {
    const id = `${settings.server}|${settings.tokenSource}|${namespace}/${name}`;
    let doc = this.cache.get(id);
    if (!doc) {
      doc = this.read(settings, namespace, name);
      this.cache.set(id, doc);
    }
    const d = await doc;
    if (d === 'missing') return 'missing';
    if ('error' in d) return { error: d.error };
    return d.keys.has(key) ? 'present' : 'missing';
  }

  get reads(): number {
    return this.cache.size;
  }

  private async read(s: KubernetesSettings, namespace: string, name: string): Promise<Doc> {
    const base = s.server.replace(/\/+$/, '');
    const url = `${base}/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`;
    const r = await getJson(url, {
      headers: { authorization: `Bearer ${s.token}` },
      timeoutMs: this.timeoutMs,
      ...(s.ca ? { ca: s.ca } : {}),
    });
    const where = `Kubernetes API at ${base} (secret ${namespace}/${name})`;
    if ('error' in r) return { error: `${where}: ${r.error}` };
    if (r.status === 404) return 'missing';
    if (r.status === 401 || r.status === 403)
      return {
        error: `${where}: permission denied (HTTP ${r.status}); the token in ${s.tokenSource} needs \`get\` on secrets in ${namespace}`,
      };
    if (r.status !== 200) return { error: `${where}: HTTP ${r.status}` };
    const body = r.json as { kind?: unknown; data?: unknown; stringData?: unknown } | null;
    if (!body || body.kind !== 'Secret') return { error: `${where}: the answer is not a Secret` };
    const keys = new Set<string>();
    for (const part of [body.data, body.stringData]) {
      if (part && typeof part === 'object' && !Array.isArray(part)) for (const k of Object.keys(part)) keys.add(k);
    }
    return { keys };
  }
}
