/**
 * Quotas: per region, the sum over its clusters of replicas × requested CPU and memory must fit the
 * region's quota — after the rollout, and at its peak, while the clusters of a wave (up to maxParallel)
 * run the new replicas beside the stable ones.
 */
import { canonicalJson } from '../../render/canonical.js';
import type { RenderedCluster, RenderedService } from '../../render/render.js';
import { formatMemory, parseCpu, parseMemory } from '../../units/quantity.js';
import { type CheckContext, fewOf } from '../context.js';
import type { Finding } from '../../findings/finding.js';

type Dim = 'cpu' | 'memory';
type Usage = Record<Dim, number>;

const zero = (): Usage => ({ cpu: 0, memory: 0 });
const add = (a: Usage, b: Usage): Usage => ({ cpu: a.cpu + b.cpu, memory: a.memory + b.memory });

/** replicas × requests of one service (missing requests count as 0; resources-required reports them). */
export function serviceUsage(s: RenderedService): Usage {
  const cpu = s.resources.cpu === undefined ? 0 : (parseCpu(s.resources.cpu) ?? 0);
  const memory = s.resources.memory === undefined ? 0 : (parseMemory(s.resources.memory) ?? 0);
  return { cpu: cpu * s.replicas, memory: memory * s.replicas };
}

function clusterUsage(c: RenderedCluster | undefined): Usage {
  let u = zero();
  for (const s of Object.values(c?.services ?? {})) u = add(u, serviceUsage(s));
  return u;
}

/** What a cluster uses while it rolls: old and new of every changed service side by side. */
function rollingUsage(oldC: RenderedCluster | undefined, newC: RenderedCluster | undefined): Usage {
  let u = zero();
  const names = new Set([...Object.keys(oldC?.services ?? {}), ...Object.keys(newC?.services ?? {})]);
  for (const name of names) {
    const o = oldC?.services[name];
    const n = newC?.services[name];
    if (o && n && canonicalJson(o) === canonicalJson(n)) u = add(u, serviceUsage(n));
    else {
      if (o) u = add(u, serviceUsage(o));
      if (n) u = add(u, serviceUsage(n));
    }
  }
  return u;
}

/** Shows an amount of one dimension: CPU in cores (`9.5 CPU`), memory in binary units. */
export function show(dim: Dim, v: number): string {
  if (dim === 'cpu') return `${Number((v / 1000).toFixed(3))} CPU`;
  return formatMemory(Math.round(v));
}

export function checkQuotas(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  const { revision } = ctx;
  const recorded = ctx.recorded ?? {};
  const waveOf = new Map<string, number>();
  ctx.waves.forEach((w, i) => w.clusters.forEach((c) => waveOf.set(c, i)));

  for (const [region, r] of Object.entries(ctx.fleet.regions)) {
    const limits: { cpu: number | undefined; memory: number | undefined } = {
      cpu: r.quota?.cpu === undefined ? undefined : parseCpu(r.quota.cpu),
      memory: r.quota?.memory === undefined ? undefined : parseMemory(r.quota.memory),
    };
    if (limits.cpu === undefined && limits.memory === undefined) continue;

    const members = Object.keys(revision.clusters).filter((c) => revision.clusters[c]?.region === region);
    const gone = Object.keys(recorded).filter((c) => !(c in revision.clusters) && recorded[c]?.region === region);
    const byService = new Map<string, Usage>();
    let final = zero();
    for (const c of members) {
      for (const [name, s] of Object.entries(revision.clusters[c]?.services ?? {})) {
        const u = serviceUsage(s);
        byService.set(name, add(byService.get(name) ?? zero(), u));
        final = add(final, u);
      }
    }

    const usage = new Map(
      members.map((c) => [
        c,
        { n: clusterUsage(revision.clusters[c]), o: clusterUsage(recorded[c]), roll: rollingUsage(recorded[c], revision.clusters[c]) },
      ]),
    );
    const goneUsage = gone.reduce((u, c) => add(u, clusterUsage(recorded[c])), zero());

    for (const dim of ['cpu', 'memory'] as const) {
      const limit = limits[dim];
      if (limit === undefined) continue;
      const quotaPath = ['regions', region, 'quota', dim];
      const location = ctx.at(quotaPath);
      if (final[dim] > limit) {
        const top = [...byService].filter(([, u]) => u[dim] > 0).sort((a, b) => b[1][dim] - a[1][dim] || (a[0] < b[0] ? -1 : 1));
        const parts = top.slice(0, 3).map(([s, u]) => `${s} ${show(dim, u[dim])}`);
        if (top.length > 3) parts.push(`${top.length - 3} more`);
        findings.push({
          code: 'MERIDIAN_E_QUOTA_EXCEEDED',
          severity: 'error',
          message: `region ${region} requests ${show(dim, final[dim])}${dim === 'cpu' ? '' : ' of memory'} (${parts.join(', ')}) on ${members.length} cluster${members.length === 1 ? '' : 's'}, over its quota of ${show(dim, limit)}`,
          path: `regions.${region}.quota.${dim}`,
          ...location,
          fix: `lower replicas or ${dim} requests of the services in ${region} by ${show(dim, final[dim] - limit)}, or raise regions.${region}.quota.${dim}`,
          target: { region },
        });
        continue;
      }
      // The peak while one wave rolls: earlier waves new, later waves old, the wave's rolling clusters both.
      let peak = { value: final[dim], wave: '' };
      ctx.waves.forEach((w, k) => {
        let base = 0;
        const extras: number[] = [];
        for (const c of members) {
          const i = waveOf.get(c) ?? ctx.waves.length;
          const u = usage.get(c);
          if (!u) continue;
          const n = u.n[dim];
          const o = u.o[dim];
          if (i < k) base += n;
          else if (i > k) base += o;
          else {
            const steady = Math.max(o, n);
            base += steady;
            extras.push(u.roll[dim] - steady);
          }
        }
        base += goneUsage[dim];
        const surge = extras
          .sort((a, b) => b - a)
          .slice(0, w.maxParallel)
          .reduce((s, x) => s + Math.max(0, x), 0);
        if (base + surge > peak.value) peak = { value: base + surge, wave: w.name };
      });
      if (peak.wave && peak.value > limit) {
        const wave = ctx.waves.find((w) => w.name === peak.wave);
        const waveIndex = wave?.index ?? -1;
        const rolling = (wave?.clusters ?? []).filter((c) => members.includes(c));
        findings.push({
          code: 'MERIDIAN_E_QUOTA_SURGE',
          severity: 'error',
          message: `region ${region} fits its ${dim === 'cpu' ? 'CPU' : 'memory'} quota of ${show(dim, limit)} after the rollout, but needs ${show(dim, peak.value)} during wave ${peak.wave}, while ${fewOf(rolling)} ${rolling.length === 1 ? 'runs' : 'run'} new replicas beside the stable ones`,
          path: `regions.${region}.quota.${dim}`,
          ...location,
          fix:
            waveIndex >= 0
              ? `lower rollout.waves[${waveIndex}].maxParallel (now ${wave?.maxParallel}) so fewer clusters of ${region} surge at once, or raise regions.${region}.quota.${dim} by ${show(dim, peak.value - limit)}`
              : `add a wave with a low maxParallel for the clusters of ${region}, or raise regions.${region}.quota.${dim} by ${show(dim, peak.value - limit)}`,
          target: { region },
        });
      }
    }
  }
  return findings;
}
