/**
 * The Istio exporter (`networking.istio.io/v1`): per service a ServiceEntry listing every cluster's
 * ingress servers as endpoints (locality `<region>/<cluster>`, the cluster's weight, labels naming the
 * cluster, the version track and every row that may use the cluster), a DestinationRule with one subset
 * per routing row — only the clusters the row's residency rule allows, so Envoy's locality failover and
 * panic mode cannot leave them — with locality failover in the row's level order and outlier detection,
 * and a VirtualService on the Gateway that picks the row by the country header and splits it between the
 * stable and canary subsets by the row's canary share. A rejecting row is a direct 503. See docs/export.md.
 */
import { isIP } from 'node:net';
import type { ExportInput, ExportResult, Exporter, LossFinding } from './contract.js';
import { routedServices } from './haproxy.js';
import { kubeName, kubeRows, type KubeRow, rowMembers, rowName, yamlDocuments } from './kube-rows.js';
import { capacityCapsLoss, flagGateLoss, retryBudgetLoss, sortLoss, wideningLoss } from './loss.js';

type Json = Record<string, unknown>;

/** The Istio Gateway the VirtualServices bind to. */
export const ISTIO_GATEWAY = 'meridian-gateway';
const ROW_LABEL = (client: string): string => `row.meridian.dev/${rowName(client)}`;
const TRACK_LABEL = 'meridian.dev/track';

/** The mesh-internal host of a service's clusters. */
export const istioHost = (input: ExportInput, service: string): string => `${kubeName(service)}.clusters.${input.settings.dnsZone}`;

const duration = (ms: number): string => `${Math.max(1, Math.round(ms))}ms`;

function serviceEntry(input: ExportInput, service: string, rows: readonly KubeRow[]): Json {
  const p = input.projection;
  const endpoints: Json[] = [];
  for (const cluster of p.services[service]?.serving ?? []) {
    const servers = input.addresses[cluster]?.[service] ?? [];
    const c = p.clusters[cluster];
    const weight = input.revision.clusters[cluster]?.weight ?? 1;
    for (const track of ['stable', 'canary'] as const) {
      const mine = servers.filter((s) => (s.track ?? 'stable') === track);
      for (const s of mine) {
        const labels: Record<string, string> = { 'meridian.dev/cluster': kubeName(cluster), [TRACK_LABEL]: track };
        for (const r of rows) if (rowMembers(input, service, r.client).includes(cluster)) labels[ROW_LABEL(r.client)] = 'member';
        endpoints.push({
          address: s.host,
          ports: { http: s.port },
          locality: `${c?.region ?? 'unknown'}/${cluster}`,
          weight: Math.max(1, Math.round((weight * 100) / mine.length)),
          labels,
        });
      }
    }
  }
  const allIp = endpoints.every((e) => isIP(String(e['address'])) !== 0);
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: kubeName(`meridian-${service}`), labels: { 'app.kubernetes.io/managed-by': 'meridian' } },
    spec: {
      hosts: [istioHost(input, service)],
      location: 'MESH_EXTERNAL',
      resolution: allIp ? 'STATIC' : 'DNS',
      ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
      endpoints,
    },
  };
}

/** Outlier detection as the model's passive ejection. */
const outlier = (input: ExportInput): Json => ({
  consecutive5xxErrors: input.settings.errorLimit,
  interval: duration(input.settings.checkIntervalMs),
  baseEjectionTime: '30s',
  maxEjectionPercent: 100,
});

/** Locality failover in the row's level order (single-region levels only: a failover names one region). */
function failover(row: KubeRow): Json[] {
  const regions = row.levelRegions.map((r) => (r.length === 1 ? r[0] : undefined));
  const out: Json[] = [];
  for (let i = 0; i + 1 < regions.length; i++) {
    const from = regions[i];
    const to = regions[i + 1];
    if (from === undefined || to === undefined) break;
    out.push({ from, to });
  }
  return out;
}

function destinationRule(input: ExportInput, service: string, rows: readonly KubeRow[], canary: boolean): Json {
  const subsets: Json[] = [];
  for (const r of rows) {
    if (r.rejects) continue;
    const fo = failover(r);
    const trafficPolicy = {
      loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true, ...(fo.length > 0 ? { failover: fo } : {}) } },
      outlierDetection: outlier(input),
    };
    const labels = { [ROW_LABEL(r.client)]: 'member' };
    if (!canary) subsets.push({ name: rowName(r.client), labels, trafficPolicy });
    else
      for (const track of ['stable', 'canary'])
        subsets.push({ name: `${rowName(r.client)}-${track}`, labels: { ...labels, [TRACK_LABEL]: track }, trafficPolicy });
  }
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: kubeName(`meridian-${service}`), labels: { 'app.kubernetes.io/managed-by': 'meridian' } },
    spec: {
      host: istioHost(input, service),
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true } }, outlierDetection: outlier(input) },
      subsets,
    },
  };
}

/** The row's canary share: each cluster's share of the row × its canary weight. */
function rowCanary(input: ExportInput, service: string, row: KubeRow): number {
  const versions = input.projection.services[service]?.versions ?? {};
  let w = 0;
  for (const [cluster, { share }] of row.shares) w += share * ((versions[cluster]?.canary?.weight ?? 0) / 100);
  return Math.round(w * 100);
}

