/**
 * How the kubernetes driver reaches one cluster: a client configuration from the cluster's `target`
 * section — a kubeconfig file (and context), or a server URL with its CA file and a bearer token given
 * as a secret reference (`env:` or `file:`, resolved here, never written anywhere).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isAbsolute, resolve } from 'node:path';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import type { KubernetesTargetSpec } from '../../spec/schema.js';
import { TargetError } from '../errors.js';
import { SecretResolver } from '../local/secret-resolver.js';

/**
 * A client configuration that keeps its connections. client-node 1.x gives every request a new agent
 * (`applySecurityAuthentication` → `new https.Agent`): a TLS handshake and a new secure context per
 * request, about 3 ms of the driver's CPU each on these machines, where kubectl keeps one connection.
 * This one hands out one keep-alive agent per set of TLS options instead (proxy agents are left alone).
 */
export class KeepAliveKubeConfig extends KubeConfig {
  readonly #agents = new Map<string, http.Agent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (fresh === undefined || (fresh.constructor !== https.Agent && fresh.constructor !== http.Agent)) return;
    const o = (fresh as https.Agent).options;
    const key = createHash('sha256')
      .update(
        JSON.stringify([fresh.constructor.name, o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername].map(String)),
      )
      .digest('hex');
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      agent = fresh.constructor === https.Agent ? new https.Agent({ ...o, keepAlive: true }) : new http.Agent({ ...o, keepAlive: true });
      this.#agents.set(key, agent);
    }
    fresh.destroy();
    context.setAgent(agent);
  }

  /** Closes the kept connections. */
  close(): void {
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }
}

/** A client configuration for the cluster. Paths are relative to the fleet directory. */
export function kubeConfigFor(
  cluster: string,
  spec: KubernetesTargetSpec,
  opts: { fleetDir: string; env: Readonly<Record<string, string | undefined>> },
): KeepAliveKubeConfig {
  const kc = new KeepAliveKubeConfig();
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
