/**
 * Secret references: `env:NAME`, `file:PATH#KEY`, `vault:MOUNT/PATH#KEY`, `k8s:NAMESPACE/NAME#KEY`.
 * A reference names where a secret lives; it never holds the secret.
 */

export type SecretRef =
  | { readonly provider: 'env'; readonly name: string }
  | { readonly provider: 'file'; readonly path: string; readonly key: string }
  | { readonly provider: 'vault'; readonly mount: string; readonly path: string; readonly key: string }
  | { readonly provider: 'k8s'; readonly namespace: string; readonly name: string; readonly key: string };

export type SecretProvider = SecretRef['provider'];

/** Parses a reference; returns `{ error }` saying what is wrong with it. */
export function parseSecretRef(ref: string): SecretRef | { error: string } {
  const m = /^(env|file|vault|k8s):([^#\s]+)(?:#([^#\s]+))?$/.exec(ref);
  if (!m)
    return {
      error: `${JSON.stringify(ref)} is not a reference like env:NAME, file:PATH#KEY, vault:MOUNT/PATH#KEY or k8s:NAMESPACE/NAME#KEY`,
    };
  const provider = m[1] as SecretProvider;
  const body = m[2] as string;
  const key = m[3];
  switch (provider) {
    case 'env':
      if (key !== undefined) return { error: `env:${body}#${key}: an env reference names a variable and has no #KEY` };
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(body))
        return { error: `env:${body}: ${JSON.stringify(body)} is not an environment variable name` };
      return { provider, name: body };
    case 'file':
      if (key === undefined) return { error: `file:${body}: name the key, like file:${body}#DB_PASSWORD` };
      if (body.startsWith('/') || /^[A-Za-z]:[\\/]/.test(body) || body.split(/[\\/]/).includes('..'))
        return { error: `file:${body}: a file: path is relative and stays inside the fleet directory (no leading / and no ..)` };
      return { provider, path: body, key };
    case 'vault': {
      if (key === undefined) return { error: `vault:${body}: name the key, like vault:${body}#password` };
      const slash = body.indexOf('/');
      if (slash <= 0 || slash === body.length - 1) return { error: `vault:${body}: write MOUNT/PATH, like vault:kv/web/db#password` };
      return { provider, mount: body.slice(0, slash), path: body.slice(slash + 1), key };
    }
    case 'k8s': {
      if (key === undefined) return { error: `k8s:${body}: name the key, like k8s:${body}#password` };
      const parts = body.split('/');
      const dns = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
      if (parts.length !== 2 || !dns.test(parts[0] ?? '') || !dns.test(parts[1] ?? '')) {
        return { error: `k8s:${body}: write NAMESPACE/NAME (lowercase DNS names), like k8s:shop/web-db#password` };
      }
      return { provider, namespace: parts[0] as string, name: parts[1] as string, key };
    }
  }
}
