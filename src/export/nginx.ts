/**
 * The nginx exporter (nginx 1.22 OSS): the client's country from a trusted header or the source
 * address (`geo`), its home region and the service (`map`), and per routing row an upstream whose
 * primary servers are the row's first level and whose `backup` servers are its second — only clusters
 * the residency rule allows. Passive ejection by `max_fails`/`fail_timeout`; a failed attempt goes to
 * the next server (`proxy_next_upstream`). A canary is sticky per user when the route names a user key:
 * `split_clients` picks a variant of the row's upstream (nginx-split.ts). No active checks and no
 * fractional spill: see the loss report and docs/export.md. Changes take effect by graceful reload (SIGHUP).
 */
import type { ProjectedCluster } from '../routing/projection.js';
import { UNKNOWN_CLIENT } from '../routing/projection.js';
import { safeName } from './addresses.js';
import type { ExportInput, ExportResult, Exporter, LossFinding } from './contract.js';
import { mainVariant, routedServices } from './haproxy.js';
import { capacityCapsLoss, flagGateLoss, sortLoss } from './loss.js';
import { canaryTiers, percent, rowCanaries, stickyCanaryLoss, userKey, varName, type UserKey } from './nginx-split.js';

const UNKNOWN = '_unknown';
const reEscape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Which servers of a cluster an upstream sends to, and with what share of the cluster's weight:
 * - `weighted`: all, the weight split between stable and canary servers by the canary weight (per request);
 * - `stable`: the stable servers (servers without a track count as stable) at weight × (1 − canary weight),
 *   the stable users of a row whose canary users are split off by `split_clients`;
 * - `canary`: the canary servers, at the cluster's weight;
 * - `fallback`: the stable servers at the cluster's weight (where a canary user goes when its canary fails).
 */
type Pick = 'weighted' | 'stable' | 'canary' | 'fallback';

/** Server lines of one level: cluster weight split over the servers `pick` chooses (scaled so the largest is 100). */
function servers(input: ExportInput, service: string, clusters: readonly ProjectedCluster[], backup: boolean, pick: Pick): string[] {
  const sp = input.projection.services[service];
  const s = input.settings;
  const raw: { addr: string; w: number }[] = [];
  for (const c of clusters) {
    const all = input.addresses[c.cluster]?.[service] ?? [];
    const list = pick === 'weighted' ? all : all.filter((x) => (x.track === 'canary') === (pick === 'canary'));
    const canary = sp?.versions[c.cluster]?.canary?.weight ?? 0;
    const tracked = all.some((x) => x.track === 'canary');
    const canaryN = list.filter((x) => x.track === 'canary').length;
    const stableN = list.length - canaryN;
    for (const x of list) {
      const frac =
        !tracked || pick === 'canary' || pick === 'fallback'
          ? 1
          : pick === 'weighted' && x.track === 'canary'
            ? canary / 100
            : 1 - canary / 100;
      raw.push({
        addr: `${x.host.includes(':') ? `[${x.host}]` : x.host}:${x.port}`,
        w: (c.weight * frac) / Math.max(1, x.track === 'canary' ? canaryN : stableN),
      });
    }
  }
  const max = Math.max(0, ...raw.map((r) => r.w));
  const scale = max > 0 ? 100 / max : 1;
  return raw.map((r) => {
    const w = Math.round(r.w * scale);
    const opts =
      w > 0 ? `weight=${w} max_fails=${s.errorLimit} fail_timeout=${Math.max(1, Math.round(s.checkIntervalMs / 1000) * s.fall)}s` : 'down';
    return `    server ${r.addr} ${opts}${backup && w > 0 ? ' backup' : ''};`;
  });
}

/** One upstream block. */
function upstream(name: string, comment: string, lines: readonly string[]): string[] {
  return [
    '',
    `  # ${comment}`,
    `  upstream ${name} {`,
    ...lines,
    '    keepalive 16;', // idle connections kept per worker: without it every request opens a new one
    '  }',
  ];
}

