/**
 * What the Kubernetes-style exporters (Istio, Gateway API) share: Kubernetes object names, the routing
 * rows of a service in the order a route table lists them (client regions with countries, then the
 * `(unknown)` row), each cluster's share of a row, and multi-document YAML.
 */
import { stringify } from 'yaml';
import { UNKNOWN_CLIENT, type ProjectedClient } from '../routing/projection.js';
import type { ExportInput } from './contract.js';
import { mainVariant } from './haproxy.js';

/** A DNS-1123 label: lowercase letters, digits and `-`, at most 63 characters, starting and ending alphanumeric. */
export function kubeName(s: string): string {
  const n = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return n === '' ? 'x' : n;
}

/** The name a row goes by in object names: its client region, or `unknown`. */
export const rowName = (client: string): string => kubeName(client === UNKNOWN_CLIENT ? 'unknown' : client);

/** One routing row of a service, as a route table lists it. */
export interface KubeRow {
  readonly client: string;
  readonly row: ProjectedClient;
  /** Countries matched by the country header (none for the `(unknown)` row, which matches everyone left). */
  readonly countries: readonly string[];
  /** The row rejects every request (residency). */
  readonly rejects: boolean;
  /** cluster → share of the row's requests (every level, the main variant), and the cluster's region. */
  readonly shares: ReadonlyMap<string, { readonly share: number; readonly region: string }>;
  /** The regions of the row's levels, nearest first (a level of several regions gives them all). */
  readonly levelRegions: readonly (readonly string[])[];
}

/** The rows of a service: a row per client region with countries (when there is a country header), then `(unknown)`. */
export function kubeRows(input: ExportInput, service: string): KubeRow[] {
  const p = input.projection;
  const sp = p.services[service];
  if (!sp) return [];
  const clients = [
    ...(input.settings.countryHeader !== null
      ? Object.keys(p.regions).filter((c) => (p.regions[c]?.countries.length ?? 0) > 0 && sp.clients[c])
      : []),
    ...(sp.clients[UNKNOWN_CLIENT] ? [UNKNOWN_CLIENT] : []),
  ];
  return clients.map((client) => {
    const row = sp.clients[client] as ProjectedClient;
    const v = mainVariant(sp, client);
    const shares = new Map<string, { share: number; region: string }>();
    for (const l of v?.levels ?? [])
      for (const c of l.clusters) {
        const share = l.share * c.share;
        if (share > 0) shares.set(c.cluster, { share: (shares.get(c.cluster)?.share ?? 0) + share, region: c.region });
      }
    return {
      client,
      row,
      countries: client === UNKNOWN_CLIENT ? [] : (p.regions[client]?.countries ?? []),
      rejects: v?.outcome === 'residency-reject',
      shares,
      levelRegions: (v?.levels ?? []).filter((l) => l.clusters.length > 0).map((l) => l.regions),
    };
  });
}

/** The clusters a row may ever use: every member of its levels (only clusters its residency rule allows). */
export function rowMembers(input: ExportInput, service: string, client: string): string[] {
  const sp = input.projection.services[service];
  const v = sp ? mainVariant(sp, client) : undefined;
  if (!v || v.outcome !== 'ok') return [];
  return [...new Set(v.levels.flatMap((l) => l.clusters.map((c) => c.cluster)))];
}

/** Objects as one multi-document YAML file, with a header comment. */
export function yamlDocuments(header: string, docs: readonly unknown[]): string {
  return `${header
    .split('\n')
    .map((l) => `# ${l}`)
    .join('\n')}\n${docs.map((d) => `---\n${stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })}`).join('')}`;
}
