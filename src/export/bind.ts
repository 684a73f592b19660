/**
 * The BIND 9 exporter (BIND 9.18): static geographic DNS with views. One `view` per client region whose
 * `match-clients` lists the region's countries as `geoip country XX` ACLs (GeoIP2 country database in
 * `geoip-directory`), the networks `--country-net` maps to them, and last a view for every other client
 * (the `(unknown)` row). Each view's zone answers every service's name with the ingress addresses of its
 * row's first level that can serve (only clusters the residency rule allows; a rejecting row gets no
 * record). BIND has no health checks and no weights: failover is a new export and a reload. See
 * docs/export.md.
 */
import { UNKNOWN_CLIENT, type ProjectedLevel } from '../routing/projection.js';
import { splitAddress } from './addresses.js';
import type { ExportInput, ExportResult, Exporter, LossFinding } from './contract.js';
import { mainVariant, routedServices } from './haproxy.js';
import { sortLoss, wideningLoss } from './loss.js';

const TTL = 30;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The clusters a static answer lists: the first level with a cluster that can serve, by weight then name. */
function answerLevel(levels: readonly ProjectedLevel[]): string[] {
  for (const l of levels) {
    const up = l.clusters.filter((c) => c.state === 'healthy' || c.state === 'degraded');
    if (up.length > 0) return [...up].sort((a, b) => b.weight - a.weight || (a.cluster < b.cluster ? -1 : 1)).map((c) => c.cluster);
  }
  return [];
}

/** The clusters one view answers for a service: none for a rejecting row, the widened levels last. */
export function bindAnswer(input: ExportInput, service: string, client: string): string[] {
  const sp = input.projection.services[service];
  const v = sp ? mainVariant(sp, client) : undefined;
  if (!v || v.outcome !== 'ok') return [];
  const allowed = answerLevel(v.levels);
  return allowed.length > 0 ? allowed : answerLevel(input.widened[service]?.[client] ?? []);
}

/** A zone's records for one cluster of a service: A for IPv4, AAAA for IPv6 (a DNS name cannot join an RRset). */
function records(input: ExportInput, service: string, cluster: string): string[] {
  const host = input.addresses[cluster]?.[service]?.[0]?.host;
  if (host === undefined) return [];
  if (IPV4.test(host)) return [`${service} ${TTL} IN A ${host}`];
  if (host.includes(':')) return [`${service} ${TTL} IN AAAA ${host}`];
  return [];
}

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'bind';
  const loss: LossFinding[] = [
    {
      code: 'MERIDIAN_LOSS_ACTIVE_HEALTH',
      target: t,
      service: null,
      model: `active checks every ${input.settings.checkIntervalMs} ms; a dead cluster leaves the row`,
      exported: 'none: BIND views are static (each view answers the clusters of the export)',
      effect:
        'a dead cluster keeps its place in the answers until Meridian exports again and BIND reloads (rndc reload or SIGHUP), plus the TTL (30 s); clients that try the next address of the answer reach the other clusters of the level',
      severity: 'approximation',
    },
    {
      code: 'MERIDIAN_LOSS_PRIORITY_LOAD',
      target: t,
      service: null,
      model: 'Envoy priority load between levels and weights inside a level',
      exported:
        'the first level that can serve, as one RRset rotated per query (`rrset-order cyclic`; Debian’s build ignores `order fixed`, so a preference order inside an answer cannot be kept)',
      effect:
        'clients taking the first address spread evenly over the level’s clusters, whatever their weights; no spill to the next level',
      severity: 'approximation',
    },
    {
      code: 'MERIDIAN_LOSS_STICKY_CANARY',
      target: t,
      service: null,
      model: 'per-request version and cluster choice, sticky per user',
      exported: 'one RRset per query, cached by resolvers for the TTL',
      effect: `no canary split in DNS; a change reaches clients only after the TTL (${TTL} s)`,
      severity: 'approximation',
    },
  ];
  for (const s of services) {
    const sp = input.projection.services[s];
    if (!sp) continue;
    loss.push({
      code: 'MERIDIAN_LOSS_PANIC',
      target: t,
      service: s,
      model: `panic threshold ${Math.round(sp.panicThreshold * 100)}%`,
      exported: 'nothing: an export where no allowed cluster can serve has no record for a locked row',
      effect:
        'with every allowed cluster of a locked row down, its clients get an empty answer (NODATA): never a cluster outside the jurisdiction',
      severity: 'approximation',
    });
    for (const client of Object.keys(sp.clients)) {
      const v = mainVariant(sp, client);
      if (v && v.levels.length > 1)
        loss.push({
          code: 'MERIDIAN_LOSS_LEVELS',
          target: t,
          service: s,
          client,
          model: `${v.levels.length} priority levels`,
          exported: 'the first level that can serve at export time',
          effect: `the next levels (${v.levels
            .slice(1)
            .map((l) => l.regions.join('+'))
            .join(', ')}) are answered only after a new export with the first one down`,
          severity: 'approximation',
        });
    }
    loss.push(
      ...wideningLoss(input, t, s, {
        model: 'a prefer row widens to every jurisdiction when nothing allowed can serve',
        exported: 'the nearest outside level, in an export where no allowed cluster can serve',
        effect: 'widening happens at export time, not per request',
        severity: 'info',
      }),
    );
  }
  return sortLoss(loss);
}

