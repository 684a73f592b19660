/**
 * The answers the router gives by itself (no route, no healthy cluster, residency, timeouts, upstream
 * errors): a small JSON body naming the reason, the client, the clusters tried, the table and snapshot,
 * with the reason in `x-meridian-reason` too.
 */
import { residencyRule } from '../routing/index.js';
import type { Exchange } from './exchange.js';
import type { ServiceRuntime } from './snapshot.js';
import type { Upstream } from './upstream.js';

/** Why residency leaves no cluster for `x`: the message and the rule that decided it (jurisdiction, allowed, mode). */
export function residencyRejection(x: Exchange): { message: string; extra: Record<string, unknown> } {
  const t = x.svc.table;
  const s = t.serviceIndex.get(x.svc.name) ?? 0;
  const hi = x.home === null ? -1 : (t.model.regionIndex.get(x.home) ?? -1);
  const jurisdiction = hi < 0 ? null : (t.model.regionJurisdiction[hi] ?? null);
  const { rule } = residencyRule(t.model.policies[s]?.residency ?? {}, jurisdiction);
  const allowed = rule?.allow ?? [];
  return {
    message: `no cluster in ${allowed.join(', ') || 'the allowed jurisdictions'} can serve ${x.svc.name} for a client ${x.country ? `from ${x.country}` : 'of unknown country'} (${jurisdiction ?? 'no jurisdiction'}), and residency mode ${rule?.mode ?? 'lock'} forbids serving it from anywhere else`,
    extra: { jurisdiction, allowed, mode: rule?.mode ?? 'lock' },
  };
}

/**
 * Writes the router's own answer to `x`'s client (unless the response has started or the client is
 * gone). `up`: the last endpoint tried (null when none was), which lists the clusters tried.
 */
export function writeAnswer(
  x: Exchange,
  status: number,
  reason: string,
  message: string,
  up: Upstream | null,
  extra: Record<string, unknown>,
): void {
  const res = x.res;
  const svc = x.svc as ServiceRuntime | undefined;
  const body = JSON.stringify({
    error: reason,
    message,
    service: svc?.name ?? null,
    client: { country: x.country || null, region: x.home },
    ...extra,
    tried: up === null ? [] : [...new Set([...(x.excluded ?? []), x.clusterIndex])].map((c) => svc?.table.clusters[c] ?? null),
    table: svc?.table.id ?? null,
    snapshot: x.snap.version,
  });
  if (!res.headersSent && !res.destroyed) {
    const h: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-meridian-reason': reason,
    };
    if (x.setCookie !== null) h['set-cookie'] = x.setCookie;
    res.writeHead(status, h);
    res.end(body);
  }
}
