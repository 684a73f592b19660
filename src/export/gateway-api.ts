/**
 * The Gateway API exporter (standard channel, `gateway.networking.k8s.io/v1`): one HTTPRoute per service
 * (more when a service has more rows than a route may hold) attached to a Gateway named by the settings,
 * with a rule per client region matching the country header exactly, per country (core support), and
 * the service's path prefix; its `backendRefs` are the clusters the row's traffic goes to with every
 * cluster up, weighted by their share (×10000) and split into stable and canary backends by the canary
 * weight. A rejecting row is a rule with no backend (the spec's 503). Each backend is a Service
 * `<service>-<cluster>[-canary]` in front of that cluster's ingress. See docs/export.md.
 */
import type { ExportInput, ExportResult, Exporter, LossFinding } from './contract.js';
import { routedServices } from './haproxy.js';
import { kubeName, kubeRows, type KubeRow, yamlDocuments } from './kube-rows.js';
import { capacityCapsLoss, flagGateLoss, retryBudgetLoss, sortLoss, wideningLoss } from './loss.js';

type Json = Record<string, unknown>;

/** The Gateway the routes attach to (`parentRefs`). */
export const GATEWAY_NAME = 'meridian';
/** HTTPRoute limits of the standard channel's schema (v1.6). */
const MAX_RULES = 16;
const MAX_MATCHES = 64;
const MAX_BACKENDS = 16;
/** Weights are shares × this (HTTPRoute weights are integers up to 1,000,000): 0.01 % steps. */
const WEIGHT_SCALE = 10_000;

/** The Service name of one cluster's backend for a service (and track). */
export const backendName = (service: string, cluster: string, canary = false): string =>
  kubeName(`${service}-${cluster}${canary ? '-canary' : ''}`);

/** The backendRefs of a row: each cluster's share, split between its stable and canary backends. */
function backendRefs(input: ExportInput, service: string, row: KubeRow): Json[] {
  const sp = input.projection.services[service];
  const refs: Json[] = [];
  for (const [cluster, { share }] of [...row.shares].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const port = input.addresses[cluster]?.[service]?.[0]?.port ?? 80;
    const canary = (sp?.versions[cluster]?.canary?.weight ?? 0) / 100;
    const stable = Math.round(share * (1 - canary) * WEIGHT_SCALE);
    const onCanary = Math.round(share * canary * WEIGHT_SCALE);
    refs.push({ name: backendName(service, cluster), port, weight: stable });
    if (onCanary > 0) refs.push({ name: backendName(service, cluster, true), port, weight: onCanary });
  }
  return refs.slice(0, MAX_BACKENDS);
}

