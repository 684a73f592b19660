/**
 * The sticky canary of the nginx export: a service's users split by `split_clients` on their key into
 * canary tiers, one per distinct canary weight, so that a user's version does not change per request.
 */
import type { ProjectedCluster } from '../routing/projection.js';
import type { ExportInput, LossFinding } from './contract.js';

/**
 * One canary tier of a service: the users whose split falls in `[fromBp, toBp)` (basis points of all
 * users) are on the canary of every cluster in `clusters` — those whose canary weight is at least `toBp`.
 * As in the model, a cluster's canary takes the users below its weight, so the tiers are nested.
 */
export interface CanaryTier {
  /** `canary1`, `canary2`, … from the smallest weight up. */
  readonly name: string;
  readonly fromBp: number;
  readonly toBp: number;
  readonly clusters: ReadonlySet<string>;
}

/** The user key of a service, as nginx variables: `key` is what `split_clients` hashes. */
export interface UserKey {
  /** In words, for comments and the loss report. */
  readonly describe: string;
  /** The variable holding the request's key (empty when absent), or null when the route declares no stickiness. */
  readonly variable: string | null;
  /** Config lines that define {@link UserKey.variable} when it needs a `map` (a cookie name nginx cannot name). */
  readonly lines: readonly string[];
  /** The cookie to set on an answer to a request without one, or null. */
  readonly cookie: string | null;
}

/** A service name as part of an nginx variable name (names are lowercase letters, digits and dashes). */
export function varName(service: string): string {
  return service.replace(/[^A-Za-z0-9_]/g, '_');
}

/**
 * The canary tiers of a service: clusters with a canary weight above 0 whose addresses include canary
 * servers (an ingress address carries no track: its cluster splits by itself), grouped by distinct weight.
 * Empty: no sticky split to export.
 */
export function canaryTiers(input: ExportInput, service: string): CanaryTier[] {
  const sp = input.projection.services[service];
  const byWeight = new Map<number, string[]>();
  for (const [cluster, v] of Object.entries(sp?.versions ?? {})) {
    const bp = Math.round((v.canary?.weight ?? 0) * 100);
    const servers = input.addresses[cluster]?.[service] ?? [];
    if (bp <= 0 || !servers.some((x) => x.track === 'canary')) continue;
    byWeight.set(bp, [...(byWeight.get(bp) ?? []), cluster]);
  }
  const weights = [...byWeight.keys()].sort((a, b) => a - b);
  return weights.map((toBp, i) => ({
    name: `canary${i + 1}`,
    fromBp: i === 0 ? 0 : (weights[i - 1] ?? 0),
    toBp,
    clusters: new Set(weights.slice(i).flatMap((w) => byWeight.get(w) ?? [])),
  }));
}

/** One variant of a routing row: its users (basis points of the row's) go to the canary servers of `clusters`. */
export interface RowCanary {
  /** `canary1`, `canary2`, … in the order of the split. */
  readonly name: string;
  readonly bp: number;
  readonly clusters: readonly ProjectedCluster[];
}

/**
 * The canary variants of a row whose first level is `first`: tier by tier, the first level's clusters on
 * that tier's canary, with the tier's width scaled by their share of the level's weight — so that each
 * cluster's canary takes its share × its canary weight of the row's users, as in the model, and the rest
 * go to the row's stable upstream (weighted by share × (1 − canary weight)). Adjacent tiers with the
 * same clusters are one variant; tiers with none of the level's clusters are left to the stable upstream.
 */
export function rowCanaries(tiers: readonly CanaryTier[], first: readonly ProjectedCluster[]): RowCanary[] {
  const total = first.reduce((a, c) => a + c.weight, 0);
  const out: { clusters: ProjectedCluster[]; bp: number }[] = [];
  for (const t of tiers) {
    const on = first.filter((c) => t.clusters.has(c.cluster));
    const w = on.reduce((a, c) => a + c.weight, 0);
    if (on.length === 0 || w <= 0 || total <= 0) continue;
    const bp = ((t.toBp - t.fromBp) * w) / total;
    const last = out.at(-1);
    if (last && last.clusters.map((c) => c.cluster).join() === on.map((c) => c.cluster).join()) last.bp += bp;
    else out.push({ clusters: on, bp });
  }
  // split_clients takes 0.01 % steps: round the boundaries, so that the parts never sum over 100 %
  let cum = 0;
  const rounded = out.map((v) => {
    const from = Math.round(cum);
    cum += v.bp;
    return { clusters: v.clusters, bp: Math.round(cum) - from };
  });
  return rounded.filter((v) => v.bp > 0).map((v, i) => ({ name: `canary${i + 1}`, ...v }));
}

