/**
 * How the kubernetes driver reaches one cluster: a client configuration from the cluster's `target`
 * section — a kubeconfig file (and context), or a server URL with its CA file and a bearer token given
 * as a secret reference (`env:` or `file:`, resolved here, never written anywhere).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubernetesTargetSpec } from '../../spec/schema.js';
import { TargetError } from '../errors.js';
import { SecretResolver } from '../local/secret-resolver.js';

/** A cluster's parsed target section, or a typed error naming the cluster and the field. */
export function parseKubernetesTarget(cluster: string, raw: unknown): KubernetesTargetSpec {
  const r = KubernetesTargetSpec.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new TargetError(
      'MERIDIAN_E_TARGET_K8S_CONFIG',
      `cluster ${cluster}: target.${issue?.path.join('.') || ''} ${issue?.message ?? 'is not a kubernetes target'}`,
      { hint: 'a kubernetes cluster needs target: {namespace, kubeconfig[, context]} or {namespace, server, caFile, token: {ref}}' },
    );
  }
  if (r.data.kubeconfig === undefined && r.data.server === undefined) {
    throw new TargetError('MERIDIAN_E_TARGET_K8S_CONFIG', `cluster ${cluster}: target needs kubeconfig or server`, {
      hint: 'point target.kubeconfig at a kubeconfig file, or give target.server, target.caFile and target.token',
    });
  }
  return r.data;
}

/** A client configuration for the cluster. Paths are relative to the fleet directory. */
export function kubeConfigFor(
  cluster: string,
  spec: KubernetesTargetSpec,
  opts: { fleetDir: string; env: Readonly<Record<string, string | undefined>> },
): KubeConfig {
  const kc = new KubeConfig();
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(opts.fleetDir, p));
  try {
    if (spec.kubeconfig !== undefined) {
      kc.loadFromFile(path(spec.kubeconfig));
      if (spec.context !== undefined) kc.setCurrentContext(spec.context);
      if (spec.server !== undefined) {
        const c = kc.getCurrentCluster();
        if (c) kc.clusters = kc.clusters.map((x) => (x.name === c.name ? { ...x, server: spec.server as string } : x));
      }
      return kc;
    }
    const token = spec.token
      ? new SecretResolver({ fleetDir: opts.fleetDir, env: opts.env })
          .resolve(spec.token.ref, { cluster, service: 'target', name: 'token' })
          .reveal()
      : undefined;
    kc.loadFromClusterAndUser(
      {
        name: cluster,
        server: spec.server as string,
        ...(spec.caFile !== undefined ? { caData: Buffer.from(readFileSync(path(spec.caFile))).toString('base64') } : {}),
        skipTLSVerify: spec.insecureSkipTlsVerify ?? false,
      },
      { name: `meridian-${cluster}`, ...(token !== undefined ? { token } : {}) },
    );
    return kc;
  } catch (err) {
    if (err instanceof TargetError) throw err;
    throw new TargetError(
      'MERIDIAN_E_TARGET_K8S_CONFIG',
      `cluster ${cluster}: cannot load its Kubernetes credentials: ${(err as Error).message}`,
      {
        cause: err,
        hint: 'check target.kubeconfig / target.context, or target.server, target.caFile and target.token of the cluster',
      },
    );
  }
}
