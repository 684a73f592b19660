/** The one selector syntax (`region`, `cluster`, `jurisdiction`, `labels`) and what it matches. */
import type { Cluster, Region, Selector } from '../spec/schema.js';

/** What a selector is matched against: a cluster in its region. */
export interface ClusterFacts {
  readonly name: string;
  readonly cluster: Cluster;
  readonly regionName: string;
  readonly region: Region;
}

function oneOf(value: string, want: string | string[] | undefined): boolean {
  if (want === undefined) return true;
  return Array.isArray(want) ? want.includes(value) : want === value;
}

/** Whether every field the selector gives matches (fields AND, list items OR). An empty selector matches all. */
export function matches(sel: Selector, c: ClusterFacts): boolean {
  if (!oneOf(c.regionName, sel.region)) return false;
  if (!oneOf(c.name, sel.cluster)) return false;
  if (!oneOf(c.region.jurisdiction, sel.jurisdiction)) return false;
  if (sel.labels) {
    const labels = c.cluster.labels ?? {};
    for (const [k, v] of Object.entries(sel.labels)) if (labels[k] !== v) return false;
  }
  return true;
}

/** Whether a service with this placement runs on the cluster. */
export function placed(placement: { match?: Selector | undefined; exclude?: Selector | undefined } | undefined, c: ClusterFacts): boolean {
  if (!placement) return true;
  if (placement.match && !matches(placement.match, c)) return false;
  if (placement.exclude && matches(placement.exclude, c)) return false;
  return true;
}
