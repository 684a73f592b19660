/** A kubernetes cluster's `target` section, parsed (no client library needed: render and plan use it too). */
import { KubernetesTargetSpec } from '../../spec/schema.js';
import { TargetError } from '../errors.js';

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
