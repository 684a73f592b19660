/**
 * Preflight (`meridian validate`): runs every check over a rendered revision and the recorded state,
 * applies waivers, merges per-cluster duplicates and returns every finding at once, sorted. Fail
 * closed: a store that cannot be asked is a finding, never a pass.
 */
import type { RenderedCluster, RenderResult } from '../render/render.js';
import { createSecretPresence } from '../secrets/index.js';
import type { SecretPresence } from '../secrets/presence.js';
import type { LoadedFleet } from '../spec/load.js';
import { checkCustomRules } from './checks/custom-rules.js';
import { checkDigests } from './checks/digests.js';
import { checkFailover } from './checks/failover.js';
import { checkMinReplicas } from './checks/min-replicas.js';
import { checkNoLiteralSecrets } from './checks/no-literal-secrets.js';
import { checkPlacement } from './checks/placement.js';
import { checkRetries } from './checks/retries.js';
import { checkQuotas } from './checks/quotas.js';
import { checkResidency } from './checks/residency.js';
import { checkResourcesRequired } from './checks/resources-required.js';
import { checkSecrets } from './checks/secrets.js';
import { checkTlsIngress } from './checks/tls-ingress.js';
import { checkVersions } from './checks/versions.js';
import { type CheckContext, createContext } from './context.js';
import { type Finding, compareFindings } from '../findings/finding.js';
import { groupFindings } from './group.js';
import { applyWaivers } from './waivers.js';

export interface PreflightInput {
  readonly loaded: LoadedFleet;
  readonly rendered: RenderResult;
  /** The time of the run: waivers expire against it. */
  readonly now: Date;
  /** What each cluster runs now (from the store); absent on a first rollout. */
  readonly recorded?: Readonly<Record<string, RenderedCluster>> | undefined;
  /** Asks secret stores for presence; default: {@link createSecretPresence} over the clusters' targets and `env`. */
  readonly secrets?: SecretPresence | undefined;
  /** The environment `env:` references and store tokens come from (default: `process.env`). */
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** A synchronous check: pure over the context. */
type Check = (ctx: CheckContext) => Finding[];

/** The synchronous checks, by name (the name is each finding's `check`, and a JUnit test case). */
export const CHECKS: Readonly<Record<string, Check>> = {
  digests: checkDigests,
  versions: checkVersions,
  quotas: checkQuotas,
  residency: checkResidency,
  failover: checkFailover,
  placement: checkPlacement,
  retries: checkRetries,
  'no-literal-secrets': checkNoLiteralSecrets,
  'resources-required': checkResourcesRequired,
  'min-replicas': checkMinReplicas,
  'tls-ingress': checkTlsIngress,
  'custom-rules': checkCustomRules,
};

/** Every check preflight runs, in order: `load` and `render` (the input), the checks, `secrets`, `waivers`. */
export const PREFLIGHT_CHECKS: readonly string[] = ['load', 'render', ...Object.keys(CHECKS), 'secrets', 'waivers'];

/** Runs every check and returns all findings (including the render's), waived ones marked, sorted. */
export async function preflight(input: PreflightInput): Promise<Finding[]> {
  const ctx = createContext(input);
  const raw: Finding[] = [];
  for (const [name, check] of Object.entries(CHECKS)) {
    for (const f of check(ctx)) raw.push({ ...f, check: name });
  }
  const presence =
    input.secrets ?? createSecretPresence({ clusters: input.rendered.revision.clusters, ...(input.env ? { env: input.env } : {}) });
  for (const f of await checkSecrets(ctx, presence)) raw.push({ ...f, check: 'secrets' });

  const { findings, waiverFindings } = applyWaivers(ctx, raw);
  const rendered = input.rendered.findings.map((f) => ({ ...f, check: 'render' }));
  const all = [...rendered, ...groupFindings(findings), ...waiverFindings.map((f) => ({ ...f, check: 'waivers' }))];
  return all.sort(compareFindings);
}
