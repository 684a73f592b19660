/**
 * The routing projection: a routing table read back as named, plain data — service → client region →
 * flag variant → ordered priority levels of clusters with weights and shares, and the row's residency
 * outcome. What `meridian route simulate`, the dashboard's traffic view and every exporter read, so that
 * nobody has to reach into the table's typed arrays. Pure; built from the same arrays `decide` reads.
 */
import { BUCKETS } from './hash.js';
import { STATUS, type Steering } from './model.js';
import type { RowOutcome, RowPlan, RuleSource } from './row-plan.js';
import { ROW, rowPlan, variantCount, type RoutingTable } from './table.js';

/** The row key of clients whose country has no home region. */
export const UNKNOWN_CLIENT = '(unknown)';

/** How a cluster stands in the state the table was built for. */
export type ProjectedState = 'healthy' | 'degraded' | 'unhealthy' | 'ejected';

/** One cluster of a priority level. */
export interface ProjectedCluster {
  readonly cluster: string;
  readonly region: string;
  /** The cluster's configured weight (before health). */
  readonly weight: number;
  readonly state: ProjectedState;
  /** Share of the level's traffic this cluster takes now (0 for a member that cannot be picked). */
  readonly share: number;
}

/** One priority level of a row: the clusters of one region rank and cluster priority. */
export interface ProjectedLevel {
  /** 0 = first. */
  readonly priority: number;
  readonly regions: readonly string[];
  /** The clusters' `priority` value that, with the region rank, defines the level. */
  readonly clusterPriority: number;
  /** Every member, in the table's order; members with share 0 are standby (down, or a later level). */
  readonly clusters: readonly ProjectedCluster[];
  readonly panic: boolean;
  /** Share of the row's traffic this level takes now (Envoy load after capacity caps). */
  readonly share: number;
}

/** The users of one flag variant of a client row (a service without a flag gate has one, for all users). */
export interface ProjectedVariant {
  /** Fraction of the client region's users in this variant (the variants of a row sum to 1). */
  readonly users: number;
  readonly outcome: RowOutcome;
  /** A `prefer` rule was widened to every jurisdiction. */
  readonly widened: boolean;
  readonly levels: readonly ProjectedLevel[];
}

/** One client region's row for one service. */
export interface ProjectedClient {
  /** Countries whose clients have this home region (empty for {@link UNKNOWN_CLIENT}). */
  readonly countries: readonly string[];
  readonly jurisdiction: string | null;
  /** The residency rule that applies, and where it came from. */
  readonly residency: { readonly allow: readonly string[]; readonly mode: 'lock' | 'prefer'; readonly source: RuleSource } | null;
  readonly variants: readonly ProjectedVariant[];
}

/** What runs on one cluster for a service: the stable version and the canary, if any. */
export interface ProjectedVersions {
  readonly stable: string | null;
  /** The canary's version and its weight in percent (0.01 % steps), or null. */
  readonly canary: { readonly version: string; readonly weight: number } | null;
}

/** One service's routing. */
export interface ProjectedService {
  readonly steering: Steering;
  readonly overprovisioningFactor: number;
  /** Fraction, 0..1. */
  readonly panicThreshold: number;
  readonly flag: string | null;
  readonly retries: { readonly attempts: number; readonly budget: number } | null;
  /** Clusters that run the service, sorted. */
  readonly serving: readonly string[];
  readonly versions: Readonly<Record<string, ProjectedVersions>>;
  /** Client region name (or {@link UNKNOWN_CLIENT}) → row. */
  readonly clients: Readonly<Record<string, ProjectedClient>>;
}

/** The whole projection of one routing table. */
export interface RoutingProjection {
  /** The routing table's id (`v<version>-<hash>`). */
  readonly table: string;
  readonly revision: string;
  readonly regions: Readonly<Record<string, { readonly jurisdiction: string; readonly countries: readonly string[] }>>;
  readonly clusters: Readonly<
    Record<
      string,
      {
        readonly region: string;
        readonly jurisdiction: string;
        readonly weight: number;
        readonly priority: number;
        readonly capacityRps: number;
        readonly state: ProjectedState;
      }
    >
  >;
  /** Whether any region declares `traffic.rps` (then capacity caps shape spill-over). */
  readonly capacityCaps: boolean;
  readonly services: Readonly<Record<string, ProjectedService>>;
}

const STATE_OF: Readonly<Record<number, ProjectedState>> = {
  [STATUS.ok]: 'healthy',
  [STATUS.ejected]: 'ejected',
  [STATUS.unhealthy]: 'unhealthy',
  [STATUS.degraded]: 'degraded',
};