/**
 * A service's user key for the split: the key's variable, `$request_id` for a request without one (and,
 * with a stickiness cookie, that id set as the cookie, so the user keeps the split from then on).
 */
function userKeyLines(service: string, key: UserKey, variable: string): string[] {
  const n = varName(service);
  return [
    `  # ${service}: canary per user, by ${key.describe}; a request without it is split by its $request_id`,
    ...key.lines,
    `  map ${variable} $meridian_user_${n} {`,
    '    "" $request_id;',
    `    default ${variable};`,
    '  }',
    ...(key.cookie === null
      ? []
      : [
          `  map ${variable} $meridian_set_cookie_${n} {`,
          `    "" "${key.cookie}=$request_id; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly";`,
          '    default "";',
          '  }',
        ]),
  ];
}

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'nginx';
  const loss: LossFinding[] = [];
  const p = input.projection;
  loss.push({
    code: 'MERIDIAN_LOSS_ACTIVE_HEALTH',
    target: t,
    service: null,
    model: `active checks every ${input.settings.checkIntervalMs} ms`,
    exported: 'none (health_check is NGINX Plus only); passive max_fails/fail_timeout and proxy_next_upstream',
    effect: 'a dead cluster is found by the requests sent to it: each is retried on the next server, so it is slower, not failed',
    severity: 'approximation',
  });
  loss.push({
    code: 'MERIDIAN_LOSS_LIVE_WEIGHTS',
    target: t,
    service: null,
    model: 'canary weights and drains change live',
    exported: 'weights in the configuration; a change is a graceful reload (SIGHUP)',
    effect:
      'each change starts new workers; old ones finish their requests and close idle keep-alive connections, so a client reusing one at that instant sees a reset and must retry',
    severity: 'info',
  });
  loss.push(
    ...capacityCapsLoss(input, t, {
      model: 'spill-over capped by capacity.rps against traffic.rps',
      exported: 'none',
      effect: 'the backup level takes everything when the first is down, whatever its capacity',
    }),
  );
  for (const s of services) {
    const sp = p.services[s];
    if (!sp) continue;
    loss.push({
      code: 'MERIDIAN_LOSS_PRIORITY_LOAD',
      target: t,
      service: s,
      model: `Envoy priority load with overprovisioning factor ${sp.overprovisioningFactor}: a level that loses health spills part of its traffic`,
      exported: 'primary servers (first level) and backup servers (second level)',
      effect:
        'the first level keeps all traffic while one of its servers is up (a half-dead level does not spill); the second takes all only when every primary is down',
      severity: 'approximation',
    });
    loss.push({
      code: 'MERIDIAN_LOSS_PANIC',
      target: t,
      service: s,
      model: `panic threshold ${Math.round(sp.panicThreshold * 100)}%`,
      exported: 'none; with every server of the upstream failed, nginx answers 502',
      effect: 'with every allowed cluster down, 502 (fail closed)',
      severity: 'approximation',
    });
    loss.push(stickyCanaryLoss(input, s));
    loss.push(...flagGateLoss(t, s, sp));
    for (const [client, row] of Object.entries(sp.clients)) {
      const levels = (mainVariant(sp, client)?.levels ?? []).filter((l) => l.clusters.length > 0);
      if (levels.length > 2)
        loss.push({
          code: 'MERIDIAN_LOSS_LEVELS',
          target: t,
          service: s,
          client,
          model: `${levels.length} priority levels`,
          exported: 'the first two (primary and backup)',
          effect: `with both down, 502 instead of ${levels
            .slice(2)
            .map((l) => l.regions.join('+'))
            .join(', then ')}`,
          severity: 'approximation',
        });
      if (row.residency?.mode === 'prefer' && (input.widened[s]?.[client]?.length ?? 0) > 0)
        loss.push({
          code: 'MERIDIAN_LOSS_WIDENING',
          target: t,
          service: s,
          client,
          model: `prefer [${row.residency.allow.join(' ')}]: widen to every jurisdiction when nothing allowed can serve`,
          exported: 'only the allowed levels',
          effect: 'with every allowed cluster down, 502 instead of serving from outside',
          severity: 'approximation',
        });
    }
  }
  return sortLoss(loss);
}

