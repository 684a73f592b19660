/**
 * The HAProxy exporter (HAProxy 2.6). The entry frontend sends a request, per service, to the backend of
 * its routing row's first level by one map lookup of the client's country (`use_backend` by map, no
 * variable: the cost of a hand-written configuration whatever the number of rows). While every server of
 * that level is up, Envoy's priority load gives it everything and the level's backend balances the
 * request. Otherwise the backend hands it (`use-server` of a weight-0 server) through a local socket to
 * the priority frontend (PROXY protocol: the client's address goes along), which names the row and
 * computes Envoy's priority load for its row from the live state of the servers (`srv_is_up`, integer
 * arithmetic: health = ⌊OF × up weight / total⌋, loads truncated as Envoy's C++ does) and picks a level
 * by `rand(100)`. Each level is a backend holding only clusters the residency rule allows, and every
 * choice is guarded by `nbsrv() > 0` (`use_backend` picks a backend even when it is down). Servers have
 * active checks and passive ejection (`observe layer7`). See docs/export.md.
 */
import type { ProjectedLevel, ProjectedService, RoutingProjection } from '../routing/projection.js';
import { UNKNOWN_CLIENT } from '../routing/projection.js';
import { safeName } from './addresses.js';
import { IDEMPOTENT_METHODS, routeTimeouts } from '../routing/retry-budget.js';
import type { ExportInput, ExportResult, Exporter, LossFinding, UpstreamServer } from './contract.js';
import { capacityCapsLoss, flagGateLoss, retryBudgetLoss, sortLoss, wideningLoss } from './loss.js';

/** The name of the row key of clients with no home region, in the maps. */
export const HAPROXY_UNKNOWN = '_unknown';

/** The local socket of the priority frontend: next to the runtime API's. */
export function prioritySocket(runtimeApi: string): string {
  return `${runtimeApi.replace(/\.sock$/, '')}.priority.sock`;
}

/** The backend that hands a request to the priority frontend (PROXY protocol: the client's address goes along). */
const PRIORITY_BACKEND = 'meridian_priority';

/**
 * One server of the export, as written to `servers.json`: what the runtime API and the HAProxy metric
 * source need to know about a `backend/server` name.
 */
export interface HaproxyServer {
  readonly backend: string;
  readonly server: string;
  readonly service: string;
  readonly cluster: string;
  readonly track: 'stable' | 'canary' | null;
  readonly version: string | null;
  /** The weight written in the configuration. */
  readonly weight: number;
}

/** One backend: a priority level's clusters for one service. */
interface Backend {
  readonly name: string;
  readonly service: string;
  readonly servers: readonly {
    readonly name: string;
    readonly server: UpstreamServer;
    readonly weight: number;
    readonly cluster: string;
  }[];
  readonly total: number;
}

/** HAProxy's largest server weight. */
const MAX_WEIGHT = 256;

/**
 * Server weights for a level: cluster weight split over its servers (and tracks, by the canary weight).
 * `by: 'share'` weighs each cluster by its share of the level's traffic instead (a level whose shares
 * a restore ramp set apart from its weights).
 */
function levelServers(input: ExportInput, service: string, level: ProjectedLevel, by: 'weight' | 'share' = 'weight'): Backend['servers'] {
  const sp = input.projection.services[service];
  const raw: { name: string; server: UpstreamServer; w: number; cluster: string }[] = [];
  for (const c of level.clusters) {
    const servers = input.addresses[c.cluster]?.[service] ?? [];
    const canary = sp?.versions[c.cluster]?.canary?.weight ?? 0;
    const tracked = servers.some((s) => s.track === 'canary');
    const stableN = servers.filter((s) => s.track !== 'canary').length;
    const canaryN = servers.length - stableN;
    for (const s of servers) {
      const frac = !tracked ? 1 : s.track === 'canary' ? canary / 100 : canaryN > 0 ? 1 - canary / 100 : 1;
      const n = s.track === 'canary' ? canaryN : stableN;
      const w = by === 'share' ? c.share : c.weight;
      raw.push({ name: safeName(`${c.cluster}.${s.name}`), server: s, w: (w * frac) / Math.max(1, n), cluster: c.cluster });
    }
  }
  const max = Math.max(0, ...raw.map((r) => r.w));
  // weights as configured (up to a hundredfold, for the canary's split); shares over HAProxy's whole range
  const scale = max > 0 ? Math.min(by === 'share' ? Infinity : 100, MAX_WEIGHT / max) : 1;
  return raw.map((r) => ({ name: r.name, server: r.server, cluster: r.cluster, weight: Math.min(MAX_WEIGHT, Math.round(r.w * scale)) }));
}

