/**
 * Prometheus recording and alerting rules generated from a fleet, over the router's and the rollout's
 * metrics: per-region error rate and latency that tell a regional incident from a global one, residency
 * rejections, ejected clusters, rollouts rolled back or paused too long, and routers nobody scrapes.
 * Pure: fleet in, a rule file (as data, and as YAML) out. See docs/observability.md.
 */
import { stringify } from 'yaml';
import type { Revision } from '../render/render.js';
import { quantileOfName } from '../spec/metric-kind.js';
import type { Fleet } from '../spec/schema.js';
import { parseDuration } from '../units/duration.js';
import { parseRatio } from '../units/quantity.js';

/** One recording rule. */
export interface RecordingRule {
  readonly record: string;
  readonly expr: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** One alerting rule. */
export interface AlertingRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface RuleGroup {
  readonly name: string;
  readonly interval?: string;
  readonly rules: readonly (RecordingRule | AlertingRule)[];
}

/** A Prometheus rule file (`rule_files:`). */
export interface RuleFile {
  readonly groups: readonly RuleGroup[];
}

export interface AlertOptions {
  /** The `job` label of the routers' scrape job (default `meridian-router`). */
  readonly routerJob?: string;
  /** The `job` label of the control plane's scrape job (default `meridian-server`). */
  readonly serverJob?: string;
  /** The rate window (default `5m`). */
  readonly window?: string;
  /** How long a condition must hold before an error or latency alert fires (default `5m`). */
  readonly for?: string;
  /** Share of a service's serving regions that must be bad at once for a global incident (default 0.5). */
  readonly globalShare?: number;
  /** Alert when a rollout stays paused longer than this (default `30m`). */
  readonly pausedFor?: string;
  /** Alert when a wave waits for approvals longer than this (default `4h`). */
  readonly approvalFor?: string;
  /** Prefix of `runbook_url` annotations; the alert's anchor is appended (default: the docs page in the repo). */
  readonly runbookBase?: string;
}

/** The thresholds the rules use, as derived from the fleet (for messages, docs and tests). */
export interface AlertThresholds {
  /** A region's 5xx ratio above this is bad: the fleet's router `error-rate` gate `max`, else 5%. */
  readonly errorRatio: number;
  /** The latency quantile judged (the fleet's first router `pNN-latency` gate, else p99). */
  readonly latencyQuantile: number;
  /** That quantile above this many seconds is bad (the gate's `max`, else 1 s). */
  readonly latencySeconds: number;
  /** Fewer requests/s than this in a region is too little to judge: the gate's `minSamples` per window. */
  readonly minRps: number;
  readonly globalShare: number;
}

const DEFAULT_RUNBOOK = 'https://github.com/meridian-dev/meridian/blob/main/docs/observability.md';

/** Seconds of a duration string; throws on a bad one (the options come from flags, checked by the caller). */
function seconds(d: string, what: string): number {
  const ms = parseDuration(d);
  if (ms === undefined || ms < 1000) throw new TypeError(`${what} must be a duration of at least 1s, like 5m (got ${JSON.stringify(d)})`);
  return ms / 1000;
}

/** A PromQL string literal. */
function q(v: string): string {
  return JSON.stringify(v);
}

/** A number for PromQL without float noise (0.1 + 0.2 style). */
function num(n: number): string {
  return String(Number(n.toPrecision(6)));
}

/** The thresholds for `fleet`: its rollout analysis gates where it has them, defaults elsewhere. */
export function alertThresholds(fleet: Pick<Fleet, 'rollout'>, opts: AlertOptions = {}): AlertThresholds {
  const analysis = fleet.rollout?.analysis;
  const router = (analysis?.metrics ?? []).filter((m) => m.source === 'router');
  const err = router.find((m) => m.name === 'error-rate');
  const errMax = err?.max === undefined ? undefined : parseRatio(err.max);
  let latencyQuantile = 0.99;
  let latencySeconds = 1;
  for (const m of router) {
    const qt = quantileOfName(m.name);
    if (qt === undefined || typeof m.max !== 'string') continue;
    const ms = parseDuration(m.max);
    if (ms === undefined) continue;
    latencyQuantile = qt;
    latencySeconds = ms / 1000;
    break;
  }
  const window = seconds(opts.window ?? '5m', 'the window');
  const globalShare = opts.globalShare ?? 0.5;
  if (!(globalShare > 0 && globalShare <= 1)) throw new TypeError(`the global share must be in (0, 1] (got ${globalShare})`);
  return {
    errorRatio: errMax ?? 0.05,
    latencyQuantile,
    latencySeconds,
    minRps: (analysis?.minSamples ?? 100) / window,
    globalShare,
  };
}

/**
 * The rule file for a rendered fleet. Two groups: recording rules (the cluster → region map, then rates,
 * ratios and quantiles per service and region, then how many regions are bad), and alerts over them.
 *
 * Regional or global: a region is *bad* for a service when its error ratio (or latency quantile) is
 * above the threshold with at least `minRps` requests/s. When bad regions are at least `globalShare` of
 * the regions serving the service, and at least two, the incident is global: `…Global…` fires once for
 * the service (`scope: global`) and the per-region alerts are suppressed in their own expression
 * (`unless` the global condition), so a global incident pages once, not once per region.
 */
export function alertRules(revision: Revision, fleet: Pick<Fleet, 'rollout'>, opts: AlertOptions = {}): RuleFile {
  const t = alertThresholds(fleet, opts);
  const w = opts.window ?? '5m';
  const forDur = opts.for ?? '5m';
  seconds(forDur, 'the alert delay (for)');
  const pausedS = seconds(opts.pausedFor ?? '30m', 'the pause limit');
  const approvalS = seconds(opts.approvalFor ?? '4h', 'the approval limit');
  const routerJob = opts.routerJob ?? 'meridian-router';
  const serverJob = opts.serverJob ?? 'meridian-server';
  const runbook = (anchor: string): string => `${opts.runbookBase ?? DEFAULT_RUNBOOK}#${anchor}`;
  const fleetName = revision.fleet;
  const qp = `p${String(Math.round(t.latencyQuantile * 1000) / 10).replace('.', '')}`;

  const INFO = 'meridian:cluster_region:info';
  const REQ = `service_region:meridian_router_requests:rate${w}`;
  const ERR = `service_region:meridian_router_request_errors:rate${w}`;
  const RATIO = `service_region:meridian_router_request_errors:ratio_rate${w}`;
  const LAT = `service_region:meridian_router_request_duration_seconds:${qp}_rate${w}`;
  // is a version failing: upstream attempts (retries included), so failures that retries or failover hide from clients still count
  const ATT = `service_version:meridian_router_upstream_attempts:rate${w}`;
  const ATT_FAILED = `service_version:meridian_router_upstream_attempt_failures:rate${w}`;
  const ATT_RATIO = `service_version:meridian_router_upstream_attempt_failures:ratio_rate${w}`;
  const SERVING = 'service:meridian_router_regions_serving:count';
  const ERRING = 'service:meridian_router_regions_erroring:count';
  const SLOW = 'service:meridian_router_regions_slow:count';
  const byRegion = (inner: string, by = 'service, region'): string =>
    `sum by (${by}) (\n  ${inner}\n  * on (cluster) group_left (region) ${INFO}\n)`;
  const judged = `and on (service, region) ${REQ} >= ${num(t.minRps)}`;
  const errGlobal = `(${ERRING} / on (service) ${SERVING} >= ${num(t.globalShare)}) and on (service) ${ERRING} >= 2`;
  const slowGlobal = `(${SLOW} / on (service) ${SERVING} >= ${num(t.globalShare)}) and on (service) ${SLOW} >= 2`;

  const recording: RecordingRule[] = [
    ...Object.entries(revision.clusters)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([cluster, c]) => ({
        record: INFO,
        expr: 'vector(1)',
        labels: { cluster, region: c.region, jurisdiction: c.jurisdiction },
      })),
    { record: REQ, expr: byRegion(`rate(meridian_router_requests_total{cluster!="none", code!="aborted"}[${w}])`) },
    { record: ERR, expr: byRegion(`rate(meridian_router_requests_total{cluster!="none", code="5xx"}[${w}])`) },
    { record: RATIO, expr: `(${ERR} or on (service, region) ${REQ} * 0)\n/ on (service, region)\n(${REQ} > 0)` },
    {
      record: LAT,
      expr: `histogram_quantile(\n  ${num(t.latencyQuantile)},\n  ${byRegion(`rate(meridian_router_request_duration_seconds_bucket[${w}])`, 'service, region, le').replace(/\n/g, '\n  ')}\n)`,
    },
    {
      record: ATT,
      expr: `sum by (service, version) (rate(meridian_router_upstream_attempts_total{outcome!="aborted"}[${w}]))`,
    },
    {
      record: ATT_FAILED,
      expr: `sum by (service, version) (rate(meridian_router_upstream_attempts_total{outcome=~"5xx|reset|timeout|refused"}[${w}]))`,
    },
    { record: ATT_RATIO, expr: `(${ATT_FAILED} or on (service, version) ${ATT} * 0)\n/ on (service, version)\n(${ATT} > 0)` },
    { record: SERVING, expr: `count by (service) (${REQ} >= ${num(t.minRps)})` },
    { record: ERRING, expr: `count by (service) (\n  ${RATIO} > ${num(t.errorRatio)}\n  ${judged}\n)` },
    { record: SLOW, expr: `count by (service) (\n  ${LAT} > ${num(t.latencySeconds)}\n  ${judged}\n)` },
  ];

