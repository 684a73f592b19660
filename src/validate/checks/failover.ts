/**
 * Failover capacity, per routed service. Demand: each region's `traffic.rps` (its clients). Supply:
 * `capacity.rps` of the clusters that run the service. A client region may be served by a cluster when
 * residency allows it (`lock`: only the allowed jurisdictions; `prefer`: any cluster). With every region
 * up, and then with each single region lost (its clusters gone, its clients still calling), the maximum
 * flow from demand to supply must carry all the demand — or, after a loss, the share the fleet's recovery
 * policy sets as its floor (`recovery.safety.capacityFloor`, the rule every evacuation is checked against).
 * See docs/findings.md, "Failover capacity", and docs/recovery.md.
 */
import type { Routing } from '../../spec/schema.js';
import { type CheckContext, fewOf } from '../context.js';
import type { Finding } from '../../findings/finding.js';
import { safetyPolicy } from '../../recovery/policy.js';
import { type AppliedRule, ruleFor, servable, type Shortfall } from '../../routing/servable.js';

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

export function checkFailover(ctx: CheckContext): Finding[] {
  const findings: Finding[] = [];
  const demand = new Map<string, { rps: number; jurisdiction: string }>();
  for (const [name, r] of Object.entries(ctx.fleet.regions)) {
    if ((r.traffic?.rps ?? 0) > 0) demand.set(name, { rps: r.traffic?.rps ?? 0, jurisdiction: r.jurisdiction });
  }
  if (demand.size === 0) return findings;
  const floor = ctx.fleet.recovery ? safetyPolicy(ctx.fleet.recovery).capacityFloor : 1;

  for (const [service, routing] of Object.entries(ctx.fleet.routing)) {
    const supplyAll = new Map<string, { rps: number; jurisdiction: string; clusters: string[] }>();
    for (const [cluster, c] of Object.entries(ctx.revision.clusters)) {
      if (!(service in c.services)) continue;
      const e = supplyAll.get(c.region) ?? { rps: 0, jurisdiction: c.jurisdiction, clusters: [] };
      e.rps += c.capacity.rps;
      e.clusters.push(cluster);
      supplyAll.set(c.region, e);
    }
    if (supplyAll.size === 0) continue; // residency reports a routed service that runs nowhere
    const rule = (j: string): AppliedRule => ruleFor(routing, j);
    const base = servable(demand, supplyAll, rule);
    if (base.served + 1e-9 < base.demand) {
      findings.push(finding(ctx, service, routing, null, base, supplyAll));
      continue; // every loss is short too; fix the baseline first
    }
    for (const lost of [...supplyAll.keys()].sort()) {
      const supply = new Map([...supplyAll].filter(([r]) => r !== lost));
      const s = servable(demand, supply, rule);
      if (s.served + 1e-9 < floor * s.demand) findings.push(finding(ctx, service, routing, lost, s, supplyAll, floor));
    }
  }
  return findings;
}

function finding(
  ctx: CheckContext,
  service: string,
  routing: Routing,
  lost: string | null,
  s: Shortfall,
  supply: ReadonlyMap<string, { clusters: string[] }>,
  floor = 1,
): Finding {
  const short = round(floor * s.demand - s.served);
  const clusters = s.servers.flatMap((r) => supply.get(r)?.clusters ?? []).sort();
  const jurisdictions = [...new Set(s.clients.map((c) => ctx.fleet.regions[c]?.jurisdiction ?? ''))];
  const locks = jurisdictions.map((j) => ruleFor(routing, j)).filter((r) => r.mode === 'lock' && r.key !== null);
  const lock = locks[0];
  const lockPath = lock?.key ? ['routing', service, 'residency', lock.key] : undefined;
  const at = lockPath ? ctx.at(lockPath) : {};
  const location = at.location ? at : ctx.at(['routing', service], { key: true });
  const servedBy = clusters.length
    ? `may only be served by ${fewOf(clusters)} (${round(s.serverCapacity)} rps${lock ? `, residency ${lock.key} lock` : ''})`
    : `have no cluster left that may serve them${lock ? ` (residency ${lock.key} lock)` : ''}`;
  const what = `clients of ${fewOf(s.clients)} (${round(s.clientDemand)} rps) ${servedBy}`;
  const message =
    lost === null
      ? `${service} cannot serve its expected traffic even with every region up: ${what}, ${short} rps short`
      : `if region ${lost} is lost, ${service} is ${short} rps short${floor < 1 ? ` of the recovery floor (${round(floor * 100)} % of ${round(s.demand)} rps)` : ''}: ${what}`;
  const fix = `add ${short} rps of capacity to clusters allowed to serve ${fewOf(s.clients)} (clusters.*.capacity.rps, or another cluster running ${service})${lock ? `, or relax routing.${service}.residency.${lock.key}` : ''}${lost === null ? ', or lower the expected regions.*.traffic.rps if it is overstated' : ''}`;
  return {
    code: lost === null ? 'MERIDIAN_E_CAPACITY_SHORT' : 'MERIDIAN_E_FAILOVER_CAPACITY',
    severity: 'error',
    message,
    path: lockPath ? `routing.${service}.residency.${lock?.key}` : `routing.${service}`,
    ...location,
    fix,
    target: { service, ...(lost ? { region: lost } : {}) },
  };
}