/** A share in basis points as `split_clients` writes it (two decimals at most): 3000 → `30%`, 1250 → `12.5%`. */
export function percent(bp: number): string {
  return `${(bp / 100).toFixed(2).replace(/\.?0+$/, '')}%`;
}

/** The user key of a service from `routing.<service>.stickiness`. */
export function userKey(input: ExportInput, service: string): UserKey {
  const sticky = input.revision.routing[service]?.stickiness;
  if (sticky === undefined) return { describe: 'no user key (routing.stickiness is not set)', variable: null, lines: [], cookie: null };
  if ('header' in sticky) {
    const name = sticky.header.toLowerCase().replace(/-/g, '_');
    return { describe: `the ${sticky.header} header`, variable: `$http_${name}`, lines: [], cookie: null };
  }
  const name = sticky.cookie;
  if (/^[A-Za-z0-9_]+$/.test(name)) return { describe: `the ${name} cookie`, variable: `$cookie_${name}`, lines: [], cookie: name };
  // $cookie_<name> cannot name a cookie with other characters: read it from the Cookie header
  const v = `$meridian_cookie_${varName(service)}`;
  const re = name.replace(/[^A-Za-z0-9_]/g, (c) => `\\${c}`);
  return {
    describe: `the ${name} cookie`,
    variable: v,
    lines: [`  map $http_cookie ${v} {`, '    default "";', `    "~(?:^|;\\s*)${re}=([^;]*)" $1;`, '  }'],
    cookie: name,
  };
}

/** The nginx export's `MERIDIAN_LOSS_STICKY_CANARY` for a service: what of the sticky canary is kept. */
export function stickyCanaryLoss(input: ExportInput, service: string): LossFinding {
  const key = userKey(input, service);
  const base = { code: 'MERIDIAN_LOSS_STICKY_CANARY', target: 'nginx', service } as const;
  if (key.variable === null)
    return {
      ...base,
      model: `canary by the bucket of the user key (routing.${service}.stickiness); none is declared, so per request`,
      exported: 'server weights per request: each cluster’s weight split between its stable and canary servers by the canary weight',
      effect: `as the model without a user key: a user’s requests are spread over versions; declare routing.${service}.stickiness for a sticky canary (split_clients)`,
      severity: 'info',
    };
  const canaries = Object.entries(input.projection.services[service]?.versions ?? {})
    .filter(([, v]) => (v.canary?.weight ?? 0) > 0)
    .map(([c, v]) => `${c} ${v.canary?.weight ?? 0}%`);
  const untracked = canaries.length > 0 && canaryTiers(input, service).length === 0;
  return {
    ...base,
    model: `canary by user bucket (FNV-1a and fmix32 of the service and ${key.describe}); ${canaries.length > 0 ? `canaries: ${canaries.join(', ')}` : 'no canary now'}`,
    exported: untracked
      ? 'the clusters’ ingress addresses: no canary servers among them to split'
      : `split_clients per routing row on ${key.describe} (MurmurHash2 of "${service}/<key>"): the users under the row’s canary share go to the canary servers of its first level’s canary clusters (their stable servers as backup), the others to its stable servers weighted by share × (1 − canary weight); a request without the key is split by its $request_id${key.cookie === null ? '' : ', and gets that id as its cookie'}, as the router does`,
    effect: untracked
      ? 'each cluster splits stable and canary behind its ingress; nothing in nginx keeps a user on one version'
      : 'each user keeps one version and each cluster’s stable and canary get the model’s share of the row’s users, but not the same users as the Node router (another hash); within a version the cluster is chosen per request (the router keeps a user on one cluster); a canary user whose canary servers fail goes to its first level’s stable servers, never to the second level; a canary only in a row’s second level gets none of that row’s users',
    severity: 'approximation',
  };
}
