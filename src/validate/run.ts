/**
 * One call for `meridian validate`: load, render, preflight. Returns every finding and whether the input
 * was unusable (exit 2), plus the checks that ran (for the JUnit reporter's passing test cases).
 */
import type { RenderedCluster } from '../render/render.js';
import { render } from '../render/render.js';
import type { SecretPresence } from '../secrets/presence.js';
import { tryLoadFleet } from '../spec/load.js';
import { exitCodeFor } from './exit-code.js';
import type { Finding } from '../findings/finding.js';
import { PREFLIGHT_CHECKS, preflight } from './preflight.js';

export interface ValidateResult {
  readonly findings: readonly Finding[];
  /** True when the fleet did not load: only load findings, exit 2. */
  readonly unusable: boolean;
  /** The checks that ran. */
  readonly checks: readonly string[];
  /** 0 clean, 1 findings, 2 unusable input. */
  readonly exitCode: 0 | 1 | 2;
}

export async function validateFleet(
  path: string,
  opts: {
    now: Date;
    recorded?: Readonly<Record<string, RenderedCluster>> | undefined;
    secrets?: SecretPresence | undefined;
    env?: NodeJS.ProcessEnv | undefined;
  },
): Promise<ValidateResult> {
  const loaded = tryLoadFleet(path); // throws FleetNotFoundError when there is no fleet at all
  if ('findings' in loaded) {
    return { findings: loaded.findings, unusable: true, checks: ['load'], exitCode: exitCodeFor(loaded.findings, { unusable: true }) };
  }
  const findings = await preflight({
    loaded,
    rendered: render(loaded),
    now: opts.now,
    ...(opts.recorded ? { recorded: opts.recorded } : {}),
    ...(opts.secrets ? { secrets: opts.secrets } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  return { findings, unusable: false, checks: PREFLIGHT_CHECKS, exitCode: exitCodeFor(findings) };
}