/** A view's `match-clients`: other views' explicit networks excluded, its own networks, then its countries. */
function matchClients(input: ExportInput, countries: readonly string[]): string[] {
  const nets = Object.entries(input.settings.countryNets);
  return [
    ...nets.filter(([, cc]) => !countries.includes(cc)).map(([net]) => `! ${net};`),
    ...nets.filter(([, cc]) => countries.includes(cc)).map(([net]) => `${net};`),
    ...countries.map((cc) => `geoip country ${cc};`),
  ];
}

/** Writes `named.conf` and `zones/<view>.<zone>` for `named -c named.conf` (run from the export directory, or with `dnsRunDir`). */
export const bindExporter: Exporter = {
  target: 'bind',
  description: 'BIND 9.18 views (geoip country ACLs per client region, static answers per view)',
  check: ['sh', '-c', 'cd {dir} && named-checkconf -z named.conf'],
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const s = input.settings;
    const services = routedServices(p, input.revision);
    const listen = splitAddress(s.dnsListen);
    const dir = s.dnsRunDir ?? '.';
    const views: [string, string, readonly string[]][] = [
      ...Object.entries(p.regions)
        .filter(([, r]) => r.countries.length > 0)
        .map(([name, r]): [string, string, readonly string[]] => [name, name, r.countries]),
      ['other', UNKNOWN_CLIENT, []],
    ];
    const files: Record<string, string> = {};
    const conf = [
      `# BIND 9.18 configuration, generated by \`meridian export bind\` from revision ${p.revision} (routing table ${p.table}); do not edit`,
      'options {',
      `  directory "${dir}";`,
      ...(s.dnsRunDir === null ? [] : [`  pid-file "${dir}/named.pid";`, `  session-keyfile "${dir}/session.key";`]),
      `  geoip-directory "${s.dnsRunDir === null ? '/usr/share/GeoIP' : `${dir}/geoip`}";`,
      listen.host.includes(':')
        ? `  listen-on-v6 port ${listen.port} { ${listen.host}; };\n  listen-on { none; };`
        : `  listen-on port ${listen.port} { ${listen.host}; };\n  listen-on-v6 { none; };`,
      '  recursion no;',
      '  rrset-order { order cyclic; };',
      '};',
    ];
    for (const [view, client, countries] of views) {
      const zoneFile = `zones/${view}.${s.dnsZone}`;
      const zone = [
        `; ${s.dnsZone} for clients of ${client}, generated by \`meridian export bind\`; do not edit`,
        `$TTL ${TTL}`,
        '@ SOA ns1 hostmaster 1 7200 1800 259200 900',
        '@ NS ns1',
        'ns1 A 127.0.0.1',
      ];
      conf.push('');
      for (const svc of services) {
        const answer = bindAnswer(input, svc, client);
        conf.push(`# ${svc}, clients of ${client}: ${answer.length > 0 ? answer.join(', ') : 'no answer'}`);
        zone.push(...answer.flatMap((c) => records(input, svc, c)));
      }
      conf.push(
        `view "${view}" {`,
        `  match-clients { ${countries.length === 0 ? 'any;' : matchClients(input, countries).join(' ')} };`,
        `  zone "${s.dnsZone}" { type primary; file "${zoneFile}"; };`,
        '};',
      );
      files[zoneFile] = `${zone.join('\n')}\n`;
    }
    return { files: { 'named.conf': `${conf.join('\n')}\n`, ...files }, loss: lossReport(input, services) };
  },
};