/** The rules of a service, one or more per row (a row with more countries than a rule's matches is split). */
function rules(input: ExportInput, service: string): Json[] {
  const prefix = input.revision.routing[service]?.match?.pathPrefix ?? '/';
  const path = { type: 'PathPrefix', value: prefix };
  const header = input.settings.countryHeader;
  const out: Json[] = [];
  for (const row of kubeRows(input, service)) {
    const action: Json = row.rejects
      ? {
          // no backendRefs and no filter that answers: the Gateway answers 503 (HTTPRouteRule.backendRefs)
          filters: [
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-meridian-reason', value: 'residency-reject' }] } },
          ],
        }
      : { backendRefs: backendRefs(input, service, row) };
    if (row.countries.length === 0 || header === null) {
      out.push({ matches: [{ path }], ...action });
      continue;
    }
    for (let i = 0; i < row.countries.length; i += MAX_MATCHES)
      out.push({
        matches: row.countries.slice(i, i + MAX_MATCHES).map((cc) => ({ path, headers: [{ type: 'Exact', name: header, value: cc }] })),
        ...action,
      });
  }
  return out;
}

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'gateway-api';
  const p = input.projection;
  const loss: LossFinding[] = [
    ...capacityCapsLoss(input, t, {
      model: 'spill-over capped by capacity.rps against traffic.rps',
      exported: 'fixed weights',
      effect: 'no spill at all (see MERIDIAN_LOSS_LEVELS), so no cap either',
    }),
  ];
  for (const s of services) {
    const sp = p.services[s];
    if (!sp) continue;
    loss.push(
      {
        code: 'MERIDIAN_LOSS_LEVELS',
        target: t,
        service: s,
        model: 'ordered priority levels per row; the next level takes the share a level loses (Envoy priority load)',
        exported: 'one weighted backendRefs list per row: the clusters that take traffic with every cluster up, with their shares',
        effect:
          'a row never fails over to its next level: with eu-west-1 down, Irish clients keep sending its share to it (the model sends 30 % to eu-central-1)',
        severity: 'approximation',
      },
      {
        code: 'MERIDIAN_LOSS_ACTIVE_HEALTH',
        target: t,
        service: s,
        model: 'active health checks and outlier detection take a failing cluster out of its level',
        exported: 'nothing: the HTTPRoute standard channel has no health checks (an implementation’s own policy may add them)',
        effect:
          'requests weighted to a dead cluster fail (or are retried) as the Gateway implementation decides; residency still holds, since only allowed clusters are backends',
        severity: 'approximation',
      },
      {
        code: 'MERIDIAN_LOSS_PANIC',
        target: t,
        service: s,
        model: `panic threshold ${Math.round(sp.panicThreshold * 100)}% inside the allowed set`,
        exported: 'no health, no panic: the weights stay as written',
        effect: 'with every allowed cluster down, requests fail at the Gateway (fail closed), never sent outside',
        severity: 'approximation',
      },
      {
        code: 'MERIDIAN_LOSS_STICKY_CANARY',
        target: t,
        service: s,
        model: 'canary by user bucket (the same user keeps its version)',
        exported: 'a canary backend per cluster weighted by the canary share, chosen per request',
        effect: 'the canary share is right, but a user’s requests are spread over both versions',
        severity: 'approximation',
      },
    );
    loss.push(...flagGateLoss(t, s, sp));
    loss.push(
      ...retryBudgetLoss(t, s, sp, () => ({
        exported: 'no retry policy (HTTPRoute retries are in the experimental channel)',
        effect: 'a failed attempt is not retried by the Gateway',
      })),
    );
    loss.push(
      ...wideningLoss(input, t, s, {
        model: 'a prefer row widens to clusters outside its allowed set when none of them can serve',
        exported: 'only the allowed clusters',
        effect: 'with every allowed cluster down, requests fail instead of being served from outside',
        severity: 'approximation',
      }),
    );
  }
  return sortLoss(loss);
}

/** Writes `httproutes.yaml`. */
export const gatewayApiExporter: Exporter = {
  target: 'gateway-api',
  description: 'Gateway API HTTPRoutes (standard channel v1): per-country rules, weighted backends per cluster and canary',
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const services = routedServices(p, input.revision);
    const docs: Json[] = [];
    for (const s of services) {
      const hosts = (input.revision.routing[s]?.match?.hosts ?? []).filter((h) => h !== '*');
      const all = rules(input, s);
      for (let i = 0; i < all.length; i += MAX_RULES)
        docs.push({
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: {
            name: kubeName(`meridian-${s}${i === 0 ? '' : `-${i / MAX_RULES + 1}`}`),
            labels: { 'app.kubernetes.io/managed-by': 'meridian', 'meridian.dev/service': kubeName(s) },
            annotations: { 'meridian.dev/revision': p.revision, 'meridian.dev/routing-table': p.table },
          },
          spec: {
            parentRefs: [{ name: GATEWAY_NAME }],
            ...(hosts.length > 0 ? { hostnames: hosts } : {}),
            rules: all.slice(i, i + MAX_RULES),
          },
        });
    }
    return {
      files: {
        'httproutes.yaml': yamlDocuments(
          `Gateway API HTTPRoutes, generated by \`meridian export gateway-api\` from revision ${p.revision} (routing table ${p.table}); do not edit\nbackends: a Service <service>-<cluster>[-canary] per cluster, in front of its ingress`,
          docs,
        ),
      },
      loss: lossReport(input, services),
    };
  },
};