/**
 * Backends by member set, named `<service>~<regions>` (plus `~p<priority>`, and a counter on a clash); a
 * level weighed by its shares (a ramp) by member set and shares, named `…~ramp`.
 */
class Backends {
  readonly byKey = new Map<string, Backend>();
  readonly #names = new Set<string>();
  constructor(readonly input: ExportInput) {}
  of(service: string, level: ProjectedLevel, by: 'weight' | 'share' = 'weight'): Backend {
    const members = level.clusters.map((c) => (by === 'share' ? `${c.cluster}=${c.share}` : c.cluster)).join(',');
    const key = `${service}|${by}|${members}`;
    const have = this.byKey.get(key);
    if (have) return have;
    let name = safeName(
      `${service}~${level.regions.join('+')}${level.clusterPriority !== 0 ? `~p${level.clusterPriority}` : ''}${by === 'share' ? '~ramp' : ''}`,
    );
    for (let i = 2; this.#names.has(name); i++) name = `${name.replace(/~\d+$/, '')}~${i}`;
    this.#names.add(name);
    const servers = levelServers(this.input, service, level, by);
    const b = { name, service, servers, total: servers.reduce((n, s) => n + s.weight, 0) };
    this.byKey.set(key, b);
    return b;
  }
}

/** A routing row's key in the maps and rules: `<home region>/<service>` (the region first: HAProxy's `concat` appends). */
const rowKey = (service: string, client: string): string => `${client === UNKNOWN_CLIENT ? HAPROXY_UNKNOWN : client}/${service}`;
const rowAcl = (service: string, client: string): string =>
  safeName(`row_${service}_${client === UNKNOWN_CLIENT ? HAPROXY_UNKNOWN : client}`);

interface ServiceMatch {
  readonly rank: number;
  readonly prefixLen: number;
  readonly service: string;
  /** The ACL terms that pick the service from Host and path ('' for any request). */
  readonly match: string;
}

/**
 * How a request names its service, in the order HAProxy must try them: exact hosts, then wildcards, then
 * services without hosts; longest path prefix first. With `usesHost`, the rules read `txn.host`.
 */
function serviceMatches(input: ExportInput, services: readonly string[]): { readonly matches: ServiceMatch[]; readonly usesHost: boolean } {
  const entries: ServiceMatch[] = [];
  for (const s of services) {
    const match = input.revision.routing[s]?.match;
    const prefix = match?.pathPrefix ?? '/';
    const path = prefix === '/' ? '' : ` { path_beg ${prefix} }`;
    const hosts = match?.hosts ?? [];
    const exact = hosts.filter((h) => !h.startsWith('*'));
    const wild = hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1));
    const at = { prefixLen: prefix.length, service: s };
    if (exact.length > 0) entries.push({ rank: 0, ...at, match: ` { var(txn.host) -m str -i ${exact.join(' ')} }${path}` });
    if (wild.length > 0) entries.push({ rank: 1, ...at, match: ` { var(txn.host) -m end -i ${wild.join(' ')} }${path}` });
    if (hosts.length === 0 || hosts.includes('*')) entries.push({ rank: 2, ...at, match: path });
  }
  return { matches: entries.sort((a, b) => a.rank - b.rank || b.prefixLen - a.prefixLen), usesHost: entries.some((e) => e.rank < 2) };
}

const HOST_RULE = '  http-request set-var(txn.host) req.hdr(host),field(1,:),lower';

/**
 * The priority frontend's rules that name the routing row (`<home region>/<service>`) into `txn.row`, each
 * in one expression: the client's country (the trusted header, else the source address), its home region,
 * the service. The first rule needs no guard.
 */
