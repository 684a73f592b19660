/**
 * Applying to Kubernetes: 50 services to 10 clusters from empty, then the same revision again (a no-op),
 * by Meridian's kubernetes driver and, in the same run, by `kubectl apply --server-side` of the same
 * manifests (what `meridian render --format kubernetes` prints; kubectl built with the test control plane
 * by scripts/k8s-test-bins.sh). One real control plane (test/k8s-cluster-kit.ts); each "cluster" is its
 * own namespace of it, Meridian's and kubectl's in separate namespaces so both start from empty. Clusters
 * are applied one after another by both. Deployments have `--replicas` (default 0) so that what is timed
 * is the apply path, not the scheduler and kwok creating pods on the same two cores. Between phases the
 * bench waits for the controller manager to catch up with every Deployment, so that its work on one
 * side's objects is not timed as the other side's (who went second was slower by that before).
 *
 * Targets (issue 11): Meridian's cold apply ≤ kubectl's; its no-op re-apply ≤ 10 % of kubectl's.
 *
 * Run: `npm run bench -- kubernetes-apply [--services 50] [--clusters 10] [--replicas 0] [--runs 1]`
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { render, type Revision } from '../src/render/render.js';
import { loadFleet } from '../src/spec/load.js';
import { KubernetesTarget } from '../src/targets/kubernetes/kubernetes-target.js';
import { kubernetesManifests } from '../src/targets/kubernetes/render-manifests.js';
import { toYaml } from '../src/cli/commands/render.js';
import { createNamespace, k8sBinDir, startTestCluster, type TestCluster } from '../test/support/k8s-cluster-kit.js';

const run = promisify(execFile);
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const SERVICES = arg('services', 50);
const CLUSTERS = arg('clusters', 10);
const REPLICAS = arg('replicas', 0);
const RUNS = arg('runs', 1);

function fleetYaml(prefix: string, kubeconfig: string): string {
  const clusters = Array.from(
    { length: CLUSTERS },
    (_, i) =>
      `  c${i}:\n    region: r${i % 3}\n    driver: kubernetes\n    capacity: { rps: 100 }\n    target: { kubeconfig: '${kubeconfig}', namespace: ${prefix}${i} }`,
  ).join('\n');
  const services = Array.from(
    { length: SERVICES },
    (_, i) =>
      `  svc${i}:\n    image: example.test/svc${i}:1.0.0@sha256:${'0'.repeat(64)}\n    version: 1.0.0\n    port: 8080\n    replicas: ${REPLICAS}\n` +
      `    health: { path: /healthz }\n    resources: { cpu: 10m, memory: 16Mi }\n    env: { LOG_LEVEL: info, INDEX: '${i}' }\n    config: { GREETING: hello }`,
  ).join('\n');
  return `apiVersion: meridian/v1
fleet: bench
regions:
  r0: { jurisdiction: EU, location: { lat: 50, lon: 8 }, countries: [DE] }
  r1: { jurisdiction: US, location: { lat: 38, lon: -77 }, countries: [US] }
  r2: { jurisdiction: APAC, location: { lat: 19, lon: 72 }, countries: [IN] }
clusters:
${clusters}
services:
${services}
`;
}

function revisionFor(dir: string, prefix: string, kubeconfig: string): Revision {
  const d = mkdtempSync(join(dir, `${prefix}-`));
  writeFileSync(join(d, 'fleet.yaml'), fleetYaml(prefix, kubeconfig));
  return render(loadFleet(d)).revision;
}

/** Wall time and the client's CPU time (ms): the driver's in this process, kubectl's in its processes. */
interface Timed {
  ms: number;
  cpuMs: number;
}

async function meridianApply(t: KubernetesTarget, rev: Revision): Promise<Timed> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const [cluster, state] of Object.entries(rev.clusters)) await t.apply({ cluster, revisionId: rev.id, state, track: 'stable' });
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
}

/** CPU time of this process's waited-for children (cutime + cstime of /proc/self/stat), ms. */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100; // clock ticks (USER_HZ 100)
}

async function kubectlApply(kubectl: string, kc: TestCluster, files: readonly string[]): Promise<Timed> {
  const t0 = performance.now();
  const c0 = childrenCpuMs();
  for (const f of files)
    await run(kubectl, [`--kubeconfig=${kc.kubeconfig}`, 'apply', '--server-side', '--field-manager=kubectl-bench', '-f', f]);
  return { ms: performance.now() - t0, cpuMs: childrenCpuMs() - c0 };
}

