/**
 * Secret presence: every secret a service references exists in the store of every cluster that runs
 * it. The store is asked whether the key exists, never for its value; a store that cannot be asked is
 * a finding too (fail closed), distinct from a missing key.
 */
import { parseSecretRef } from '../../secrets/ref.js';
import type { SecretLookup, SecretPresence } from '../../secrets/presence.js';
import { type CheckContext, valueAt } from '../context.js';
import type { Finding } from '../../findings/finding.js';

/** How many store lookups run at once. */
const CONCURRENCY = 16;

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Ask {
  readonly cluster: string;
  readonly region: string;
  readonly service: string;
  readonly name: string;
  readonly ref: string;
}

export async function checkSecrets(ctx: CheckContext, presence: SecretPresence): Promise<Finding[]> {
  const asks: Ask[] = [];
  for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
    for (const [service, s] of Object.entries(c.services)) {
      for (const [name, { ref }] of Object.entries(s.secrets)) {
        if (ref.includes('${')) continue; // an unresolved placeholder, reported by render
        asks.push({ cluster, region: c.region, service, name, ref });
      }
    }
  }
  // Ask the store once per distinct reference and cluster context: a thousand clusters sharing one
  // `env:` or `file:` reference are one question each, not a thousand awaits of the same answer.
  const distinct = new Map<string, Ask>();
  for (const a of asks) {
    const key = a.ref.startsWith('env:') || a.ref.startsWith('file:') ? a.ref : `${a.cluster}\u0000${a.ref}`;
    if (!distinct.has(key)) distinct.set(key, a);
  }
  const byKey = new Map<string, SecretLookup>();
  await pool([...distinct.entries()], CONCURRENCY, async ([key, a]) => {
    if ('error' in parseSecretRef(a.ref)) return;
    let answer: SecretLookup;
    try {
      answer = await presence.has(a.ref, { cluster: a.cluster, fleetDir: ctx.loaded.dir });
    } catch (err) {
      answer = { error: err instanceof Error ? err.message : String(err) };
    }
    byKey.set(key, answer);
  });
  const answerOf = (a: Ask): SecretLookup | undefined =>
    byKey.get(a.ref.startsWith('env:') || a.ref.startsWith('file:') ? a.ref : `${a.cluster}\u0000${a.ref}`);

  const findings: Finding[] = [];
  for (const a of asks) {
    const early = answerOf(a);
    if (early === 'present') continue; // the common case: nothing to locate
    const o = ctx.origin(a.cluster, a.service, `secrets.${a.name}`);
    const segments = [...o.segments, 'ref'];
    const at = ctx.at(segments);
    const written = valueAt(ctx.fleet, segments);
    const shown = typeof written === 'string' ? written : a.ref;
    const base = {
      severity: 'error' as const,
      path: `${o.path}.ref`,
      ...(at.location ? at : o.location ? { location: o.location } : {}),
      target: { service: a.service, cluster: a.cluster, region: a.region },
    };
    const parsed = parseSecretRef(a.ref);
    if ('error' in parsed) {
      findings.push({
        ...base,
        code: 'MERIDIAN_E_SECRET_REF_INVALID',
        message: `the secret ${a.name} of ${a.service} has an invalid reference: ${parsed.error}`,
        fix: 'write env:NAME, file:PATH#KEY, vault:MOUNT/PATH#KEY or k8s:NAMESPACE/NAME#KEY',
      });
      continue;
    }
    const answer = early;
    if (answer === undefined) continue;
    if (answer === 'missing') {
      findings.push({
        ...base,
        code: 'MERIDIAN_E_SECRET_MISSING',
        message: `the secret ${a.name} of ${a.service} (${shown}) does not exist in the store`,
        fix: fixFor(parsed.provider, shown),
      });
    } else {
      findings.push({
        ...base,
        code: 'MERIDIAN_E_SECRET_STORE_UNAVAILABLE',
        message: `cannot tell whether the secret ${a.name} of ${a.service} (${shown}) exists: ${answer.error}`,
        fix:
          parsed.provider === 'file'
            ? `create the file with the key (the path is relative to the fleet directory), or fix the reference ${shown}; preflight fails closed until it can look`
            : 'make the store reachable from where validate runs (address, token, network), then run validate again; preflight fails closed until it can ask',
      });
    }
  }
  return findings;
}

function fixFor(provider: string, ref: string): string {
  switch (provider) {
    case 'env':
      return `set ${ref.slice(4)} in the environment where the driver runs, or point the reference at another store`;
    case 'file':
      return `add the key to the file (${ref.slice(5)}) for this cluster, or fix the reference`;
    case 'vault':
      return `write the key to Vault (\`vault kv patch ${ref.slice(6).replace('#', ' ')}=…\`), or fix the reference`;
    default:
      return `add the key to the Kubernetes Secret (${ref.slice(4)}), or fix the reference`;
  }
}