/** Projects a routing table. Level and cluster shares are read from the table's own arrays. */
export function routingProjection(t: RoutingTable): RoutingProjection {
  const m = t.model;
  const C = t.clusters.length;
  const state = (c: number): ProjectedState => {
    const s = m.status[c] ?? STATUS.ok;
    if (s === STATUS.ok && (m.healthFraction[c] ?? 1) < 1) return 'degraded';
    return STATE_OF[s] ?? 'healthy';
  };
  const countries: Record<string, string[]> = Object.fromEntries(t.regions.map((r) => [r, [] as string[]]));
  for (const [key, ri] of t.homeIndex) {
    if (/^[A-Z]{2}$/.test(key) && !t.regions.includes(key)) countries[t.regions[ri] ?? '']?.push(key);
  }
  const regions: Record<string, RoutingProjection['regions'][string]> = {};
  t.regions.forEach((r, ri) => (regions[r] = { jurisdiction: m.regionJurisdiction[ri] ?? '', countries: (countries[r] ?? []).sort() }));
  const clusters: Record<string, RoutingProjection['clusters'][string]> = {};
  t.clusters.forEach((c, ci) => {
    clusters[c] = {
      region: t.regions[t.clusterRegion[ci] ?? 0] ?? '',
      jurisdiction: m.clusterJurisdiction[ci] ?? '',
      weight: m.weight[ci] ?? 0,
      priority: m.clusterPriority[ci] ?? 0,
      capacityRps: m.capacity[ci] ?? 0,
      state: state(ci),
    };
  });

  const services: Record<string, ProjectedService> = {};
  t.services.forEach((service, s) => {
    const policy = m.policies[s];
    const V = variantCount(t, s);
    const v0 = t.variantStart[s] ?? 0;
    const serving: string[] = [];
    const versions: Record<string, ProjectedVersions> = {};
    for (let c = 0; c < C; c++) {
      if (m.serving[s * C + c] !== 1) continue;
      const name = t.clusters[c] ?? '';
      serving.push(name);
      const bp = t.canaryBp[s * C + c] ?? 0;
      const cv = t.canaryVersion[s * C + c] ?? null;
      versions[name] = {
        stable: t.stableVersion[s * C + c] ?? null,
        canary: cv !== null && bp > 0 ? { version: cv, weight: bp / 100 } : null,
      };
    }
    const clients: Record<string, ProjectedClient> = {};
    for (let h = 0; h <= t.unknownHome; h++) {
      const variants: ProjectedVariant[] = [];
      let head: RowPlan | null = null;
      for (let v = 0; v < V; v++) {
        const lo = v === 0 ? 0 : (t.thresholds[v0 + v - 1] ?? 0);
        const hi = v === V - 1 ? BUCKETS : (t.thresholds[v0 + v] ?? BUCKETS);
        const row = (t.rowBase[s] ?? 0) + h * V + v;
        const plan = rowPlan(t, s, h, v, false);
        head ??= plan;
        const kind = t.rowKind[row];
        const levels: ProjectedLevel[] = [];
        if (kind === ROW.ok) {
          const l0 = t.rowLevelStart[row] ?? 0;
          plan.levels.forEach((lp, i) => {
            const l = l0 + i;
            const share = (t.levelCum[l] ?? 0) - (l === l0 ? 0 : (t.levelCum[l - 1] ?? 0));
            const e0 = t.levelEntryStart[l] ?? 0;
            const e1 = t.levelEntryStart[l + 1] ?? 0;
            const entryShare = new Map<number, number>();
            for (let e = e0; e < e1; e++)
              entryShare.set(t.entryCluster[e] ?? 0, (t.entryCum[e] ?? 0) - (e === e0 ? 0 : (t.entryCum[e - 1] ?? 0)));
            levels.push({
              priority: i,
              regions: lp.regions.map((r) => t.regions[r] ?? ''),
              clusterPriority: lp.clusterPriority,
              clusters: lp.members.map((c) => ({
                cluster: t.clusters[c] ?? '',
                region: t.regions[t.clusterRegion[c] ?? 0] ?? '',
                weight: m.weight[c] ?? 0,
                state: state(c),
                share: share > 0 ? (entryShare.get(c) ?? 0) : 0,
              })),
              panic: t.levelPanic[l] === 1,
              share: share > 0 ? share : 0,
            });
          });
        }
        const outcome: RowOutcome = kind === ROW.ok ? 'ok' : kind === ROW.residencyReject ? 'residency-reject' : 'no-healthy';
        variants.push({ users: (hi - lo) / BUCKETS, outcome, widened: t.rowWidened[row] === 1, levels });
      }
      const rule = head?.rule ?? null;
      const home = h < t.unknownHome ? (t.regions[h] ?? '') : UNKNOWN_CLIENT;
      clients[home] = {
        countries: h < t.unknownHome ? (regions[home]?.countries ?? []) : [],
        jurisdiction: head?.clientJurisdiction ?? null,
        residency: rule === null ? null : { allow: rule.allow, mode: rule.mode, source: head?.ruleSource ?? 'none' },
        variants,
      };
    }
    services[service] = {
      steering: policy?.steering ?? 'proximity',
      overprovisioningFactor: policy?.overprovisioningFactor ?? 1.4,
      panicThreshold: policy?.panicThreshold ?? 0.5,
      flag: policy?.flag ?? null,
      retries: policy?.retries ?? null,
      serving,
      versions,
      clients,
    };
  });
  return {
    table: t.id,
    revision: t.revision,
    regions,
    clusters,
    capacityCaps: Array.from(m.regionRps).some((x) => x > 0),
    services,
  };
}