const s = (msec: number): string => `${(msec / 1000).toFixed(2)} s`;

/**
 * Waits until the controller manager has caught up with every Deployment (observedGeneration = generation),
 * so that its work on one side's objects (ReplicaSets for 500 Deployments) is not timed as the other's.
 */
async function settle(kc: TestCluster): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const r = await kc.api('GET', '/apis/apps/v1/deployments');
    const items = (r.body as { items?: { metadata: { generation?: number }; status?: { observedGeneration?: number } }[] }).items ?? [];
    if (r.status === 200 && items.every((d) => d.status?.observedGeneration === d.metadata.generation)) {
      await new Promise((res) => setTimeout(res, 2000)); // and the ReplicaSets it made settle
      return;
    }
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error('the controller manager did not catch up with the Deployments in 5 minutes');
}

async function main(): Promise<void> {
  const bin = k8sBinDir();
  const kubectl = join(bin, 'kubectl');
  const work = mkdtempSync(join(os.tmpdir(), 'meridian-bench-k8s-'));
  const kc = await startTestCluster('bench', { bin });
  const rows: string[] = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      const m = revisionFor(work, `m${r}-`, kc.kubeconfig);
      const k = revisionFor(work, `k${r}-`, kc.kubeconfig);
      for (let i = 0; i < CLUSTERS; i++) {
        await createNamespace(kc, `m${r}-${i}`);
        await createNamespace(kc, `k${r}-${i}`);
      }
      const files = kubernetesManifests(k).map((c) => {
        const f = join(work, `${c.cluster}-k${r}.yaml`);
        writeFileSync(f, c.objects.map((o) => toYaml(o)).join('---\n'));
        return f;
      });
      const objects = kubernetesManifests(m).reduce((n, c) => n + c.objects.length, 0);
      const t = new KubernetesTarget({ fleetDir: work });
      try {
        // alternate who goes first between runs
        const order = r % 2 === 0 ? (['meridian', 'kubectl'] as const) : (['kubectl', 'meridian'] as const);
        const times: Record<string, { cold: Timed; again: Timed; writes?: number }> = {};
        for (const who of order) {
          if (who === 'meridian') {
            const cold = await meridianApply(t, m);
            await settle(kc);
            const before = t.writes;
            const again = await meridianApply(t, m);
            times[who] = { cold, again, writes: t.writes - before };
          } else {
            const cold = await kubectlApply(kubectl, kc, files);
            await settle(kc);
            times[who] = { cold, again: await kubectlApply(kubectl, kc, files) };
          }
          await settle(kc);
        }
        const mer = times['meridian'] as { cold: Timed; again: Timed; writes: number };
        const kub = times['kubectl'] as { cold: Timed; again: Timed };
        rows.push(
          `| ${r + 1} | ${order[0]} | ${objects} | ${s(mer.cold.ms)} | ${s(kub.cold.ms)} | ${(mer.cold.ms / kub.cold.ms).toFixed(2)} ${mer.cold.ms <= kub.cold.ms ? '✓' : '✗'} | ` +
            `${s(mer.cold.cpuMs)} / ${s(kub.cold.cpuMs)} | ` +
            `${s(mer.again.ms)} (${mer.writes} writes) | ${s(kub.again.ms)} | ${((100 * mer.again.ms) / kub.again.ms).toFixed(1)} % ${mer.again.ms <= 0.1 * kub.again.ms ? '✓' : '✗'} |`,
        );
      } finally {
        await t.close();
      }
    }
  } finally {
    await kc.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const load = os.loadavg()[0]?.toFixed(2) ?? '?';
  process.stdout.write(
    [
      `## Kubernetes apply: ${SERVICES} services × ${CLUSTERS} clusters (\`bench/kubernetes-apply.ts\`)`,
      '',
      `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average at the end ${load}`,
      `- command: \`npm run bench -- kubernetes-apply --services ${SERVICES} --clusters ${CLUSTERS} --replicas ${REPLICAS} --runs ${RUNS}\``,
      '',
      '| run | first | objects | Meridian cold | kubectl cold | ratio (≤ 1) | client CPU, cold: Meridian / kubectl | Meridian no-op | kubectl no-op | no-op ratio (≤ 10 %) |',
      '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
}

await main();
