/**
 * Services' data migrations (`services.<s>.migrations`, docs/migrations.md) as a rollout runs them: once
 * per region that the rollout moves, with the service's environment as rendered for a cluster of that
 * region; only those the ledger does not record as applied. And the rule that a contract migration does
 * not ship with a new version of its service. Pure.
 */
import { RolloutError } from '../errors.js';
import type { RenderedCluster, Revision } from '../render/render.js';
import type { DataMigration, Fleet } from '../spec/schema.js';
import type { DataMigrationRecord } from '../store/store.js';
import { parseDuration } from '../units/duration.js';
import type { MachineMigrations } from './state-machine.js';

/** How long one run of `up` or `down` may take when the migration says nothing. */
export const DEFAULT_MIGRATION_TIMEOUT_MS = 5 * 60_000;

/** One migration of one service in one region, with what it needs to run; persisted in the rollout's spec. */
export interface MigrationRun {
  /** `region/service/name`: the state machine's name for it. */
  readonly key: string;
  readonly region: string;
  readonly service: string;
  readonly name: string;
  readonly phase: 'expand' | 'contract';
  readonly up: string | readonly string[];
  readonly down: string | readonly string[];
  readonly timeoutMs: number;
  /** The cluster of the region whose rendered service gave the environment. */
  readonly cluster: string;
  /** The service's `env` and `config` there (plain values: secrets are references, resolved when run). */
  readonly env: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, { readonly ref: string }>>;
}

/** The key of a migration: `region/service/name`. */
export function migrationKey(region: string, service: string, name: string): string {
  return `${region}/${service}/${name}`;
}

/**
 * The migrations a rollout of `revision` to `clusters` runs: for each region with a cluster among them
 * (sorted), each service placed there that declares migrations (sorted), each migration as declared —
 * except those the ledger records as applied in that region.
 */
export function migrationRuns(
  fleet: Pick<Fleet, 'services'>,
  revision: Revision,
  clusters: readonly string[],
  ledger: readonly DataMigrationRecord[],
): MigrationRun[] {
  const applied = new Set(ledger.filter((r) => r.status === 'applied').map((r) => migrationKey(r.region, r.service, r.name)));
  const moving = new Set(clusters);
  const regions = [...new Set(clusters.map((c) => revision.clusters[c]?.region).filter((r): r is string => r !== undefined))].sort();
  const out: MigrationRun[] = [];
  for (const region of regions) {
    const inRegion = Object.keys(revision.clusters)
      .filter((c) => revision.clusters[c]?.region === region)
      .sort((a, b) => Number(moving.has(b)) - Number(moving.has(a)) || a.localeCompare(b));
    for (const [service, def] of Object.entries(fleet.services).sort(([a], [b]) => a.localeCompare(b))) {
      if (!def.migrations?.length) continue;
      const cluster = inRegion.find((c) => revision.clusters[c]?.services[service] !== undefined);
      const rendered = cluster === undefined ? undefined : revision.clusters[cluster]?.services[service];
      if (cluster === undefined || !rendered) continue;
      for (const m of def.migrations) {
        const key = migrationKey(region, service, m.name);
        if (applied.has(key)) continue;
        out.push(run(key, region, service, m, cluster, { ...rendered.env, ...rendered.config }, rendered.secrets));
      }
    }
  }
  return out;
}

function run(
  key: string,
  region: string,
  service: string,
  m: DataMigration,
  cluster: string,
  env: Record<string, string>,
  secrets: Readonly<Record<string, { readonly ref: string }>>,
): MigrationRun {
  const timeoutMs = m.timeout === undefined ? DEFAULT_MIGRATION_TIMEOUT_MS : (parseDuration(m.timeout) ?? DEFAULT_MIGRATION_TIMEOUT_MS);
  return { key, region, service, name: m.name, phase: m.phase, up: m.up, down: m.down, timeoutMs, cluster, env, secrets };
}

/** The state machine's view of the runs (undefined when there are none: the machine is then as without migrations). */
export function machineMigrations(
  runs: readonly MigrationRun[],
  revision: Revision,
  clusters: readonly string[],
): MachineMigrations | undefined {
  if (runs.length === 0) return undefined;
  const regions: Record<string, string> = {};
  for (const c of clusters) {
    const r = revision.clusters[c]?.region;
    if (r !== undefined) regions[c] = r;
  }
  return { regions, steps: runs.map((r) => ({ key: r.key, region: r.region, phase: r.phase })) };
}

/**
 * Refuses a contract migration that would run in the same rollout as a new version of its service: the old
 * version serves beside the canary, and is what a rollback returns to, so it still needs the expanded
 * schema that the contract removes. `before`: what each cluster runs now.
 */
export function assertNoContractWithNewVersion(
  runs: readonly MigrationRun[],
  revision: Revision,
  before: Readonly<Record<string, RenderedCluster | undefined>>,
): void {
  for (const r of runs) {
    if (r.phase !== 'contract') continue;
    for (const [cluster, state] of Object.entries(revision.clusters)) {
      const now = before[cluster]?.services[r.service]?.version;
      const next = state.services[r.service]?.version;
      if (now === undefined || next === undefined || now === next) continue;
      throw new RolloutError(
        'MERIDIAN_E_MIGRATION_CONTRACT',
        `the contract migration ${r.name} of service ${r.service} would run in region ${r.region} in the same rollout as its new version ${next} (cluster ${cluster} runs ${now}): the old version, which serves beside the canary and is what a rollback returns to, may still need what the contract removes`,
        {
          hint: `ship the version first; contract in a later rollout (remove ${r.name} from services.${r.service}.migrations for now, or keep ${r.service} at ${now})`,
        },
      );
    }
  }
}

/** The runs as `meridian plan` lists them, per region: one line each, or a line saying there are none. */
export function formatMigrationRuns(runs: readonly MigrationRun[]): string {
  if (runs.length === 0) return '';
  const lines = ['data migrations the rollout runs (the ledger records none of them applied):'];
  const regionWidth = Math.max(...runs.map((r) => r.region.length));
  const nameWidth = Math.max(...runs.map((r) => r.service.length + r.name.length + 1));
  for (const r of runs) {
    const when = r.phase === 'expand' ? `before the first canary in ${r.region}` : 'after the last wave';
    lines.push(`  ${r.region.padEnd(regionWidth)}  ${`${r.service}/${r.name}`.padEnd(nameWidth)}  ${r.phase}, ${when}`);
  }
  return `${lines.join('\n')}\n`;
}
