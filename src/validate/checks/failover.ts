/**
 * Failover capacity, per routed service. Demand: each region's `traffic.rps` (its clients). Supply:
 * `capacity.rps` of the clusters that run the service. A client region may be served by a cluster when
 * residency allows it (`lock`: only the allowed jurisdictions; `prefer`: any cluster). With every region
 * up, and then with each single region lost (its clusters gone, its clients still calling), the maximum
 * flow from demand to supply must carry all the demand. See docs/findings.md, "Failover capacity".
 */
import type { Routing } from '../../spec/schema.js';
import { type CheckContext, fewOf } from '../context.js';
import type { Finding } from '../../findings/finding.js';
import { type AppliedRule, ruleFor } from './residency.js';

/** A flow network on a dense capacity matrix; tiny here (client regions + serving regions + 2). */
export class FlowNetwork {
  private readonly cap: number[][];
  constructor(readonly size: number) {
    this.cap = Array.from({ length: size }, () => new Array<number>(size).fill(0));
  }
  addEdge(from: number, to: number, capacity: number): void {
    const row = this.cap[from] as number[];
    row[to] = (row[to] ?? 0) + capacity;
  }
  /** Edmonds–Karp: the maximum flow from s to t, and the nodes reachable from s in the residual graph (the min cut's source side). */
  maxFlow(s: number, t: number): { flow: number; sourceSide: Set<number> } {
    const residual = this.cap.map((row) => [...row]);
    let flow = 0;
    for (;;) {
      const parent = new Array<number>(this.size).fill(-1);
      parent[s] = s;
      const queue = [s];
      for (let qi = 0; qi < queue.length && parent[t] === -1; qi++) {
        const u = queue[qi] as number;
        const row = residual[u] as number[];
        for (let v = 0; v < this.size; v++) {
          if (parent[v] === -1 && (row[v] ?? 0) > 1e-9) {
            parent[v] = u;
            queue.push(v);
          }
        }
      }
      if (parent[t] === -1) {
        return { flow, sourceSide: new Set(queue) };
      }
      let push = Infinity;
      for (let v = t; v !== s; v = parent[v] as number) push = Math.min(push, residual[parent[v] as number]?.[v] ?? 0);
      for (let v = t; v !== s; v = parent[v] as number) {
        const u = parent[v] as number;
        (residual[u] as number[])[v] = (residual[u]?.[v] ?? 0) - push;
        (residual[v] as number[])[u] = (residual[v]?.[u] ?? 0) + push;
      }
      flow += push;
    }
  }
}

interface Shortfall {
  readonly served: number;
  readonly demand: number;
  /** The client regions that cannot all be served, and the serving regions they are limited to. */
  readonly clients: readonly string[];
  readonly servers: readonly string[];
  readonly clientDemand: number;
  readonly serverCapacity: number;
}

/** Demand of client regions → supply of serving regions (clusters summed per region), under residency. */
export function servable(
  demand: ReadonlyMap<string, { rps: number; jurisdiction: string }>,
  supply: ReadonlyMap<string, { rps: number; jurisdiction: string }>,
  rule: (clientJurisdiction: string) => AppliedRule,
): Shortfall {
  const clients = [...demand.keys()];
  const servers = [...supply.keys()];
  const S = 0;
  const T = 1;
  const net = new FlowNetwork(2 + clients.length + servers.length);
  let total = 0;
  clients.forEach((c, i) => {
    const d = demand.get(c);
    if (!d) return;
    total += d.rps;
    net.addEdge(S, 2 + i, d.rps);
    const r = rule(d.jurisdiction);
    servers.forEach((sv, j) => {
      const s = supply.get(sv);
      if (s && (r.mode === 'prefer' || r.allow === null || r.allow.includes(s.jurisdiction)))
        net.addEdge(2 + i, 2 + clients.length + j, Infinity);
    });
  });
  servers.forEach((sv, j) => net.addEdge(2 + clients.length + j, T, supply.get(sv)?.rps ?? 0));
  const { flow, sourceSide } = net.maxFlow(S, T);
  const shortClients = clients.filter((_, i) => sourceSide.has(2 + i));
  const shortServers = servers.filter((_, j) => sourceSide.has(2 + clients.length + j));
  return {
    served: flow,
    demand: total,
    clients: shortClients,
    servers: shortServers,
    clientDemand: shortClients.reduce((s, c) => s + (demand.get(c)?.rps ?? 0), 0),
    serverCapacity: shortServers.reduce((s, c) => s + (supply.get(c)?.rps ?? 0), 0),
  };
}

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
      if (s.served + 1e-9 < s.demand) findings.push(finding(ctx, service, routing, lost, s, supplyAll));
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
): Finding {
  const short = round(s.demand - s.served);
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
      : `if region ${lost} is lost, ${service} is ${short} rps short: ${what}`;
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