  const pct = `${num(t.errorRatio * 100)}%`;
  const lat = `${num(t.latencySeconds * 1000)} ms`;
  const base = { fleet: fleetName };
  const alerts: AlertingRule[] = [
    {
      alert: 'MeridianRegionalErrorRate',
      expr: `${RATIO} > ${num(t.errorRatio)}\n${judged}\nunless on (service) (${errGlobal})`,
      for: forDur,
      labels: { ...base, severity: 'critical', scope: 'regional' },
      annotations: {
        summary: `{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests in {{ $labels.region }} (limit ${pct}); other regions are fine`,
        description: `The clusters of {{ $labels.region }} answer more than ${pct} of {{ $labels.service }}'s requests with 5xx over ${w}, while fewer than ${num(t.globalShare * 100)}% of its regions do. A regional incident: drain the region (meridian drain) or roll back what changed there.`,
        runbook_url: runbook('regional-error-rate'),
      },
    },
    {
      alert: 'MeridianVersionFailing',
      expr: `${ATT_RATIO} > ${num(t.errorRatio)}\nand on (service, version) ${ATT} >= ${num(t.minRps)}`,
      for: forDur,
      labels: { ...base, severity: 'critical', scope: 'version' },
      annotations: {
        summary: `{{ $labels.service }} {{ $labels.version }} fails {{ $value | humanizePercentage }} of upstream attempts (limit ${pct})`,
        description: `Counted on the router's upstream attempts (retries included) over ${w}: failures that retries, outlier ejection or failover hide from clients still count against the version that failed. Clients may see nothing yet; roll the version back (meridian rollback) before the retry budget runs out.`,
        runbook_url: runbook('version-failing'),
      },
    },
    {
      alert: 'MeridianGlobalErrorRate',
      expr: errGlobal,
      for: forDur,
      labels: { ...base, severity: 'critical', scope: 'global' },
      annotations: {
        summary: `{{ $labels.service }} fails more than ${pct} of requests in {{ $value | humanizePercentage }} of its regions at once`,
        description: `Most regions serving {{ $labels.service }} are bad at the same time: suspect a global cause (a release, a shared dependency, configuration) rather than a region. Draining regions will not help; per-region alerts are suppressed while this fires.`,
        runbook_url: runbook('global-error-rate'),
      },
    },
    {
      alert: 'MeridianRegionalLatency',
      expr: `${LAT} > ${num(t.latencySeconds)}\n${judged}\nunless on (service) (${slowGlobal})`,
      for: forDur,
      labels: { ...base, severity: 'warning', scope: 'regional' },
      annotations: {
        summary: `{{ $labels.service }} ${qp} latency in {{ $labels.region }} is {{ $value | humanizeDuration }} (limit ${lat}); other regions are fine`,
        description: `The ${qp} of {{ $labels.service }}'s request duration through the router, served from {{ $labels.region }}, is above ${lat} over ${w}.`,
        runbook_url: runbook('regional-latency'),
      },
    },
    {
      alert: 'MeridianGlobalLatency',
      expr: slowGlobal,
      for: forDur,
      labels: { ...base, severity: 'warning', scope: 'global' },
      annotations: {
        summary: `{{ $labels.service }} ${qp} latency is above ${lat} in {{ $value | humanizePercentage }} of its regions at once`,
        description:
          'Most regions are slow at the same time: suspect a global cause. Per-region latency alerts are suppressed while this fires.',
        runbook_url: runbook('global-latency'),
      },
    },
    {
      alert: 'MeridianResidencyRejections',
      expr: `label_replace(\n  sum by (service, client_region) (rate(meridian_router_requests_total{reason="residency-reject"}[${w}])) > 0,\n  "region", "$1", "client_region", "(.*)"\n)`,
      for: '2m',
      labels: { ...base, severity: 'critical', scope: 'regional' },
      annotations: {
        summary: `{{ $labels.service }} refuses clients from {{ $labels.client_region }}: no cluster their residency rule allows can serve them`,
        description: `The router answers 503 residency-reject ({{ $value | humanize }}/s): every cluster in the jurisdictions these clients are locked to is drained, down or not serving the service. Residency is never widened; restore a cluster in an allowed jurisdiction.`,
        runbook_url: runbook('residency-rejections'),
      },
    },
    {
      alert: 'MeridianNoHealthyCluster',
      expr: `label_replace(\n  sum by (service, client_region) (rate(meridian_router_requests_total{reason="no-healthy"}[${w}])) > 0,\n  "region", "$1", "client_region", "(.*)"\n)`,
      for: '2m',
      labels: { ...base, severity: 'critical', scope: 'regional' },
      annotations: {
        summary: `{{ $labels.service }} has no healthy cluster for clients from {{ $labels.client_region }}`,
        description:
          'The router answers 503 no-healthy ({{ $value | humanize }}/s): every cluster these clients may use is down, ejected or refused the connection.',
        runbook_url: runbook('no-healthy-cluster'),
      },
    },
    {
      alert: 'MeridianClusterEjected',
      expr: `(\n  sum by (service, cluster) (meridian_router_endpoints{state="ejected"}) > 0\n  unless on (service, cluster) sum by (service, cluster) (meridian_router_endpoints{state="healthy"}) > 0\n)\n* on (cluster) group_left (region) ${INFO}`,
      for: '1m',
      labels: { ...base, severity: 'warning', scope: 'cluster' },
      annotations: {
        summary: `Every endpoint of {{ $labels.service }} in {{ $labels.cluster }} ({{ $labels.region }}) is ejected by outlier detection`,
        description:
          'The routers send the cluster no traffic for this service: its endpoints answered 5xx or failed in a row. Traffic has failed over inside the residency rules.',
        runbook_url: runbook('cluster-ejected'),
      },
    },
    {
      alert: 'MeridianRolloutRolledBack',
      expr: `sum by (fleet, region) (increase(meridian_rollout_rollbacks_total{fleet=${q(fleetName)}}[15m])) > 0`,
      labels: { ...base, severity: 'warning', scope: 'regional' },
      annotations: {
        summary: `A rollout of ${fleetName} rolled clusters in {{ $labels.region }} back`,
        description:
          'A failed gate or an operator returned clusters to their last known-good revision. See `meridian rollout status` for the verdicts that led to it.',
        runbook_url: runbook('rollout-rolled-back'),
      },
    },
    {
      alert: 'MeridianRolloutFailed',
      expr: `sum by (fleet, kind) (increase(meridian_rollouts_finished_total{fleet=${q(fleetName)}, outcome="failed"}[15m])) > 0`,
      labels: { ...base, severity: 'critical', scope: 'global' },
      annotations: {
        summary: `A ${fleetName} {{ $labels.kind }} failed: clusters may be left between revisions`,
        description: 'A rollback did not complete or a rollout was abandoned. Check `meridian rollout status` and roll back by hand.',
        runbook_url: runbook('rollout-failed'),
      },
    },
    {
      alert: 'MeridianRolloutPausedTooLong',
      expr: `time() - meridian_rollout_waiting_since_timestamp_seconds{fleet=${q(fleetName)}, reason="paused"} > ${num(pausedS)}`,
      labels: { ...base, severity: 'warning', scope: 'global' },
      annotations: {
        summary: 'Rollout {{ $labels.rollout }} has been paused for {{ $value | humanizeDuration }}',
        description: 'A paused rollout holds its services locked and leaves the fleet on two versions. Resume, promote or abort it.',
        runbook_url: runbook('rollout-paused'),
      },
    },
    {
      alert: 'MeridianRolloutAwaitingApproval',
      expr: `time() - meridian_rollout_waiting_since_timestamp_seconds{fleet=${q(fleetName)}, reason="approval"} > ${num(approvalS)}`,
      labels: { ...base, severity: 'info', scope: 'global' },
      annotations: {
        summary: 'Rollout {{ $labels.rollout }} has waited {{ $value | humanizeDuration }} for approvals of wave {{ $labels.wave }}',
        description: 'Approve or reject the wave with `meridian approve`.',
        runbook_url: runbook('rollout-awaiting-approval'),
      },
    },
    {
      alert: 'MeridianRouterDown',
      expr: `up{job=${q(routerJob)}} == 0`,
      for: '2m',
      labels: { ...base, severity: 'critical' },
      annotations: {
        summary: 'Router {{ $labels.instance }} is not scraped',
        description: `Prometheus cannot scrape ${routerJob} at {{ $labels.instance }}: the router is down or its admin port is unreachable. Its traffic and the alerts above go blind.`,
        runbook_url: runbook('router-down'),
      },
    },
    {
      alert: 'MeridianRouterMetricsAbsent',
      expr: `absent(up{job=${q(routerJob)}})`,
      for: '5m',
      labels: { ...base, severity: 'critical' },
      annotations: {
        summary: `No ${routerJob} target is scraped at all`,
        description: `Prometheus has no scrape target with job="${routerJob}": every router alert is blind. Check the scrape configuration.`,
        runbook_url: runbook('router-down'),
      },
    },
    {
      alert: 'MeridianServerDown',
      expr: `up{job=${q(serverJob)}} == 0`,
      for: '2m',
      labels: { ...base, severity: 'warning' },
      annotations: {
        summary: 'The Meridian server {{ $labels.instance }} is not scraped',
        description: 'Rollout metrics and alerts are blind while the control plane cannot be scraped.',
        runbook_url: runbook('server-down'),
      },
    },
  ];
  return {
    groups: [
      { name: `meridian-${fleetName}.recording`, rules: recording },
      { name: `meridian-${fleetName}.alerts`, rules: alerts },
    ],
  };
}

/** The rule file as YAML, with a header saying what generated it. */
export function alertRulesYaml(file: RuleFile, header: string): string {
  const comment = header
    .split('\n')
    .map((l) => `# ${l}`.trimEnd())
    .join('\n');
  return `${comment}\n${stringify(file, { lineWidth: 0, minContentWidth: 0 })}`;
}