function virtualService(input: ExportInput, service: string, rows: readonly KubeRow[], canary: boolean): Json {
  const match = input.revision.routing[service]?.match;
  const hosts = (match?.hosts ?? []).filter((h) => h !== '*');
  const uri = { prefix: match?.pathPrefix ?? '/' };
  const header = input.settings.countryHeader;
  const host = istioHost(input, service);
  const http = rows.map((r) => {
    const m =
      r.countries.length > 0 && header !== null ? [{ uri, headers: { [header]: { regex: `^(${r.countries.join('|')})$` } } }] : [{ uri }];
    if (r.rejects)
      return {
        name: `clients-of-${rowName(r.client)}`,
        match: m,
        directResponse: { status: 503, body: { string: `residency-reject: no cluster may serve clients of ${r.client}\n` } },
        headers: { response: { set: { 'x-meridian-reason': 'residency-reject' } } },
      };
    const w = canary ? rowCanary(input, service, r) : 0;
    const route = canary
      ? [
          { destination: { host, subset: `${rowName(r.client)}-stable` }, weight: 100 - w },
          { destination: { host, subset: `${rowName(r.client)}-canary` }, weight: w },
        ]
      : [{ destination: { host, subset: rowName(r.client) } }];
    return { name: `clients-of-${rowName(r.client)}`, match: m, route };
  });
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: kubeName(`meridian-${service}`), labels: { 'app.kubernetes.io/managed-by': 'meridian' } },
    spec: { hosts: hosts.length > 0 ? hosts : ['*'], gateways: [ISTIO_GATEWAY], http },
  };
}

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'istio';
  const p = input.projection;
  const loss: LossFinding[] = [
    ...capacityCapsLoss(input, t, {
      model: 'spill-over capped by capacity.rps against traffic.rps',
      exported: 'Envoy locality failover without caps',
      effect: 'the next level takes its whole share',
    }),
  ];
  for (const s of services) {
    const sp = p.services[s];
    if (!sp) continue;
    loss.push(
      {
        code: 'MERIDIAN_LOSS_LOCALITY_FAILOVER',
        target: t,
        service: s,
        model: 'a row’s levels in order (nearest first); a locked row never leaves its allowed jurisdictions',
        exported:
          'a subset per row holding only the clusters it allows, with localityLbSetting.failover in the row’s level order; Istio orders localities from the proxy’s own locality',
        effect:
          'Istio’s locality failover is not fail-closed: on its own it fails over to any locality of the host, and its order is relative to the ingress gateway’s region, not the client’s — the order is right when each region’s clients reach a gateway in their region; residency holds only through the per-row subsets (a route to the host without a subset reaches every cluster)',
        severity: 'approximation',
      },
      {
        code: 'MERIDIAN_LOSS_PANIC',
        target: t,
        service: s,
        model: `panic threshold ${Math.round(sp.panicThreshold * 100)}%`,
        exported: 'Envoy’s default panic threshold (50 %): a DestinationRule cannot set it',
        effect:
          Math.round(sp.panicThreshold * 100) === 50
            ? 'the same threshold; with every allowed cluster down, requests go to the dead allowed endpoints and fail (fail closed)'
            : 'panic starts at 50 % instead; with every allowed cluster down, requests fail (fail closed)',
        severity: Math.round(sp.panicThreshold * 100) === 50 ? 'info' : 'approximation',
      },
      {
        code: 'MERIDIAN_LOSS_PRIORITY_LOAD',
        target: t,
        service: s,
        model: `Envoy priority load over the cluster weights, overprovisioning factor ${sp.overprovisioningFactor}`,
        exported: 'Envoy’s locality priorities with its default overprovisioning factor (1.4); a level’s health counts healthy endpoints',
        effect: 'spill between levels follows Envoy’s host counts, as for the Envoy export (see its MERIDIAN_LOSS_PRIORITY_LOAD)',
        severity: sp.overprovisioningFactor === 1.4 ? 'info' : 'approximation',
      },
      {
        code: 'MERIDIAN_LOSS_STICKY_CANARY',
        target: t,
        service: s,
        model: 'a canary per cluster, by user bucket',
        exported: 'per row, stable and canary subsets weighted by the row’s canary share (each cluster’s share × its canary weight)',
        effect: 'the row’s canary share is right, but it is spread over the row’s clusters by their endpoints, and chosen per request',
        severity: 'approximation',
      },
    );
    loss.push(...flagGateLoss(t, s, sp));
    loss.push(
      ...retryBudgetLoss(t, s, sp, () => ({
        exported: 'Istio’s default retries (2 attempts on connection failures), no budget',
        effect: 'no budget bounds retries under overload',
      })),
    );
    loss.push(
      ...wideningLoss(input, t, s, {
        model: 'a prefer row widens to clusters outside its allowed set when none of them can serve',
        exported: 'a subset of the allowed clusters only',
        effect: 'with every allowed cluster down, requests fail instead of being served from outside',
        severity: 'approximation',
      }),
    );
  }
  return sortLoss(loss);
}

/** Writes `istio.yaml`: ServiceEntry, DestinationRule and VirtualService per service. */
export const istioExporter: Exporter = {
  target: 'istio',
  description:
    'Istio ServiceEntry + DestinationRule (row subsets, locality failover, outlier detection) + VirtualService (country rows, canary weights)',
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const services = routedServices(p, input.revision);
    const docs: Json[] = [];
    for (const s of services) {
      const rows = kubeRows(input, s);
      const canary = Object.values(p.services[s]?.versions ?? {}).some((v) => v.canary !== null);
      docs.push(serviceEntry(input, s, rows), destinationRule(input, s, rows, canary), virtualService(input, s, rows, canary));
    }
    return {
      files: {
        'istio.yaml': yamlDocuments(
          `Istio networking.istio.io/v1, generated by \`meridian export istio\` from revision ${p.revision} (routing table ${p.table}); do not edit\nthe VirtualServices bind to the Gateway ${ISTIO_GATEWAY}`,
          docs,
        ),
      },
      loss: lossReport(input, services),
    };
  },
};
