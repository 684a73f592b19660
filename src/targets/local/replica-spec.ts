/**
 * From a rendered service to what the local driver runs: whether it can run locally at all, the spec hash
 * that decides replacement, and the command, working directory and environment of its replicas.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { contentHash } from '../../render/canonical.js';
import type { RenderedCluster, RenderedService } from '../../render/render.js';
import { TargetError } from '../errors.js';
import type { Track } from '../target.js';
import { DEFAULT_INHERITED_ENV, type LocalTargetOptions } from './local-options.js';
import type { Desired } from './replicas.js';
import type { SecretResolver } from './secret-resolver.js';

const RESERVED = /^(PORT|MERIDIAN_.*)$/;

/** Why a rendered service cannot run locally, or null. */
export function notRunnable(service: string, spec: RenderedService, cluster: string): TargetError | null {
  if (!spec.local || spec.local.command.length === 0) {
    return new TargetError(
      'MERIDIAN_E_TARGET_NO_LOCAL_COMMAND',
      `service ${service} has no local.command, so it cannot run on the local driver (cluster ${cluster})`,
      {
        hint: `add \`local: { command: [node, services/${service}.mjs] }\` to services.${service}`,
      },
    );
  }
  return null;
}

/** The hash that tells whether a track's replicas must be replaced (the replica count is left out: it scales). */
export function specHashOf(cluster: string, state: RenderedCluster, spec: RenderedService): string {
  // replicas is left out: a change of count scales, it does not replace
  const { replicas: _replicas, ...rest } = spec;
  return contentHash({ cluster, region: state.region, spec: rest });
}

/**
 * What a track's replicas run: the command (`node` as the Node that runs Meridian), the working directory
 * (which must exist), and the environment — inherited variables, `MERIDIAN_*`, the rendered env and config,
 * and the resolved secrets (their values listed in `redact`). `ofrepUrl`: the flags' OFREP server, if any.
 */
export function desiredOf(
  opts: LocalTargetOptions,
  ofrepUrl: string | undefined,
  cluster: string,
  state: RenderedCluster,
  service: string,
  spec: RenderedService,
  track: Track,
  revisionId: string,
  specHash: string,
  replicas: number,
  resolver: SecretResolver,
): Desired {
  const local = spec.local as NonNullable<RenderedService['local']>;
  const cwd = local.cwd !== undefined ? resolve(opts.fleetDir, local.cwd) : resolve(opts.fleetDir);
  let isDir = false;
  try {
    isDir = statSync(cwd).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new TargetError('MERIDIAN_E_TARGET_NO_CWD', `the working directory of service ${service} does not exist: ${cwd}`, {
      hint: 'local.cwd is relative to the fleet directory',
    });
  }
  const secrets = resolver.resolveAll(spec.secrets, { cluster, service });
  const source = opts.env ?? process.env;
  const env: Record<string, string> = {};
  for (const name of opts.inheritEnv ?? DEFAULT_INHERITED_ENV) {
    const v = source[name];
    if (v !== undefined) env[name] = v;
  }
  env['MERIDIAN_SERVICE'] = service;
  env['MERIDIAN_VERSION'] = spec.version;
  env['MERIDIAN_CLUSTER'] = cluster;
  env['MERIDIAN_REGION'] = state.region;
  env['MERIDIAN_TRACK'] = track;
  if (ofrepUrl !== undefined) env['MERIDIAN_OFREP_URL'] = ofrepUrl;
  const put = (k: string, v: string): void => {
    if (!RESERVED.test(k)) env[k] = v;
  };
  for (const [k, v] of Object.entries(spec.env)) put(k, v);
  for (const [k, v] of Object.entries(spec.config)) put(k, v);
  const redact: string[] = [];
  for (const [k, v] of secrets) {
    put(k, v.reveal());
    redact.push(v.reveal());
  }
  const [first, ...rest] = local.command;
  const command = first === 'node' ? [opts.nodePath ?? process.execPath, ...rest] : [...local.command];
  return {
    revisionId,
    version: spec.version,
    specHash,
    replicas,
    healthPath: spec.health?.path ?? null,
    command,
    cwd,
    env,
    redact,
  };
}
