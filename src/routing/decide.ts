/**
 * The per-request decision: a lookup in a precomputed {@link RoutingTable} and a hash of the user key.
 * Allocation-free: the result is written into a caller-provided (or shared) {@link Decision}.
 */
import { BUCKETS, fmix32, fnv1aString } from './hash.js';
import { ROW, type RoutingTable } from './table.js';

/** What a decision says. */
export type DecisionKind =
  /** Served from the client's home region (or, for `steering: weighted` and unknown clients, the first level). */
  | 'primary'
  /** Served from any other level: failover (the home region has nothing left), or spill-over past health or capacity. */
  | 'spillover'
  /** Served from a level in panic: health is ignored inside it (never outside the residency-allowed set). */
  | 'panic'
  /** A `prefer` residency rule had no allowed cluster that could serve, so every jurisdiction was used. */
  | 'residency-widened'
  /** A `lock` residency rule leaves no cluster: reject (the router answers 503 with this reason). */
  | 'residency-reject'
  /** Nothing can serve (every candidate is down and panic is disabled, or there is no candidate). */
  | 'no-healthy'
  /** The table has no such service. */
  | 'unknown-service';

/** The result of {@link decide}; reused between calls, so copy what you keep. */
export interface Decision {
  kind: DecisionKind;
  /** Index into `table.clusters`, or −1 when there is no cluster. */
  clusterIndex: number;
  cluster: string | null;
  region: string | null;
  /** Served by the canary version. */
  canary: boolean;
  /** The version that serves the request. */
  version: string | null;
  /** The priority level (0 = first) the cluster was chosen from, or −1. */
  priority: number;
  /** The user's bucket, 0..9999 (canary when `bucket < weight% × 100`), or −1. */
  bucket: number;
  /** The choice came from the user key's hash (same user, same cluster and version while the table is unchanged). */
  sticky: boolean;
  /** The level was in panic. */
  panic: boolean;
  /** The residency rule was widened (`prefer` only). */
  widened: boolean;
  /** The client's home region, or null for an unknown country. */
  home: string | null;
}

/** A fresh decision object to pass to {@link decide} and reuse. */
export function createDecision(): Decision {
  return {
    kind: 'no-healthy',
    clusterIndex: -1,
    cluster: null,
    region: null,
    canary: false,
    version: null,
    priority: -1,
    bucket: -1,
    sticky: false,
    panic: false,
    widened: false,
    home: null,
  };
}

const SHARED = createDecision();
const UNIT_SALT = 0x9e3779b9 | 0;
const RETRY_SALT = 0x2545f491;
const ALMOST_ONE = 0.9999999999999999;
const TWO32 = 4294967296;
const TWO31 = 2147483648;
/**
 * `rand` passes through this so that `u` is a plain double in optimised code: merging the tagged
 * parameter with computed doubles made TurboFan box every double (32 B per decision, measured).
 */
const F64 = new Float64Array(1);

function clear(out: Decision, kind: DecisionKind, home: string | null, sticky: boolean): Decision {
  out.kind = kind;
  out.clusterIndex = -1;
  out.cluster = null;
  out.region = null;
  out.canary = false;
  out.version = null;
  out.priority = -1;
  out.bucket = -1;
  out.sticky = sticky;
  out.panic = false;
  out.widened = false;
  out.home = home;
  return out;
}