function rowNameRules(input: ExportInput, services: readonly string[]): string[] {
  const { matches, usesHost } = serviceMatches(input, services);
  const home = `map(homes.map,${HAPROXY_UNKNOWN})`;
  const cc = input.settings.countryHeader;
  // a missing header fails the fetch and sets nothing: the source address's rule is next
  const sources = [...(cc !== null ? [`req.hdr(${cc}),upper,${home}`] : []), `src,map_ip(countries.map,-),${home}`];
  const lines = matches
    .flatMap((e) => sources.map((from) => ({ e, from })))
    .map(({ e, from }, i) => {
      const cond = `${i === 0 ? '' : ' !{ var(txn.row) -m found }'}${e.match}`;
      return `  http-request set-var(txn.row) ${from},concat(/${e.service})${cond === '' ? '' : ` if${cond}`}`;
    });
  return [...(usesHost ? [HOST_RULE] : []), ...lines];
}

/**
 * The entry frontend's rules: per service, one `use_backend` whose name is a map lookup of the client's
 * country — from the trusted header when there is one, else from its network — with no variable, no row
 * key and no guard: the work of a hand-written configuration's country ACLs. A request without the header
 * names no backend, and HAProxy then applies `default_backend` at once: the priority frontend, which names
 * the row from the client's address (the same routing, one more hop; a guard on the header cost every
 * request ~1,100 instructions, 3.5 %). A map's default is the backend of clients with no home region.
 */
function entryRules(input: ExportInput, services: readonly string[], fast: ReadonlyMap<string, string>): string[] {
  const { matches, usesHost } = serviceMatches(input, services);
  const lines = matches.map(
    (e) => `  use_backend %[${entrySource(input, e.service, entryBackend(fast, e.service))}]${e.match === '' ? '' : ` if${e.match}`}`,
  );
  return [...(usesHost ? [HOST_RULE] : []), ...lines];
}

/** Where the entry sends a service's clients of a home region (undefined: no home region): its row's first level, or the priority frontend. */
const entryBackend = (fast: ReadonlyMap<string, string>, service: string, region?: string): string =>
  fast.get(rowKey(service, region ?? UNKNOWN_CLIENT)) ?? PRIORITY_BACKEND;

/** The entry's lookup for one service: the header's country, or the source address, in the service's entry map. */
function entrySource(input: ExportInput, service: string, dflt: string): string {
  const cc = input.settings.countryHeader;
  return cc !== null ? `req.hdr(${cc}),upper,map(${entryMap(input, service)},${dflt})` : `src,map_ip(${entryMap(input, service)},${dflt})`;
}

/** A service's entry map: by country when the country comes from a header, else by network. */
const entryMap = (input: ExportInput, service: string): string =>
  `${safeName(service)}.${input.settings.countryHeader !== null ? 'by-country' : 'by-network'}.map`;

/**
 * A service's entry map: each country of a home region (or each client network, without a country header)
 * → the backend of its row's first level, or the priority frontend's (a row with no fast path). Every
 * network is listed, even one of no home region: `map_ip` takes the longest prefix, and a shorter one must
 * not stand in for it.
 */
function entryMaps(
  input: ExportInput,
  service: string,
  fast: ReadonlyMap<string, string>,
  header: (what: string) => string,
): Record<string, string> {
  const p = input.projection;
  const homeOf = new Map(Object.entries(p.regions).flatMap(([region, r]) => r.countries.map((cc) => [cc, region] as const)));
  const backendOf = (region: string | undefined): string => entryBackend(fast, service, region);
  const lines =
    input.settings.countryHeader !== null
      ? [...homeOf].sort(([a], [b]) => a.localeCompare(b)).map(([cc, region]) => `${cc} ${backendOf(region)}\n`)
      : Object.entries(input.settings.countryNets).map(([net, cc]) => `${net} ${backendOf(homeOf.get(cc.toUpperCase()))}\n`);
  const what = input.settings.countryHeader !== null ? 'client country' : 'client network';
  return { [entryMap(input, service)]: header(`${service}: ${what} → the backend of its routing row's first level`) + lines.join('') };
}

/** The routed services: those with a routing policy that run somewhere. */
export function routedServices(p: RoutingProjection, revision: ExportInput['revision']): string[] {
  const routed = Object.keys(p.services).filter((s) => revision.routing[s] !== undefined && (p.services[s]?.serving.length ?? 0) > 0);
  return routed.length > 0 ? routed : Object.keys(p.services).filter((s) => (p.services[s]?.serving.length ?? 0) > 0);
}

