/**
 * The Envoy exporter (v3 API): a static bootstrap (`envoy.json`) with one listener whose routes pick a
 * routing row by the trusted country header (Envoy has no geo-IP) and one Envoy cluster per row
 * (service × client region) with an EDS-style `load_assignment`: each priority level of the row is an
 * Envoy priority, each Meridian cluster a locality with its weight, the overprovisioning factor and the
 * panic threshold as the model's, active HTTP health checks and outlier detection. A locked row's
 * cluster holds only endpoints in its jurisdiction, so Envoy's priority spill and panic mode stay inside
 * it; a rejecting row gets a direct 503. See docs/export.md.
 */
import { UNKNOWN_CLIENT, type ProjectedLevel } from '../routing/projection.js';
import { safeName, splitAddress } from './addresses.js';
import type { ExportInput, ExportResult, Exporter, LossFinding } from './contract.js';
import { mainVariant, routedServices } from './haproxy.js';
import { capacityCapsLoss, flagGateLoss, retryBudgetLoss, sortLoss, wideningLoss } from './loss.js';

type Json = Record<string, unknown>;

const duration = (ms: number): string => `${ms / 1000}s`;
const rowCluster = (service: string, client: string): string => safeName(`${service}_${client === UNKNOWN_CLIENT ? 'unknown' : client}`);
const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One Envoy locality per Meridian cluster of a level, its servers' weights split by the canary weight. */
function localities(input: ExportInput, service: string, level: ProjectedLevel, priority: number): Json[] {
  const sp = input.projection.services[service];
  return level.clusters.map((c) => {
    const servers = input.addresses[c.cluster]?.[service] ?? [];
    const canary = sp?.versions[c.cluster]?.canary?.weight ?? 0;
    const tracked = servers.some((s) => s.track === 'canary');
    const canaryN = servers.filter((s) => s.track === 'canary').length;
    const stableN = servers.length - canaryN;
    return {
      locality: { region: c.region, zone: c.cluster },
      priority,
      load_balancing_weight: Math.max(1, c.weight),
      lb_endpoints: servers.map((s) => {
        const frac = !tracked ? 1 : s.track === 'canary' ? canary / 100 : canaryN > 0 ? 1 - canary / 100 : 1;
        const n = s.track === 'canary' ? canaryN : stableN;
        return {
          endpoint: { address: { socket_address: { address: s.host, port_value: s.port } } },
          load_balancing_weight: Math.max(1, Math.round((100 * frac) / Math.max(1, n))),
          ...(frac === 0 ? { health_status: 'DRAINING' } : {}),
        };
      }),
    };
  });
}

/** The Envoy cluster of one routing row: its levels (then a prefer row's widened levels) as priorities. */
function rowClusterConfig(input: ExportInput, service: string, client: string): Json | null {
  const sp = input.projection.services[service];
  const v = sp ? mainVariant(sp, client) : undefined;
  if (!sp || !v || v.outcome !== 'ok') return null;
  const s = input.settings;
  const levels = [...v.levels, ...(input.widened[service]?.[client] ?? [])];
  const health = input.addresses[levels[0]?.clusters[0]?.cluster ?? '']?.[service]?.[0]?.healthPath ?? '/';
  const name = rowCluster(service, client);
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    lb_policy: 'ROUND_ROBIN',
    common_lb_config: {
      healthy_panic_threshold: { value: Math.round(sp.panicThreshold * 100) },
      locality_weighted_lb_config: {},
    },
    health_checks: [
      {
        timeout: '1s',
        interval: duration(s.checkIntervalMs),
        unhealthy_threshold: s.fall,
        healthy_threshold: s.rise,
        http_health_check: { path: health },
      },
    ],
    outlier_detection: {
      consecutive_5xx: s.errorLimit,
      interval: duration(s.checkIntervalMs),
      base_ejection_time: '30s',
      max_ejection_percent: 100,
    },
    load_assignment: {
      cluster_name: name,
      endpoints: levels.flatMap((l, i) => localities(input, service, l, i)),
      policy: { overprovisioning_factor: Math.round(sp.overprovisioningFactor * 100) },
    },
  };
}