/** Index of the first cumulative value above `u` in `cum[from..to)`; `to − 1` when none is. */
function search(cum: Float64Array, from: number, to: number, u: number): number {
  if (to - from <= 8) {
    for (let i = from; i < to; i++) if (u < (cum[i] as number)) return i;
    return to - 1;
  }
  let lo = from;
  let hi = to - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (u < (cum[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Decides where one request goes.
 *
 * @param service the service (route) name
 * @param country the client's ISO 3166 alpha-2 country (either case), or a region name; anything
 *   else is a client with no home region (the `default` residency rule applies)
 * @param userKey the sticky key (cookie or header value); undefined or empty for none
 * @param rand a uniform random number, used only when there is no user key: a float in [0, 1), or an
 *   integer in [0, 2^31) (scaled by 2^−31) — e.g. `(Math.random() * 0x80000000) | 0`. V8 passes a small
 *   integer as is but boxes a double argument (16 bytes) when the call is not inlined, so the integer
 *   form keeps the caller allocation-free too.
 * @param out where to write the result; defaults to one shared object (read it before the next call)
 */
export function decide(
  t: RoutingTable,
  service: string,
  country: string,
  userKey: string | undefined,
  rand: number,
  out: Decision = SHARED,
): Decision {
  let h = t.homeIndex.get(country);
  if (h === undefined) h = t.unknownHome;
  const home = h < t.unknownHome ? (t.regions[h] as string) : null;
  const sticky = userKey !== undefined && userKey.length > 0;
  const s = t.serviceIndex.get(service);
  if (s === undefined) return clear(out, 'unknown-service', home, sticky);

  let hash = 0;
  F64[0] = rand; // see F64
  let u = F64[0] as number;
  if (sticky) {
    hash = fnv1aString(t.serviceSeed[s] as number, userKey);
    u = (fmix32(hash ^ UNIT_SALT) >>> 0) / TWO32;
  } else if (!(u >= 0 && u < 1)) {
    u = u >= 1 && u < TWO31 ? Math.floor(u) / TWO31 : 0; // the integer form of rand
  }

  // flag variant: by the user's flag bucket, or by splitting u at the thresholds
  const v0 = t.variantStart[s] as number;
  const v1 = t.variantStart[s + 1] as number;
  let variant = 0;
  if (v1 > v0) {
    if (sticky) {
      const fb = (fmix32(fnv1aString(t.flagSeed[s] as number, userKey)) >>> 0) % BUCKETS;
      while (variant < v1 - v0 && fb >= (t.thresholds[v0 + variant] as number)) variant++;
    } else {
      const x = u * BUCKETS;
      while (variant < v1 - v0 && x >= (t.thresholds[v0 + variant] as number)) variant++;
      const lo = variant === 0 ? 0 : (t.thresholds[v0 + variant - 1] as number);
      const hi = variant === v1 - v0 ? BUCKETS : (t.thresholds[v0 + variant] as number);
      u = (x - lo) / (hi - lo);
      if (!(u < 1)) u = ALMOST_ONE;
    }
  }

  const row = (t.rowBase[s] as number) + h * (v1 - v0 + 1) + variant;
  const kind = t.rowKind[row] as number;
  if (kind !== ROW.ok) return clear(out, kind === ROW.residencyReject ? 'residency-reject' : 'no-healthy', home, sticky);

  // priority level, then cluster inside it; u is rescaled at each step so one number serves both
  const l0 = t.rowLevelStart[row] as number;
  const l1 = t.rowLevelStart[row + 1] as number;
  const level = search(t.levelCum, l0, l1, u);
  const lLo = level === l0 ? 0 : (t.levelCum[level - 1] as number);
  const lHi = t.levelCum[level] as number;
  let u2 = lHi > lLo ? (u - lLo) / (lHi - lLo) : 0;
  if (!(u2 < 1)) u2 = ALMOST_ONE;
  const e0 = t.levelEntryStart[level] as number;
  const e1 = t.levelEntryStart[level + 1] as number;
  if (e1 <= e0) return clear(out, 'no-healthy', home, sticky); // cannot happen: a level with traffic has entries
  const entry = search(t.entryCum, e0, e1, u2);
  const c = t.entryCluster[entry] as number;

  let bucket: number;
  if (sticky) {
    bucket = (fmix32(hash) >>> 0) % BUCKETS;
  } else {
    const eLo = entry === e0 ? 0 : (t.entryCum[entry - 1] as number);
    const eHi = t.entryCum[entry] as number;
    const u3 = eHi > eLo ? (u2 - eLo) / (eHi - eLo) : 0;
    bucket = Math.min(BUCKETS - 1, (u3 * BUCKETS) | 0);
  }
  return chose(out, t, s, row, l0, level, c, bucket, home, sticky);
}

/** Writes the choice of cluster `c` at priority level `level` of `row` (service `s`) into `out`. */
function chose(
  out: Decision,
  t: RoutingTable,
  s: number,
  row: number,
  l0: number,
  level: number,
  c: number,
  bucket: number,
  home: string | null,
  sticky: boolean,
): Decision {
  const k = s * t.clusters.length + c;
  const canary = bucket < (t.canaryBp[k] as number);
  const panic = t.levelPanic[level] === 1;
  const widened = t.rowWidened[row] === 1;
  out.kind = panic ? 'panic' : widened ? 'residency-widened' : t.levelPrimary[level] === 1 ? 'primary' : 'spillover';
  out.clusterIndex = c;
  out.cluster = t.clusters[c] as string;
  out.region = t.regions[t.clusterRegion[c] as number] as string;
  out.canary = canary;
  out.version = canary ? (t.canaryVersion[k] as string) : (t.stableVersion[k] as string | null);
  out.priority = level - l0;
  out.bucket = bucket;
  out.sticky = sticky;
  out.panic = panic;
  out.widened = widened;
  out.home = home;
  return out;
}

/** The share of a row's traffic that level `l` receives. */
function levelShare(t: RoutingTable, l: number, l0: number): number {
  return (t.levelCum[l] as number) - (l === l0 ? 0 : (t.levelCum[l - 1] as number));
}

/** The fraction of its level's traffic that entry `e` receives. */
function entryWeight(t: RoutingTable, l: number, e: number): number {
  return (t.entryCum[e] as number) - (e === (t.levelEntryStart[l] as number) ? 0 : (t.entryCum[e - 1] as number));
}

function excludedHas(excluded: ArrayLike<number>, c: number): boolean {
  for (let i = 0; i < excluded.length; i++) if (excluded[i] === c) return true;
  return false;
}

/**
 * Chooses the cluster for a retry: another cluster of the same table row, so the same residency rule
 * holds (a `lock` row holds only allowed clusters). Among the clusters not in `excluded`, those with
 * traffic in the row are chosen in proportion to their share; when none is left, the first priority
 * level that still has a cluster is used, by weight. Nothing left: `no-healthy`. The version follows
 * the user's bucket on the new cluster, so a sticky user keeps its canary assignment.
 *
 * @param rand a fresh uniform number, as for {@link decide} (ignored for a sticky user, whose choice is a hash)
 * @param excluded cluster indices already tried (the previous decisions' `clusterIndex`)
 */
export function nextAttempt(
  t: RoutingTable,
  service: string,
  country: string,
  userKey: string | undefined,
  rand: number,
  excluded: ArrayLike<number>,
  out: Decision = SHARED,
): Decision {
  let h = t.homeIndex.get(country);
  if (h === undefined) h = t.unknownHome;
  const home = h < t.unknownHome ? (t.regions[h] as string) : null;
  const sticky = userKey !== undefined && userKey.length > 0;
  const s = t.serviceIndex.get(service);
  if (s === undefined) return clear(out, 'unknown-service', home, sticky);
  let hash = 0;
  F64[0] = rand;
  let u = F64[0] as number;
  u = u >= 0 && u < 1 ? u : u >= 1 && u < TWO31 ? Math.floor(u) / TWO31 : 0;
  if (sticky) {
    hash = fnv1aString(t.serviceSeed[s] as number, userKey);
    u = (fmix32(hash ^ RETRY_SALT) >>> 0) / TWO32;
  }
  const v0 = t.variantStart[s] as number;
  const v1 = t.variantStart[s + 1] as number;
  let variant = 0;
  if (v1 > v0) {
    if (sticky) {
      const fb = (fmix32(fnv1aString(t.flagSeed[s] as number, userKey)) >>> 0) % BUCKETS;
      while (variant < v1 - v0 && fb >= (t.thresholds[v0 + variant] as number)) variant++;
    } else {
      const x = u * BUCKETS;
      while (variant < v1 - v0 && x >= (t.thresholds[v0 + variant] as number)) variant++;
      const lo = variant === 0 ? 0 : (t.thresholds[v0 + variant - 1] as number);
      const hi = variant === v1 - v0 ? BUCKETS : (t.thresholds[v0 + variant] as number);
      u = Math.min(ALMOST_ONE, (x - lo) / (hi - lo));
    }
  }
  const row = (t.rowBase[s] as number) + h * (v1 - v0 + 1) + variant;
  const kind = t.rowKind[row] as number;
  if (kind !== ROW.ok) return clear(out, kind === ROW.residencyReject ? 'residency-reject' : 'no-healthy', home, sticky);
  const l0 = t.rowLevelStart[row] as number;
  const l1 = t.rowLevelStart[row + 1] as number;

  // pass 1: clusters with traffic in the row, in proportion to their share
  let chosen = -1;
  let chosenLevel = -1;
  let rest = 0;
  let total = 0;
  for (let l = l0; l < l1; l++) {
    const ls = levelShare(t, l, l0);
    if (ls <= 0) continue;
    for (let e = t.levelEntryStart[l] as number; e < (t.levelEntryStart[l + 1] as number); e++) {
      if (!excludedHas(excluded, t.entryCluster[e] as number)) total += ls * entryWeight(t, l, e);
    }
  }
  if (total > 0) {
    let target = u * total;
    pick: for (let l = l0; l < l1; l++) {
      const ls = levelShare(t, l, l0);
      if (ls <= 0) continue;
      for (let e = t.levelEntryStart[l] as number; e < (t.levelEntryStart[l + 1] as number); e++) {
        const c = t.entryCluster[e] as number;
        const w = ls * entryWeight(t, l, e);
        if (w <= 0 || excludedHas(excluded, c)) continue;
        chosen = c; // the last one seen stands if rounding runs the target past the end
        chosenLevel = l;
        rest = ALMOST_ONE;
        if (target < w) {
          rest = target / w;
          break pick;
        }
        target -= w;
      }
    }
  }
  // pass 2: the first level with any cluster left, by weight
  for (let l = l0; l < l1 && chosen < 0; l++) {
    let sum = 0;
    for (let e = t.levelEntryStart[l] as number; e < (t.levelEntryStart[l + 1] as number); e++) {
      if (!excludedHas(excluded, t.entryCluster[e] as number)) sum += entryWeight(t, l, e);
    }
    if (sum <= 0) continue;
    let target = u * sum;
    for (let e = t.levelEntryStart[l] as number; e < (t.levelEntryStart[l + 1] as number); e++) {
      const c = t.entryCluster[e] as number;
      const w = entryWeight(t, l, e);
      if (w <= 0 || excludedHas(excluded, c)) continue;
      chosen = c;
      chosenLevel = l;
      rest = ALMOST_ONE;
      if (target < w) {
        rest = target / w;
        break;
      }
      target -= w;
    }
  }
  if (chosen < 0) return clear(out, 'no-healthy', home, sticky);

  const bucket = sticky ? (fmix32(hash) >>> 0) % BUCKETS : Math.min(BUCKETS - 1, Math.floor(rest * BUCKETS));
  return chose(out, t, s, row, l0, chosenLevel, chosen, bucket, home, sticky);
}