/** The variant a static data plane exports: the one with the most users (all of them without a flag gate). */
export function mainVariant(sp: ProjectedService, client: string): ProjectedService['clients'][string]['variants'][number] | undefined {
  const row = sp.clients[client];
  return row?.variants.reduce((a, b) => (b.users > a.users ? b : a));
}

/** A row's fast path: the backend of its first level. */
interface FastPath {
  readonly row: string;
  readonly backend: Backend;
}

/** Whether a level's clusters take shares of it other than their weights' (one ramping beside others). */
function sharesApart(l: ProjectedLevel): boolean {
  const total = l.clusters.reduce((n, c) => n + c.weight, 0);
  return l.clusters.length > 1 && l.clusters.some((c) => Math.abs(c.share - (total > 0 ? c.weight / total : 0)) > 0.001);
}

/**
 * A row a restore ramp runs through (a ramping cluster in a level up to the last that takes traffic): its
 * levels take the routing table's shares, fixed — `rand(10000)` against their cumulative shares, each
 * choice guarded by `nbsrv() > 0` — before Envoy's priority load, which stays the fallback when the
 * chosen level has no server up. A level whose clusters' shares are not their weights' (one cluster
 * ramping beside others) gets a backend weighed by the shares (level `200 + k`). Returns whether the row
 * ramps (then it has no fast path). A row that has a ramping cluster only in a later level keeps its
 * rules: with every cluster up its first levels take everything, as Envoy's load gives them.
 */
function rampRules(
  input: ExportInput,
  backends: Backends,
  service: string,
  acl: string,
  levels: readonly ProjectedLevel[],
  lines: string[],
  use: string[],
): boolean {
  const last = levels.findLastIndex((l) => l.share > 0);
  const ramping = levels
    .slice(0, last + 1)
    .flatMap((l) => l.clusters.filter((c) => input.ramping.includes(c.cluster)).map((c) => c.cluster));
  if (ramping.length === 0) return false;
  lines.push(
    `  # restore ramp of ${[...new Set(ramping)].join(' ')}: the levels' shares fixed; Envoy's priority load below when the level has no server up`,
    `  http-request set-var(txn.q) rand(10000) if ${acl}`,
  );
  let cum = 0;
  let lo = 0;
  levels.forEach((l, k) => {
    cum += l.share;
    if (!(l.share > 0)) return;
    const hi = k === last ? 10000 : Math.min(10000, Math.round(cum * 10000));
    if (hi <= lo) return;
    const apart = sharesApart(l);
    const b = backends.of(service, l, apart ? 'share' : 'weight');
    const lvl = apart ? 200 + k : k;
    lines.push(
      `  http-request set-var(txn.lvl) int(${lvl}) if ${acl} !{ var(txn.lvl) -m found }${lo > 0 ? ` { var(txn.q) -m int ge ${lo} }` : ''} { var(txn.q) -m int lt ${hi} } { nbsrv(${b.name}) gt 0 }`,
    );
    if (apart) use.push(`  use_backend ${b.name} if ${acl} { var(txn.lvl) -m int eq ${lvl} }`);
    lo = hi;
  });
  return true;
}

/**
 * The rules of one row, for the priority frontend: the ramp's fixed shares while a place ramps back,
 * health per level, Envoy's loads, the level choice, then the widened fallback. Returns the row's fast
 * path (none for a row that rejects by residency, or that ramps).
 */
