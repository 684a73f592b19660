/**
 * Built-in rule `no-literal-secrets`: a secret is only ever a reference. Secret-looking literals in a
 * service's env and config (and its overrides), in region and cluster params, and in cluster targets
 * are findings at the value's node, with the value masked.
 */
import type { CheckContext } from '../context.js';
import { type Finding, formatPath } from '../../findings/finding.js';
import { looksLikeSecret, maskSecret } from '../../secrets/secret-scan.js';

interface Scanned {
  readonly path: PropertyKey[];
  readonly key: string;
  readonly value: string;
  readonly target: Finding['target'];
}

function strings(root: unknown, path: PropertyKey[], out: { path: PropertyKey[]; key: string; value: string }[]): void {
  if (typeof root === 'string') {
    out.push({ path, key: String(path[path.length - 1] ?? ''), value: root });
    return;
  }
  if (Array.isArray(root)) root.forEach((v, i) => strings(v, [...path, i], out));
  else if (root && typeof root === 'object') for (const [k, v] of Object.entries(root)) strings(v, [...path, k], out);
}

export function checkNoLiteralSecrets(ctx: CheckContext): Finding[] {
  if (!ctx.rules.has('no-literal-secrets')) return [];
  const scan: Scanned[] = [];
  const collect = (value: unknown, path: PropertyKey[], target: Finding['target']): void => {
    const found: { path: PropertyKey[]; key: string; value: string }[] = [];
    strings(value, path, found);
    for (const f of found) scan.push({ ...f, target });
  };
  for (const [service, s] of Object.entries(ctx.fleet.services)) {
    for (const field of ['env', 'config'] as const) {
      for (const [k, v] of Object.entries(s[field] ?? {}))
        if (typeof v === 'string') scan.push({ path: ['services', service, field, k], key: k, value: v, target: { service } });
      s.overrides?.forEach((o, i) => {
        for (const [k, v] of Object.entries(o.set[field] ?? {}))
          if (typeof v === 'string')
            scan.push({ path: ['services', service, 'overrides', i, 'set', field, k], key: k, value: v, target: { service } });
      });
    }
  }
  for (const [region, r] of Object.entries(ctx.fleet.regions)) collect(r.params, ['regions', region, 'params'], { region });
  for (const [cluster, c] of Object.entries(ctx.fleet.clusters)) {
    collect(c.params, ['clusters', cluster, 'params'], { cluster, region: c.region });
    collect(c.target, ['clusters', cluster, 'target'], { cluster, region: c.region });
  }

  const findings: Finding[] = [];
  for (const item of scan) {
    const hit = looksLikeSecret(item.key, item.value);
    if (!hit) continue;
    const path = formatPath(item.path);
    findings.push({
      code: 'MERIDIAN_E_LITERAL_SECRET',
      severity: 'error',
      rule: 'no-literal-secrets',
      message: `${path} holds what looks like a literal secret: ${hit.reason} (value ${maskSecret(item.value.trim())})`,
      path,
      ...ctx.at(item.path),
      fix: fixFor(item),
      ...(item.target ? { target: item.target } : {}),
      ...(item.target?.cluster ? { clusters: [item.target.cluster] } : {}),
    });
  }
  return findings;
}

function fixFor(item: Scanned): string {
  const rotate = "then rotate it: it is in the repository's history";
  if (item.path[0] === 'clusters' && item.path[2] === 'target') {
    return `remove it from the fleet: store credentials come from environment variables (name one with tokenEnv, e.g. target.vault.tokenEnv: VAULT_TOKEN_US); ${rotate}`;
  }
  if (item.path[0] === 'services') {
    return `put the value in a secret store and reference it under the service's secrets: (e.g. ${item.key}: { ref: "vault:kv/path#key" }, a file: or an env: reference); ${rotate}`;
  }
  return `params are not secret: put the value in a secret store and reference it under a service's secrets: instead; ${rotate}`;
}
