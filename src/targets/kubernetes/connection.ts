/**
 * How the kubernetes driver reaches one cluster: a client configuration from the cluster's `target`
 * section — a kubeconfig file (and context), or a server URL with its CA file and a bearer token given
 * as a secret reference (`env:` or `file:`, resolved here, never written anywhere).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubernetesTargetSpec } from '../../spec/schema.js';
import { TargetError } from '../errors.js';
import { SecretResolver } from '../local/secret-resolver.js';

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