function rowRules(
  input: ExportInput,
  backends: Backends,
  service: string,
  client: string,
  lines: string[],
  use: string[],
): FastPath | null {
  const sp = input.projection.services[service];
  if (!sp) return null;
  const row = sp.clients[client];
  const v = mainVariant(sp, client);
  if (!row || !v) return null;
  const acl = rowAcl(service, client);
  const rule = row.residency;
  lines.push(
    '',
    `  # ${service}, clients of ${client}${row.countries.length > 0 ? ` (${row.countries.join(' ')})` : ''}: ${rule === null ? 'no residency rule' : `${rule.mode} [${rule.allow.join(' ')}]`}`,
    `  acl ${acl} var(txn.row) -m str ${rowKey(service, client)}`,
  );
  if (v.outcome === 'residency-reject') {
    lines.push(
      `  http-request return status 503 content-type text/plain string "residency: no cluster in ${rule?.allow.join(', ') ?? ''} can serve ${service}" hdr x-meridian-reason residency-reject if ${acl}`,
    );
    return null;
  }
  const levels = v.levels.filter((l) => l.clusters.length > 0);
  const ramps = rampRules(input, backends, service, acl, levels, lines, use);
  const of = Math.round(sp.overprovisioningFactor * 100);
  const bs = levels.map((l) => backends.of(service, l));
  bs.forEach((b, k) => {
    lines.push(`  http-request set-var(txn.w${k}) int(0) if ${acl}`);
    for (const s of b.servers)
      if (s.weight > 0)
        lines.push(`  http-request set-var(txn.w${k}) var(txn.w${k}),add(${s.weight}) if ${acl} { srv_is_up(${b.name}/${s.name}) }`);
    lines.push(
      `  http-request set-var(txn.h${k}) var(txn.w${k}),mul(${of}),div(${Math.max(1, b.total)}) if ${acl}`,
      `  http-request set-var(txn.h${k}) int(100) if ${acl} { var(txn.h${k}) -m int gt 100 }`,
    );
  });
  if (bs.length > 0) {
    lines.push(
      `  http-request set-var(txn.nt) var(txn.h0)${bs
        .slice(1)
        .map((_, i) => `,add(txn.h${i + 1})`)
        .join('')} if ${acl}`,
    );
    lines.push(`  http-request set-var(txn.nt) int(100) if ${acl} { var(txn.nt) -m int gt 100 }`);
    bs.forEach((_, k) => {
      const prev = k === 0 ? '' : `,add(txn.c${k - 1})`;
      lines.push(`  http-request set-var(txn.c${k}) var(txn.h${k}),mul(100),div(txn.nt)${prev} if ${acl} { var(txn.nt) -m int gt 0 }`);
      lines.push(`  http-request set-var(txn.c${k}) int(100) if ${acl} { var(txn.c${k}) -m int gt 100 }`);
    });
    bs.forEach((b, k) => {
      lines.push(
        `  http-request set-var(txn.lvl) int(${k}) if ${acl} !{ var(txn.lvl) -m found } { var(txn.nt) -m int gt 0 } { var(txn.r),sub(txn.c${k}) -m int lt 0 } { nbsrv(${b.name}) gt 0 }`,
      );
    });
    // Envoy gives what truncation leaves to the first level with health
    bs.forEach((b, k) =>
      lines.push(`  http-request set-var(txn.lvl) int(${k}) if ${acl} !{ var(txn.lvl) -m found } { nbsrv(${b.name}) gt 0 }`),
    );
  }
  const wide = (input.widened[service]?.[client] ?? []).map((l) => backends.of(service, l));
  wide.forEach((b, j) =>
    lines.push(`  http-request set-var(txn.lvl) int(${100 + j}) if ${acl} !{ var(txn.lvl) -m found } { nbsrv(${b.name}) gt 0 }`),
  );
  lines.push(
    `  http-request return status 503 content-type text/plain string "no cluster can serve ${service} now" hdr x-meridian-reason ${rule?.mode === 'lock' ? 'residency-reject' : 'no-healthy'} if ${acl} !{ var(txn.lvl) -m found }`,
  );
  bs.forEach((b, k) => use.push(`  use_backend ${b.name} if ${acl} { var(txn.lvl) -m int eq ${k} }`));
  wide.forEach((b, j) => use.push(`  use_backend ${b.name} if ${acl} { var(txn.lvl) -m int eq ${100 + j} }`));
  const first = bs[0];
  return first && !ramps && wholeCount(first) > 0 ? { row: rowKey(service, client), backend: first } : null;
}

/** How many servers a backend uses while it is whole: those with a weight (a canary at 0 is not). */
const wholeCount = (b: Backend): number => b.servers.filter((x) => x.weight > 0).length;

/** HAProxy's `timeout server` where the route sets no timing (the `defaults` section's). */
const DEFAULT_SERVER_TIMEOUT_MS = 30_000;

