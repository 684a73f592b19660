/**
 * The gdnsd exporter (gdnsd 3.8): geographic DNS answers. Per service, a `geoip` map whose `nets` send
 * each client network's country's home region to that routing row's clusters in priority order (only
 * clusters the residency rule allows; a rejecting row gets an empty list: no answer), and a resource whose
 * datacenters are the clusters, each with an HTTP health monitor on its ingress. gdnsd answers with the
 * first datacenter of the list that its monitors see up. See docs/export.md.
 */
import { UNKNOWN_CLIENT, type ProjectedLevel } from '../routing/projection.js';
import type { ExportInput, ExportResult, Exporter, LossFinding } from './contract.js';
import { mainVariant, routedServices } from './haproxy.js';
import { sortLoss, wideningLoss } from './loss.js';

/** Clusters of a row in the order gdnsd tries them: level by level, by weight (then name) inside a level. */
function order(levels: readonly ProjectedLevel[]): string[] {
  return levels.flatMap((l) =>
    [...l.clusters].sort((a, b) => b.weight - a.weight || (a.cluster < b.cluster ? -1 : 1)).map((c) => c.cluster),
  );
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'gdnsd';
  const loss: LossFinding[] = [
    {
      code: 'MERIDIAN_LOSS_PRIORITY_LOAD',
      target: t,
      service: null,
      model: 'Envoy priority load and weights inside a level',
      exported: 'an ordered datacenter list: the first one up answers',
      effect:
        'one cluster per client network takes all its traffic (the heaviest of the first level); the next takes over only when it is down',
      severity: 'approximation',
    },
    {
      code: 'MERIDIAN_LOSS_STICKY_CANARY',
      target: t,
      service: null,
      model: 'per-request version and cluster choice, sticky per user',
      exported: 'one answer per query, cached by resolvers for the TTL',
      effect: 'no canary split in DNS; a change reaches clients only after the TTL (30 s)',
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
      exported: 'gdnsd’s own rule when every datacenter of a list is down',
      effect: 'with every allowed cluster down, gdnsd still answers from the list (allowed clusters only): never outside the jurisdiction',
      severity: 'approximation',
    });
    loss.push(
      ...wideningLoss(input, t, s, {
        model: 'a prefer row widens to every jurisdiction when nothing allowed can serve',
        exported: 'the outside clusters appended to the list, nearest first',
        effect: 'while every allowed cluster is down, the first outside cluster up answers',
        severity: 'info',
      }),
    );
  }
  return sortLoss(loss);
}

/** Writes `config` and `zones/<zone>` for `gdnsd -c DIR`. */
export const gdnsdExporter: Exporter = {
  target: 'gdnsd',
  description: 'gdnsd 3.8 geographic DNS (per-country ordered cluster lists, HTTP health monitors)',
  check: ['gdnsd', '-c', '{dir}', 'checkconf'],
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const s = input.settings;
    const services = routedServices(p, input.revision);
    const types: string[] = [];
    const maps: string[] = [];
    const resources: string[] = [];
    const records: string[] = [];
    const homeOf = new Map(Object.entries(p.regions).flatMap(([r, x]) => x.countries.map((cc) => [cc, r] as const)));
    for (const svc of services) {
      const sp = p.services[svc];
      if (!sp) continue;
      const list = (client: string): string[] => {
        const v = mainVariant(sp, client);
        if (!v || v.outcome !== 'ok') return [];
        return [...order(v.levels), ...order(input.widened[svc]?.[client] ?? [])];
      };
      const nets = Object.entries(s.countryNets).map(
        ([net, cc]) => `          ${net} => [ ${list(homeOf.get(cc) ?? UNKNOWN_CLIENT).join(', ')} ]`,
      );
      const fallback = list(UNKNOWN_CLIENT);
      maps.push(
        `      ${svc} => {`,
        `        datacenters => [ ${sp.serving.join(', ')} ]`,
        '        nets => {',
        ...nets,
        `          0.0.0.0/0 => [ ${fallback.join(', ')} ]`,
        '        }',
        '      }',
      );
      const dcs: string[] = [];
      for (const cluster of sp.serving) {
        const server = input.addresses[cluster]?.[svc]?.[0];
        if (!server || !IPV4.test(server.host)) continue;
        const type = `${svc}_${cluster}`.replace(/-/g, '_');
        types.push(
          `  ${type} => { plugin => http_status, port => ${server.port}, url_path => ${server.healthPath}, interval => ${Math.max(2, Math.round(s.checkIntervalMs / 1000))}, timeout => 1, up_thresh => ${s.rise}, down_thresh => ${s.fall}, ok_thresh => ${s.rise} }`,
        );
        dcs.push(`          ${cluster} => { addrs_v4 => ${server.host}, service_types => [ ${type} ] }`);
      }
      resources.push(`      ${svc} => {`, `        map => ${svc}`, '        dcmap => {', ...dcs, '        }', '      }');
      records.push(`${svc} 30 DYNA geoip!${svc}`);
    }
    const run = s.dnsRunDir === null ? [] : [`  run_dir => ${s.dnsRunDir}/run`, `  state_dir => ${s.dnsRunDir}/state`];
    const config = [
      `# gdnsd 3.8 configuration, generated by \`meridian export gdnsd\` from revision ${p.revision} (routing table ${p.table}); do not edit`,
      'options => {',
      `  listen => [ ${s.dnsListen} ]`,
      ...run,
      '}',
      'service_types => {',
      ...types,
      '}',
      'plugins => {',
      '  geoip => {',
      '    maps => {',
      ...maps,
      '    }',
      '    resources => {',
      ...resources,
      '    }',
      '  }',
      '}',
      '',
    ].join('\n');
    const zone = [
      `; ${s.dnsZone}, generated by \`meridian export gdnsd\`; do not edit`,
      '@ SOA ns1 hostmaster 1 7200 1800 259200 900',
      '@ NS ns1',
      '@ NS ns2',
      'ns1 A 127.0.0.1',
      'ns2 A 127.0.0.1',
      ...records,
      '',
    ].join('\n');
    return { files: { config, [`zones/${s.dnsZone}`]: zone }, loss: lossReport(input, services) };
  },
};
