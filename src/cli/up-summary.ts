/**
 * What `meridian up` prints once the fleet is up: a few lines of status and the URLs, with an `explain`
 * link and a `traffic` command for a service the router actually routes in this fleet.
 */
import { OFREP_BULK_PATH } from '../flags/index.js';
import type { Revision } from '../render/render.js';
import type { UpInfo } from './up-info.js';

/** A service the router routes (the first the fleet lists), a host it matches, and a client country of a region it runs in. */
export function routedExample(revision: Revision): { service: string; host: string | null; country: string | null } | null {
  const service = Object.keys(revision.routing)[0];
  if (service === undefined) return null;
  const host = revision.routing[service]?.match?.hosts?.[0] ?? null;
  const regions = new Set(
    Object.values(revision.clusters)
      .filter((c) => c.services[service] !== undefined)
      .map((c) => c.region),
  );
  const region = Object.keys(revision.regions)
    .sort()
    .find((r) => regions.has(r) && (revision.regions[r]?.countries.length ?? 0) > 0);
  return { service, host, country: region ? (revision.regions[region]?.countries[0] ?? null) : null };
}

/** The lines `meridian up` prints when the fleet is up. */
export function upSummary(
  info: UpInfo,
  revision: Revision,
  opts: { flagsIntervalMs: number; moved: readonly string[]; logs?: string | undefined },
): string {
  const ex = routedExample(revision);
  const q = ex ? `service=${encodeURIComponent(ex.service)}${ex.country ? `&country=${ex.country}` : ''}` : '';
  const lines = [
    `fleet ${info.fleet} is up: ${Object.keys(revision.clusters).length} clusters, revision ${info.revision}`,
    ...opts.moved.map((m) => `  note       ${m}`),
    info.dataPlane
      ? `  haproxy    ${info.router} (pid ${info.dataPlane.pid}; config and runtime API socket in ${info.dataPlane.dir})`
      : `  router     ${info.router}`,
    ...(info.dashboard ? [`  dashboard  ${info.dashboard}`] : []),
    `  metrics    ${info.admin}metrics${info.dataPlane ? ' (HAProxy’s Prometheus exporter)' : ''}`,
    ...(ex && !info.dataPlane ? [`  explain    ${info.admin}debug/route?${q}`] : []),
    `  control    ${info.control} (for \`meridian rollout\`)`,
    `  flags      ${info.control.replace(/\/$/, '')}${OFREP_BULK_PATH} (OFREP; ${info.dataPlane ? 'for the services: HAProxy routes every user as the main flag variant' : `the router polls it every ${opts.flagsIntervalMs} ms`})`,
    ...(opts.logs ? [`  logs       ${opts.logs} (meridian logs -f)`] : []),
    // enough for the example's rollout: its first step (5% on two canary clusters) reaches minSamples within its sampleWait
    ...(ex
      ? [
          `  try        meridian traffic --url ${info.router}${ex.host ? ` --host ${ex.host}` : ''} --rps 200 --duration 15m --mix "GB:35,US:35,DE:20,IN:10"`,
        ]
      : []),
    'Ctrl-C stops everything.',
  ];
  return `${lines.join('\n')}\n`;
}