/**
 * A backend's timing and retries, from the route (`timeout`, `retries.perTryTimeout`, `retries.attempts`):
 * each attempt waits `perTryTimeout` (else the route's `timeout`) for its answer, and a retry goes to
 * another server (`option redispatch`) on what the Node router retries too — a failed connection for any
 * method; no answer, a timeout or a 5xx for idempotent methods only. Empty for a route without them.
 */
function retryLines(input: ExportInput, b: Backend): string[] {
  const t = routeTimeouts(input.revision.routing[b.service]);
  const attempts = input.projection.services[b.service]?.retries?.attempts ?? 0;
  return [
    ...(t.timed ? [`  timeout server ${t.perTryTimeoutMs || t.timeoutMs}ms`] : []),
    ...(attempts > 0
      ? [
          `  retries ${attempts}`,
          '  option redispatch 1',
          '  retry-on conn-failure empty-response response-timeout 500 502 503 504',
          `  http-request disable-l7-retry if !{ method ${[...IDEMPOTENT_METHODS].join(' ')} }`,
        ]
      : []),
  ];
}

/**
 * A level's backend. As some row's first level (`first`), it hands a request of the entry frontend to the
 * priority frontend while a server is missing (`nbsrv` below its whole count): the level's health is
 * under 100 then, and Envoy's loads may send part of it to the next levels. That hop is one attempt of
 * the whole request: it gets the defaults' timeout and no retry of its own (the priority frontend's
 * backends time and retry the attempts).
 */
function backendBlock(input: ExportInput, b: Backend, first: boolean): string[] {
  const s = input.settings;
  const health = b.servers[0]?.server.healthPath ?? '/';
  const notWhole = `{ nbsrv lt ${wholeCount(b)} } !{ var(txn.lvl) -m found }`; // lvl: the priority frontend chose this level
  const retry = retryLines(input, b);
  const guardHop = first && retry.length > 0;
  return [
    '',
    `backend ${b.name}`,
    '  balance roundrobin',
    ...retry,
    ...(first
      ? [
          ...(guardHop
            ? [
                `  http-request set-timeout server ${DEFAULT_SERVER_TIMEOUT_MS}ms if ${notWhole}`,
                `  http-request disable-l7-retry if ${notWhole}`,
              ]
            : []),
          `  use-server priority if ${notWhole}`,
          `  server priority unix@${prioritySocket(s.runtimeApi)} send-proxy weight 0`,
        ]
      : []),
    `  option httpchk GET ${health}`,
    '  http-check expect status 200',
    ...(s.checkTimeoutMs !== null ? [`  timeout check ${s.checkTimeoutMs}ms`] : []),
    `  default-server inter ${s.checkIntervalMs}${s.fastInterMs !== null ? ` fastinter ${s.fastInterMs}` : ''} fall ${s.fall} rise ${s.rise} init-addr last,libc,none`,
    ...b.servers.map(
      (x) =>
        `  server ${x.name} ${x.server.host.includes(':') ? `[${x.server.host}]` : x.server.host}:${x.server.port} weight ${x.weight} check observe layer7 error-limit ${s.errorLimit} on-error mark-down${x.server.disabled === true ? ' disabled' : ''}`,
    ),
  ];
}

