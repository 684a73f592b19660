/**
 * Where a data plane outside the clusters sends each cluster's share of a service: the cluster's
 * declared ingress (`clusters.<name>.ingress.address`), or, for a local cluster without one, the live
 * endpoints of its replicas (`meridian up` knows them).
 */
import { MeridianError } from '../errors.js';
import type { Revision } from '../render/render.js';
import type { Endpoint } from '../targets/target.js';
import type { ClusterAddresses, UpstreamServer } from './contract.js';

/** A cluster that a data plane cannot reach: no ingress declared and no live endpoints. */
export class NoAddressError extends MeridianError {
  constructor(clusters: readonly string[]) {
    super(
      'MERIDIAN_E_EXPORT_NO_ADDRESS',
      `no address for cluster${clusters.length > 1 ? 's' : ''} ${clusters.join(', ')}: a data plane outside the clusters must know where to send their traffic`,
      {
        hint: `declare each one's ingress in the fleet, e.g. clusters.${clusters[0] ?? 'eu-west-1'}.ingress.address: 10.0.1.5:443`,
      },
    );
  }
}

/** Splits `host:port` (host may be `[v6]`). The schema has checked the shape. */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(address.slice(i + 1)) };
}

/** A name HAProxy, nginx and DNS accept: letters, digits, `-`, `_` and `.`. */
export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/**
 * The addresses of every cluster that runs a service. `endpoints`, when given, lists a local cluster's
 * live replicas (healthy or not: the data plane checks them itself). Throws {@link NoAddressError}
 * naming every cluster with neither.
 */
export function clusterAddresses(revision: Revision, endpoints?: (cluster: string) => readonly Endpoint[]): ClusterAddresses {
  const out: Record<string, Record<string, UpstreamServer[]>> = {};
  const missing: string[] = [];
  for (const [name, cluster] of Object.entries(revision.clusters)) {
    const services = Object.keys(cluster.services);
    if (services.length === 0) continue;
    const byService: Record<string, UpstreamServer[]> = {};
    if (cluster.ingress) {
      const { host, port } = splitAddress(cluster.ingress.address);
      for (const s of services) {
        const healthPath = cluster.ingress.healthPath ?? cluster.services[s]?.health?.path ?? '/';
        byService[s] = [{ host, port, name: 'ingress', healthPath }];
      }
    } else if (endpoints && cluster.driver === 'local') {
      const live = endpoints(name);
      for (const s of services) {
        const healthPath = cluster.services[s]?.health?.path ?? '/';
        byService[s] = live
          .filter((e) => e.service === s)
          .sort((a, b) => (a.track === b.track ? a.port - b.port : a.track === 'stable' ? -1 : 1))
          .map((e) => ({
            host: e.host,
            port: e.port,
            name: safeName(`${e.track}-${e.port}`),
            track: e.track,
            version: e.version,
            healthPath,
          }));
      }
    } else {
      missing.push(name);
      continue;
    }
    out[name] = byService;
  }
  if (missing.length > 0) throw new NoAddressError(missing.sort());
  return out;
}
