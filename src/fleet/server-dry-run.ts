/**
 * `meridian validate --server-dry-run`: every object the kubernetes clusters would get is sent to its API
 * server with `dryRun=All` (admission, validation, quotas run; nothing is stored), and each refusal
 * becomes a finding at the fleet file and line of what produced it — the service field the message
 * names, else the service, else the cluster's target.
 */
import type { LoadedFleet } from '../spec/load.js';
import type { Revision } from '../render/render.js';
import type { TargetError } from '../targets/errors.js';
import type { Finding } from '../findings/finding.js';
import { formatPath } from '../findings/finding.js';

/** Which service field an API server's message is about (`spec.template.spec.containers[0].image` → image). */
const FIELDS: readonly [RegExp, string][] = [
  [/containers\[\d+\]\.image\b/, 'image'],
  [/containers\[\d+\]\.resources\b|resources\.(limits|requests)/, 'resources'],
  [/containers\[\d+\]\.env\b|secretKeyRef/, 'env'],
  [/containers\[\d+\]\.ports\b|containerPort|targetPort|spec\.ports/, 'port'],
  [/readinessProbe/, 'health'],
  [/spec\.replicas\b/, 'replicas'],
  [/\bdata\b/, 'config'],
];

function pathFor(cluster: string, service: string | undefined, message: string): PropertyKey[] {
  if (/namespaces? "[^"]*" not found/.test(message)) return ['clusters', cluster, 'target', 'namespace'];
  if (service === undefined) return ['clusters', cluster, 'target'];
  const key = /\bdata\[([^\]]+)\]/.exec(message)?.[1]; // a ConfigMap key: the config entry itself
  if (key !== undefined) return ['services', service, 'config', key];
  const field = FIELDS.find(([re]) => re.test(message))?.[1];
  return field ? ['services', service, field] : ['services', service];
}

/** Sends each kubernetes cluster's objects to its API server with dry-run; the refusals as findings. */
export async function serverDryRunFindings(
  loaded: Pick<LoadedFleet, 'dir' | 'sources'>,
  revision: Revision,
  opts: { env: Readonly<Record<string, string | undefined>> },
): Promise<Finding[]> {
  const clusters = Object.entries(revision.clusters).filter(([, c]) => c.driver === 'kubernetes');
  if (clusters.length === 0) return [];
  const { KubernetesTarget } = await import('../targets/kubernetes/kubernetes-target.js');
  const target = new KubernetesTarget({ fleetDir: loaded.dir, env: opts.env });
  const findings: Finding[] = [];
  try {
    for (const [name, state] of clusters) {
      let results: { object: { metadata: { labels?: Record<string, string>; name: string }; kind: string }; error: TargetError | null }[];
      try {
        results = await target.dryRun({ cluster: name, revisionId: revision.id, state, track: 'stable' });
      } catch (err) {
        const e = err as TargetError;
        const path = ['clusters', name, 'target'];
        const location = loaded.sources.locate(path);
        findings.push({
          code: e.code ?? 'MERIDIAN_E_TARGET_K8S_FAILED',
          severity: 'error',
          message: e.message,
          path: formatPath(path),
          ...(location ? { location } : {}),
          ...(e.hint ? { fix: e.hint } : {}),
          target: { cluster: name },
          check: 'server-dry-run',
        });
        continue;
      }
      const seen = new Set<string>();
      for (const r of results) {
        if (!r.error) continue;
        const service = r.object.metadata.labels?.['meridian.dev/service'];
        const path = pathFor(name, service, r.error.message);
        // one finding per cluster, place and kind (a missing namespace refuses every object alike)
        const key = `${r.error.code} ${formatPath(path)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const location = loaded.sources.locate(path);
        findings.push({
          code: r.error.code,
          severity: 'error',
          message: r.error.message,
          path: formatPath(path),
          ...(location ? { location } : {}),
          ...(r.error.hint ? { fix: r.error.hint } : {}),
          target: { cluster: name, ...(service ? { service } : {}) },
          clusters: [name],
          check: 'server-dry-run',
        });
      }
    }
  } finally {
    await target.close();
  }
  return findings;
}