/** The routes of one service: a route per client region (its countries in the header), then the `(unknown)` row. */
function serviceRoutes(input: ExportInput, service: string): Json[] {
  const p = input.projection;
  const sp = p.services[service];
  if (!sp) return [];
  const match = input.revision.routing[service]?.match;
  const hosts = (match?.hosts ?? []).filter((h) => h !== '*');
  const authority =
    hosts.length === 0
      ? []
      : [
          {
            name: ':authority',
            string_match: {
              safe_regex: {
                regex: `^(${hosts.map((h) => (h.startsWith('*.') ? `.*${escapeRegex(h.slice(1))}` : escapeRegex(h))).join('|')})(:[0-9]+)?$`,
              },
            },
          },
        ];
  const header = input.settings.countryHeader;
  const action = (client: string): Json => {
    const cluster = rowClusterConfig(input, service, client);
    return cluster === null
      ? { direct_response: { status: 503, body: { inline_string: `residency-reject: no cluster may serve clients of ${client}\n` } } }
      : { route: { cluster: rowCluster(service, client) } };
  };
  const routes: Json[] = [];
  if (header !== null)
    for (const [client, region] of Object.entries(p.regions)) {
      if (region.countries.length === 0 || !sp.clients[client]) continue;
      routes.push({
        name: `${service} clients of ${client}`,
        match: {
          prefix: match?.pathPrefix ?? '/',
          headers: [...authority, { name: header, string_match: { safe_regex: { regex: `^(${region.countries.join('|')})$` } } }],
        },
        ...action(client),
      });
    }
  routes.push({
    name: `${service} clients of ${UNKNOWN_CLIENT}`,
    match: { prefix: match?.pathPrefix ?? '/', ...(authority.length > 0 ? { headers: authority } : {}) },
    ...action(UNKNOWN_CLIENT),
  });
  return routes;
}

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'envoy';
  const p = input.projection;
  const loss: LossFinding[] = [
    {
      code: 'MERIDIAN_LOSS_STICKY_CANARY',
      target: t,
      service: null,
      model: 'sticky canary: a user stays on one version (user bucket)',
      exported: 'endpoint weights per version inside each locality (round robin)',
      effect: 'the canary share holds per request, not per user: a user’s requests alternate between versions',
      severity: 'approximation',
    },
    {
      code: 'MERIDIAN_LOSS_LIVE_WEIGHTS',
      target: t,
      service: null,
      model: 'weights changed live through the control plane',
      exported: 'a static bootstrap (clusters with inline load_assignment)',
      effect:
        'a change needs a new file and a hot restart, or serving the same clusters over xDS (file-based EDS swapped by an atomic move)',
      severity: 'info',
    },
  ];
  loss.push(
    ...capacityCapsLoss(input, t, {
      model: 'spill-over capped by declared capacity.rps',
      exported: 'nothing (Envoy’s circuit breakers count requests in flight, not rates)',
      effect: 'a level takes its full priority load whatever its declared capacity',
    }),
  );
  if (input.settings.countryHeader === null)
    loss.push({
      code: 'MERIDIAN_LOSS_LEVELS',
      target: t,
      service: null,
      model: 'a routing row per client region',
      exported: 'only the (unknown) row: Envoy has no geo-IP and no country header was given',
      effect: 'every client is routed as a client of no known region',
      severity: 'approximation',
    });
  for (const s of services) {
    const sp = p.services[s];
    if (!sp) continue;
    loss.push(
      ...flagGateLoss(t, s, sp, {
        model: `flag ${sp.flag} gates the service per user`,
        exported: 'the variant with the most users',
        effect: 'every user gets that variant’s routing',
      }),
    );
    loss.push(
      ...retryBudgetLoss(t, s, sp, (r) => ({
        model: `${r.attempts} attempt(s) within a ${Math.round(r.budget * 100)}% retry budget`,
        exported: 'no retry policy',
        effect: 'a failed attempt is not retried on another cluster by Envoy',
      })),
    );
    for (const client of Object.keys(sp.clients)) {
      const unequal = mainVariant(sp, client)?.levels.find((l) => new Set(l.clusters.map((c) => c.weight)).size > 1);
      if (unequal)
        loss.push({
          code: 'MERIDIAN_LOSS_PRIORITY_LOAD',
          target: t,
          service: s,
          client,
          model: `a level's health is its healthy weight (${unequal.clusters.map((c) => `${c.cluster} ${c.weight}`).join(', ')})`,
          exported: 'locality weights; Envoy computes a priority’s health from healthy host counts',
          effect:
            'when a cluster of unequal weight fails, Envoy’s spill to the next priority and its panic decision differ from the model’s (a heavy cluster down: less spill, no panic)',
          severity: 'approximation',
        });
    }
    loss.push(
      ...wideningLoss(input, t, s, {
        model: 'a prefer row widens to every jurisdiction only when nothing allowed can serve',
        exported: 'the outside levels as the row cluster’s last priorities',
        effect:
          'Envoy’s priority load spills to them as soon as the allowed levels’ health (× overprovisioning factor) drops under 100 %, not only when nothing allowed can serve',
        severity: 'approximation',
      }),
    );
  }
  return sortLoss(loss);
}

/** Writes `envoy.json`, a v3 bootstrap for `envoy -c envoy.json`. */
export const envoyExporter: Exporter = {
  target: 'envoy',
  description: 'Envoy v3 bootstrap (per-row clusters with priorities, locality weights, panic threshold, health checks, outlier detection)',
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const services = routedServices(p, input.revision);
    const clusters: Json[] = [];
    for (const svc of services) {
      const sp = p.services[svc];
      for (const client of Object.keys(sp?.clients ?? {})) {
        const c = rowClusterConfig(input, svc, client);
        if (c) clusters.push(c);
      }
    }
    const listen = splitAddress(input.settings.listen);
    // services with hosts before those without, longest path prefix first (Envoy takes the first route that matches)
    const rank = (svc: string): [number, number] => {
      const m = input.revision.routing[svc]?.match;
      return [(m?.hosts ?? []).filter((h) => h !== '*').length > 0 ? 0 : 1, -(m?.pathPrefix ?? '/').length];
    };
    const ordered = [...services].sort((a, b) => rank(a)[0] - rank(b)[0] || rank(a)[1] - rank(b)[1]);
    const bootstrap = {
      node: { id: 'meridian', cluster: 'meridian' },
      static_resources: {
        listeners: [
          {
            name: 'meridian',
            address: { socket_address: { address: listen.host, port_value: listen.port } },
            filter_chains: [
              {
                filters: [
                  {
                    name: 'envoy.filters.network.http_connection_manager',
                    typed_config: {
                      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                      stat_prefix: 'meridian',
                      route_config: {
                        name: 'meridian',
                        virtual_hosts: [{ name: 'meridian', domains: ['*'], routes: ordered.flatMap((s) => serviceRoutes(input, s)) }],
                      },
                      http_filters: [
                        {
                          name: 'envoy.filters.http.router',
                          typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
        clusters,
      },
    };
    return {
      files: { 'envoy.json': `${JSON.stringify(bootstrap, null, 2)}\n` },
      loss: lossReport(input, services),
    };
  },
};
