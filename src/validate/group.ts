/**
 * Deduplication: checks report a problem once per cluster it shows up on; this merges the findings
 * that are the same problem at the same place into one that names a few clusters and the count.
 */
import { fewOf } from './context.js';
import type { Finding } from '../findings/finding.js';

function groupKey(f: Finding): string {
  return JSON.stringify([
    f.code,
    f.severity,
    f.message,
    f.path ?? null,
    f.location ?? null,
    f.fix ?? null,
    f.rule ?? null,
    f.check ?? null,
    f.target?.service ?? null,
    f.waivedBy ?? null,
  ]);
}

/**
 * Merges per-cluster findings (those with `target.cluster` and no `clusters` yet) that differ only in
 * their cluster. The merged message ends with where: `(on eu-west-1)` or
 * `(on 300 clusters: a, b, c and 297 more)`. Other findings pass through unchanged. Order is kept.
 */
export function groupFindings(findings: readonly Finding[]): Finding[] {
  const out: (Finding | { key: string; items: Finding[] })[] = [];
  const groups = new Map<string, { key: string; items: Finding[] }>();
  for (const f of findings) {
    if (f.clusters !== undefined || f.target?.cluster === undefined) {
      out.push(f);
      continue;
    }
    const key = groupKey(f);
    let g = groups.get(key);
    if (!g) {
      g = { key, items: [] };
      groups.set(key, g);
      out.push(g);
    }
    g.items.push(f);
  }
  return out.map((x) => ('items' in x ? merge(x.items) : x));
}

function merge(items: readonly Finding[]): Finding {
  const first = items[0] as Finding;
  const clusters = [...new Set(items.map((f) => f.target?.cluster ?? ''))].filter(Boolean).sort();
  const regions = [...new Set(items.map((f) => f.target?.region))];
  const where = clusters.length === 1 ? `on ${clusters[0]}` : `on ${clusters.length} clusters: ${fewOf(clusters)}`;
  const target: { service?: string; cluster?: string; region?: string } = {};
  if (first.target?.service !== undefined) target.service = first.target.service;
  if (clusters.length === 1 && clusters[0] !== undefined) target.cluster = clusters[0];
  if (regions.length === 1 && regions[0] !== undefined) target.region = regions[0];
  return { ...first, message: `${first.message} (${where})`, target, clusters };
}
