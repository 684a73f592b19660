/**
 * What a set of clusters can serve under residency: the rule that applies to a client jurisdiction, and
 * the maximum flow from client regions' expected traffic to the clusters' declared capacity. Pure; read
 * by preflight (residency coverage, failover capacity) and by the recovery safety rules.
 */
import type { Routing } from '../spec/schema.js';

/** The residency rule that applies to clients of a jurisdiction, and the key it is written under. */
export interface AppliedRule {
  /** `EU`, `default`, or null when no rule applies (any cluster may serve). */
  readonly key: string | null;
  readonly allow: readonly string[] | null;
  readonly mode: 'lock' | 'prefer';
}

export function ruleFor(routing: Routing, clientJurisdiction: string): AppliedRule {
  const own = routing.residency?.[clientJurisdiction];
  if (own) return { key: clientJurisdiction, allow: own.allow, mode: own.mode };
  const def = routing.residency?.['default'];
  if (def) return { key: 'default', allow: def.allow, mode: def.mode };
  return { key: null, allow: null, mode: 'prefer' };
}

/** Whether a cluster of `clusterJurisdiction` may serve clients under this rule (strictly: what it allows). */
export function allows(rule: AppliedRule, clusterJurisdiction: string): boolean {
  return rule.allow === null || rule.allow.includes(clusterJurisdiction);
}

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

export interface Shortfall {
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