function lossReport(input: ExportInput, services: readonly string[]): LossFinding[] {
  const t = 'haproxy';
  const loss: LossFinding[] = [];
  const p = input.projection;
  loss.push(
    ...capacityCapsLoss(input, t, {
      model: 'spill-over capped by capacity.rps against traffic.rps',
      exported: 'Envoy priority load without caps',
      effect: 'when a level loses health, the next level takes its whole Envoy load even beyond its declared capacity',
    }),
  );
  loss.push({
    code: 'MERIDIAN_LOSS_DRAIN',
    target: t,
    service: null,
    model: 'a drained cluster takes no traffic and its level’s health is computed without it',
    exported: 'a drain puts the cluster’s servers in maintenance through the runtime API (`set server … state maint`)',
    effect:
      'a level counts a drained cluster as down: with eu-west-2 (weight 3 of 4) drained, its clients spill to the next level as with `route simulate --down eu-west-2`, not `--drain`',
    severity: 'approximation',
  });
  if (input.ramping.length > 0)
    loss.push({
      code: 'MERIDIAN_LOSS_RESTORE_RAMP',
      target: t,
      service: null,
      model: `${input.ramping.join(', ')} ramp back after a restore: each takes its ramp's share of what it would take in full, from the shares routing computes with the health it sees`,
      exported:
        'the rows they serve choose their levels by the routing table’s shares, fixed in the configuration (a reload per ramp step); Envoy’s priority load only when the chosen level has no server up',
      effect:
        'while a level of such a row has some of its servers down, it keeps its share on the others instead of spilling part of it to the next level',
      severity: 'approximation',
    });
  for (const s of services) {
    const sp = p.services[s];
    if (!sp) continue;
    loss.push({
      code: 'MERIDIAN_LOSS_PANIC',
      target: t,
      service: s,
      model: `panic threshold ${Math.round(sp.panicThreshold * 100)}%: a level in panic routes to all its clusters, healthy or not`,
      exported: 'only servers HAProxy sees up take traffic; a row whose every level is down answers 503',
      effect:
        'with some clusters of a level down, their share goes to the level’s healthy clusters; with every allowed cluster down, 503 at once (fail closed) instead of tries on down clusters',
      severity: 'approximation',
    });
    loss.push({
      code: 'MERIDIAN_LOSS_STICKY_CANARY',
      target: t,
      service: s,
      model: 'canary by user bucket (the same user keeps its version and cluster)',
      exported: 'server weights per request (roundrobin) and rand(100) per request for the level',
      effect: 'a user’s requests are spread over versions and clusters in the same proportions, not kept together',
      severity: 'approximation',
    });
    loss.push({
      code: 'MERIDIAN_LOSS_PRIORITY_LOAD',
      target: t,
      service: s,
      model: `Envoy priority load, overprovisioning factor ${sp.overprovisioningFactor}, largest-remainder rounding`,
      exported: 'the same formula in HAProxy integer arithmetic over servers seen up; loads truncated as in Envoy’s C++',
      effect:
        'level shares may differ from `meridian route simulate` by one point; health counts servers, not the fraction a cluster reports',
      severity: 'info',
    });
    loss.push(...flagGateLoss(t, s, sp, { exported: 'the routing of the flag variant with the most users, for every user' }));
    loss.push(
      ...retryBudgetLoss(t, s, sp, (r) => ({
        model: `${r.attempts} retries within a ${Math.round(r.budget * 100)}% budget, to any cluster of the row`,
        exported: `retries ${r.attempts} with option redispatch, inside the chosen level; \`retry-on\` a failed connection (any method), no answer, \`timeout server\` (the route's \`perTryTimeout\`) or a 5xx (idempotent methods)`,
        effect:
          'no budget bounds retries under overload; a retry stays in its level; the route’s `timeout` is not enforced over all attempts (each attempt has `perTryTimeout`)',
      })),
    );
    loss.push(
      ...wideningLoss(
        input,
        t,
        s,
        (n) => ({
          model: 'a widened prefer row spreads by Envoy priority load over the outside levels',
          exported: `binary failover over ${n} outside levels in proximity order`,
          effect: 'while every allowed cluster is down, the first outside level with a server up takes everything',
          severity: 'approximation',
        }),
        2,
      ),
    );
  }
  return sortLoss(loss);
}

/**
 * Writes haproxy.cfg, the entry map per service (`<service>.by-country.map`, or `.by-network.map` without a
 * country header: → the backend of the row's first level), countries.map (CIDR → country) and homes.map (country → home
 * region) for the priority frontend, and servers.json.
 */
