/**
 * `meridian render --format kubernetes`: the objects the kubernetes driver would apply to each
 * kubernetes cluster for a revision's stable track — the same functions the driver uses, so what is
 * reviewed is what is applied. Pure.
 */
import type { Revision } from '../../render/render.js';
import { parseKubernetesTarget } from './target-spec.js';
import { applySetId, applySetParent, type KubeObject, type ManifestContext, trackObjects } from './manifests.js';

/** One cluster's objects, in apply order (the ApplySet parent first). */
export interface ClusterManifests {
  readonly cluster: string;
  readonly objects: readonly KubeObject[];
}

/** The manifests of every kubernetes cluster of the revision (or of `only`). Clusters of other drivers are skipped. */
export function kubernetesManifests(revision: Revision, only?: string): ClusterManifests[] {
  const out: ClusterManifests[] = [];
  for (const [name, c] of Object.entries(revision.clusters).sort(([a], [b]) => a.localeCompare(b))) {
    if (c.driver !== 'kubernetes' || (only !== undefined && name !== only)) continue;
    const spec = parseKubernetesTarget(name, c.target);
    const parent = `meridian-${name}`;
    const ctx: ManifestContext = {
      cluster: name,
      namespace: spec.namespace,
      applySetId: applySetId(parent, spec.namespace),
      gateway: spec.gateway ?? null,
    };
    const objects: KubeObject[] = [applySetParent(ctx, parent)];
    for (const s of Object.keys(c.services).sort()) objects.push(...trackObjects(ctx, c, s, 'stable', revision.id));
    out.push({ cluster: name, objects });
  }
  return out;
}

/** What a rollout would do to one kubernetes cluster's objects, and how its canary traffic is split. */
export interface ClusterObjectChanges {
  readonly cluster: string;
  readonly namespace: string;
  /** `gateway`: HTTPRoute weights on the cluster's Gateway; `replicas`: the canary's share of the replicas. */
  readonly canary: 'gateway' | 'replicas';
  readonly create: readonly string[];
  readonly update: readonly string[];
  readonly prune: readonly string[];
  readonly unchanged: number;
}

/** An object's content without what changes with every revision (the revision label, hashes). */
function content(o: KubeObject): string {
  const labels = { ...o.metadata.labels };
  delete labels['meridian.dev/revision'];
  const annotations = { ...o.metadata.annotations };
  delete annotations['meridian.dev/object-hash'];
  delete annotations['meridian.dev/spec-revisions'];
  return JSON.stringify({ ...o, metadata: { ...o.metadata, labels, annotations } });
}

/**
 * Per kubernetes cluster, the objects the new revision creates, changes and prunes compared with the
 * previous one's (`Kind/name`). A cluster the previous revision did not have is all creates.
 */
export function objectChanges(previous: Revision | undefined, next: Revision): ClusterObjectChanges[] {
  const before = new Map((previous ? kubernetesManifests(previous) : []).map((m) => [m.cluster, m.objects]));
  return kubernetesManifests(next).map((m) => {
    const old = new Map((before.get(m.cluster) ?? []).map((o) => [`${o.kind}/${o.metadata.name}`, o]));
    const create: string[] = [];
    const update: string[] = [];
    let unchanged = 0;
    for (const o of m.objects) {
      const key = `${o.kind}/${o.metadata.name}`;
      const was = old.get(key);
      old.delete(key);
      if (!was) create.push(key);
      else if (content(was) !== content(o)) update.push(key);
      else unchanged += 1;
    }
    const spec = parseKubernetesTarget(m.cluster, next.clusters[m.cluster]?.target);
    return {
      cluster: m.cluster,
      namespace: spec.namespace,
      canary: spec.gateway ? 'gateway' : 'replicas',
      create,
      update,
      prune: [...old.keys()],
      unchanged,
    };
  });
}

/** The changes as text for `meridian plan`. */
export function formatObjectChanges(changes: readonly ClusterObjectChanges[]): string {
  if (changes.length === 0) return '';
  const lines = ['kubernetes objects (server-side apply, field manager meridian):'];
  for (const c of changes) {
    const canary = c.canary === 'gateway' ? 'canary by HTTPRoute weights' : 'canary by replica ratio (no Gateway)';
    lines.push(
      `  ${c.cluster} (namespace ${c.namespace}; ${canary}): ${c.create.length} to create, ${c.update.length} to change, ${c.prune.length} to prune, ${c.unchanged} unchanged`,
    );
    for (const k of c.create) lines.push(`    + ${k}`);
    for (const k of c.update) lines.push(`    ~ ${k}`);
    for (const k of c.prune) lines.push(`    - ${k}`);
  }
  return `${lines.join('\n')}\n`;
}