/** Writes nginx.conf: a whole configuration for `nginx -p DIR -c nginx.conf`. */
export const nginxExporter: Exporter = {
  target: 'nginx',
  description: 'nginx 1.22 configuration (geo/map, primary and backup upstreams per row, max_fails, split_clients for a sticky canary)',
  check: ['nginx', '-t', '-q', '-p', '{dir}/', '-c', 'nginx.conf'],
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const s = input.settings;
    const services = routedServices(p, input.revision);
    const rows: string[] = [];
    const upstreams: string[] = [];
    const split: string[] = [];
    const variants: string[] = [];
    const cookies: string[] = [];
    for (const service of services) {
      const sp = p.services[service];
      const key = userKey(input, service);
      const tiers = key.variable === null ? [] : canaryTiers(input, service);
      const n = varName(service);
      const splits: string[] = [];
      for (const client of Object.keys(sp?.clients ?? {})) {
        const v = sp ? mainVariant(sp, client) : undefined;
        const home = client === UNKNOWN_CLIENT ? UNKNOWN : client;
        if (!v || v.outcome !== 'ok') {
          rows.push(`    ${service}/${home} reject;`);
          continue;
        }
        const levels = v.levels.filter((l) => l.clusters.length > 0).slice(0, 2);
        const name = safeName(`${service}__${home}`);
        const path = levels.map((l) => l.regions.join('+')).join(', then ');
        const first = levels[0]?.clusters ?? [];
        const canaries = rowCanaries(tiers, first);
        // with a sticky canary the row's own upstream is its stable users' — if its first level has stable servers
        // (a canary at 100 % may have replaced them: then every user of the row is on the canary anyway)
        const stable = levels.flatMap((l, i) => servers(input, service, l.clusters, i > 0, i === 0 ? 'stable' : 'fallback'));
        const sticky = canaries.length > 0 && servers(input, service, first, false, 'stable').length > 0;
        rows.push(`    ${service}/${home} ${name};`);
        upstreams.push(
          ...upstream(
            name,
            `${service}, clients of ${client}: ${path}${sticky ? ' (stable users)' : ''}`,
            sticky ? stable : levels.flatMap((l, i) => servers(input, service, l.clusters, i > 0, 'weighted')),
          ),
        );
        if (!sticky) continue;
        const variable = `$meridian_variant_${n}__${varName(home)}`;
        variants.push(`    ${service}/${home} ${variable};`);
        splits.push(
          `  split_clients "${service}/$meridian_user_${n}" ${variable} {`,
          ...canaries.map((c) => `    ${percent(c.bp)} /${c.name};`),
          '    * "";',
          '  }',
        );
        for (const c of canaries) {
          const cname = safeName(`${service}__${home}__${c.name}`);
          rows.push(`    ${service}/${home}/${c.name} ${cname};`);
          upstreams.push(
            ...upstream(
              cname,
              `${service}, clients of ${client}, ${percent(c.bp)} of users: the canary of ${c.clusters.map((x) => x.cluster).join('+')}, then the stable servers of ${levels[0]?.regions.join('+') ?? ''}`,
              [...servers(input, service, c.clusters, false, 'canary'), ...servers(input, service, first, true, 'fallback')],
            ),
          );
        }
      }
      if (splits.length === 0) continue;
      split.push(...userKeyLines(service, key, key.variable ?? '$request_id'), ...splits);
      if (key.cookie !== null) cookies.push(`    ${service} $meridian_set_cookie_${n};`);
    }
    const match: { rank: number; len: number; line: string }[] = [];
    for (const svc of services) {
      const m = input.revision.routing[svc]?.match;
      const prefix = reEscape(m?.pathPrefix ?? '/');
      const hosts = m?.hosts ?? [];
      for (const h of hosts.filter((x) => !x.startsWith('*')))
        match.push({ rank: 0, len: prefix.length, line: `    "~^${reEscape(h.toLowerCase())}:${prefix}" ${svc};` });
      for (const h of hosts.filter((x) => x.startsWith('*.')))
        match.push({ rank: 1, len: prefix.length, line: `    "~^[^:]*${reEscape(h.slice(1).toLowerCase())}:${prefix}" ${svc};` });
      if (hosts.length === 0 || hosts.includes('*')) match.push({ rank: 2, len: prefix.length, line: `    "~^[^:]*:${prefix}" ${svc};` });
    }
    match.sort((a, b) => a.rank - b.rank || b.len - a.len);
    const homes = Object.entries(p.regions)
      .flatMap(([region, r]) => r.countries.map((cc) => `    ${cc} ${region};`))
      .sort();
    const header = s.countryHeader === null ? null : `$http_${s.countryHeader.replace(/-/g, '_')}`;
    const conf = [
      '# nginx 1.22 configuration',
      `# generated by \`meridian export nginx\` from revision ${p.revision} (routing table ${p.table}); do not edit`,
      '# run: nginx -p <this directory>/ -c nginx.conf',
      'worker_processes 1;',
      'pid nginx.pid;',
      'error_log stderr warn;',
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      '  client_body_temp_path tmp/body;',
      '  proxy_temp_path tmp/proxy;',
      '  fastcgi_temp_path tmp/fastcgi;',
      '  uwsgi_temp_path tmp/uwsgi;',
      '  scgi_temp_path tmp/scgi;',
      '  geo $meridian_net_country {',
      '    default ZZ;',
      ...Object.entries(s.countryNets).map(([net, cc]) => `    ${net} ${cc};`),
      '  }',
      ...(header !== null
        ? [`  map ${header} $meridian_country {`, '    "" $meridian_net_country;', `    default ${header};`, '  }']
        : ['  map $meridian_net_country $meridian_country {', '    default $meridian_net_country;', '  }']),
      '  map $meridian_country $meridian_home {',
      `    default ${UNKNOWN};`,
      ...homes,
      '  }',
      '  map "$host:$uri" $meridian_service {',
      '    default "";',
      ...match.map((m) => m.line),
      '  }',
      ...split,
      ...(variants.length > 0
        ? ['  map "$meridian_service/$meridian_home" $meridian_variant {', '    default "";', ...variants, '  }']
        : []),
      ...(cookies.length > 0 ? ['  map $meridian_service $meridian_set_cookie {', '    default "";', ...cookies, '  }'] : []),
      `  map "$meridian_service/$meridian_home${variants.length > 0 ? '$meridian_variant' : ''}" $meridian_upstream {`,
      '    default "";',
      ...rows,
      '  }',
      ...upstreams,
      '',
      '  server {',
      `    listen ${s.listen};`,
      '    location / {',
      '      if ($meridian_upstream = "") { return 404; }',
      '      if ($meridian_upstream = reject) {',
      '        add_header x-meridian-reason residency-reject always;',
      '        return 503;',
      '      }',
      '      add_header x-meridian-upstream $upstream_addr always;',
      ...(cookies.length > 0 ? ['      add_header Set-Cookie $meridian_set_cookie;'] : []),
      '      proxy_http_version 1.1;',
      '      proxy_set_header Connection "";',
      '      proxy_set_header Host $host;',
      '      proxy_next_upstream error timeout http_502 http_503 http_504;',
      '      proxy_next_upstream_tries 3;',
      '      proxy_connect_timeout 2s;',
      '      proxy_pass http://$meridian_upstream;',
      '    }',
      '  }',
      '}',
      '',
    ].join('\n');
    return { files: { 'nginx.conf': conf, 'tmp/.keep': '' }, loss: lossReport(input, services) };
  },
};