export const haproxyExporter: Exporter = {
  target: 'haproxy',
  description: 'HAProxy 2.6 configuration and map files (priority load, residency guards, checks, passive ejection)',
  check: ['haproxy', '-c', '-f', '{dir}/haproxy.cfg'],
  export(input: ExportInput): ExportResult {
    const p = input.projection;
    const s = input.settings;
    const services = routedServices(p, input.revision);
    const backends = new Backends(input);
    const rows: string[] = [];
    const use: string[] = [];
    const fast: FastPath[] = [];
    for (const service of services)
      for (const client of Object.keys(p.services[service]?.clients ?? {})) {
        const f = rowRules(input, backends, service, client, rows, use);
        if (f) fast.push(f);
      }
    const header = (what: string): string =>
      `# ${what}\n# generated by \`meridian export haproxy\` from revision ${p.revision} (routing table ${p.table}); do not edit\n`;
    const countries =
      header('client networks → country (src,map_ip)') +
      Object.entries(s.countryNets)
        .map(([net, cc]) => `${net} ${cc}\n`)
        .join('');
    const homes =
      header('country → home region') +
      Object.entries(p.regions)
        .flatMap(([region, r]) => r.countries.map((cc) => `${cc} ${region}\n`))
        .sort()
        .join('');
    const fastByRow = new Map(fast.map((f) => [f.row, f.backend.name]));
    const first = new Set(fast.map((f) => f.backend));
    const priority = prioritySocket(s.runtimeApi);
    const cfg = [
      header('HAProxy 2.6 configuration').trimEnd(),
      '',
      'global',
      '  maxconn 4096',
      '  default-path config',
      `  stats socket ${s.runtimeApi} mode 600 level admin`,
      '  # a reload leaves the old worker this long for the requests it has (a rollout reloads for new replicas)',
      '  hard-stop-after 2m',
      '',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      '  option http-keep-alive',
      '  # on a reload, a client’s idle keep-alive connection is closed after its next answer, not under its next request',
      '  option idle-close-on-response',
      '',
      '# the entry: per service, client country (or network) → the backend of its routing row’s first level',
      'frontend meridian',
      `  bind ${s.listen}`,
      ...entryRules(input, services, fastByRow),
      `  default_backend ${PRIORITY_BACKEND}`,
      '',
      '# never used: names the entry maps while the configuration is parsed, so they load relative to it',
      '# (`default-path config`; HAProxy reads a dynamic `use_backend` only after parsing, from the start directory)',
      'backend meridian_entry_maps',
      ...services.map((sv) => `  http-request set-var(txn.be) ${entrySource(input, sv, PRIORITY_BACKEND)} if FALSE`),
      '',
      '# a row with no first level to go to, or whose first level is not whole, a request without the country header, or no service: the priority frontend',
      `backend ${PRIORITY_BACKEND}`,
      `  server priority unix@${priority} send-proxy`,
      '',
      '# Envoy’s priority load per routing row; the same row rules, on the client’s address (PROXY protocol)',
      'frontend meridian_priority',
      `  bind unix@${priority} mode 600 accept-proxy`,
      '  # a worker a reload replaced counts no usable server (nbsrv 0) while it finishes: a request that still reaches it',
      '  # (a kept-alive hop of its entry frontend) goes on to the new worker’s priority frontend, on the same socket path',
      '  http-request set-var(txn.lvl) int(-1) if { stopping }',
      ...rowNameRules(input, services),
      '  http-request return status 404 content-type text/plain string "no routed service matches this host and path" if !{ var(txn.row) -m found }',
      '  http-request set-var(txn.r) rand(100)',
      ...rows,
      '',
      `  use_backend ${PRIORITY_BACKEND} if { stopping }`,
      ...use,
      ...(s.metricsListen !== null
        ? [
            '',
            'frontend prometheus',
            `  bind ${s.metricsListen}`,
            '  http-request use-service prometheus-exporter if { path /metrics }',
            '  http-request return status 404',
          ]
        : []),
      ...[...backends.byKey.values()].flatMap((b) => backendBlock(input, b, first.has(b))),
      '',
    ].join('\n');
    const index: HaproxyServer[] = [...backends.byKey.values()].flatMap((b) =>
      b.servers.map((x) => ({
        backend: b.name,
        server: x.name,
        service: b.service,
        cluster: x.cluster,
        track: x.server.track ?? null,
        version: x.server.version ?? p.services[b.service]?.versions[x.cluster]?.stable ?? null,
        weight: x.weight,
      })),
    );
    return {
      files: {
        'haproxy.cfg': cfg,
        'countries.map': countries,
        'homes.map': homes,
        ...Object.assign({}, ...services.map((sv) => entryMaps(input, sv, fastByRow, header))),
        'servers.json': `${JSON.stringify({ revision: p.revision, table: p.table, servers: index }, null, 2)}\n`,
      },
      loss: lossReport(input, services),
    };
  },
};
