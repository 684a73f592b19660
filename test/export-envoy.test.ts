/**
 * Envoy exported by Meridian. No Envoy binary exists for this machine (not in Debian bookworm, no npm
 * package ships it), so the most faithful stand-ins are used: Envoy's own v3 .proto definitions (from
 * `@grpc/grpc-js-xds`, test/envoy-proto-kit.ts) read the bootstrap as `envoy.config.bootstrap.v3.Bootstrap`
 * with unknown-field rejection and a wire round trip; and Envoy's documented priority-load arithmetic
 * (per-priority health from healthy host counts × overprovisioning factor, spill, panic threshold,
 * locality weights) applied to the exported `load_assignment`, held against `route simulate`.
 */
import { describe, expect, it } from 'vitest';
import { envoyExporter } from '../src/export/envoy.js';
import { clusterAddresses, exportInput } from '../src/export/index.js';
import { checkEnvoyJson, EnvoySchemaError } from './support/envoy-proto-kit.js';
import { fixtureRevision, maxDiff, simulated } from './support/export-kit.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

interface Locality {
  locality: { region: string; zone: string };
  priority: number;
  load_balancing_weight: number;
  lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[];
}
interface EnvoyCluster {
  name: string;
  common_lb_config: { healthy_panic_threshold: { value: number } };
  load_assignment: { endpoints: Locality[]; policy: { overprovisioning_factor: number } };
  health_checks: { http_health_check: { path: string }; unhealthy_threshold: number }[];
  outlier_detection: { consecutive_5xx: number };
}
interface Route {
  name: string;
  match: { headers?: { name: string; string_match: { safe_regex: { regex: string } } }[] };
  route?: { cluster: string };
}
interface Bootstrap {
  static_resources: {
    clusters: EnvoyCluster[];
    listeners: { filter_chains: { filters: { typed_config: { route_config: { virtual_hosts: { routes: Route[] }[] } } }[] }[] }[];
  };
}

const rev = fixtureRevision();
const exported = (): Bootstrap => {
  const out = envoyExporter.export(exportInput(rev, clusterAddresses(rev)));
  return JSON.parse(out.files['envoy.json'] ?? '{}') as Bootstrap;
};
const clusterOf = (b: Bootstrap, name: string): EnvoyCluster => {
  const c = b.static_resources.clusters.find((x) => x.name === name);
  if (!c) throw new Error(`no Envoy cluster ${name}`);
  return c;
};

/**
 * Envoy's share per locality (Meridian cluster) for a cluster config with some localities' hosts
 * unhealthy: priority health = min(100, ⌊OF × healthy hosts / hosts⌋), loads spilled in priority order
 * over the normalised total health, a priority under the panic threshold uses all its localities, and
 * inside a priority localities are picked by weight × availability (envoyproxy.io, "Priority levels",
 * "Panic threshold", "Locality weighted load balancing").
 */
function envoyShares(c: EnvoyCluster, down: readonly string[]): Record<string, number> {
  const of = c.load_assignment.policy.overprovisioning_factor;
  const panic = c.common_lb_config.healthy_panic_threshold.value;
  const byPriority = new Map<number, Locality[]>();
  for (const l of c.load_assignment.endpoints) byPriority.set(l.priority, [...(byPriority.get(l.priority) ?? []), l]);
  const priorities = [...byPriority.keys()].sort((a, b) => a - b);
  const health = priorities.map((p) => {
    const ls = byPriority.get(p) ?? [];
    const hosts = ls.reduce((a, l) => a + l.lb_endpoints.length, 0);
    const healthy = ls.filter((l) => !down.includes(l.locality.zone)).reduce((a, l) => a + l.lb_endpoints.length, 0);
    return Math.min(100, Math.floor((of * healthy) / hosts));
  });
  const total = Math.min(
    100,
    health.reduce((a, h) => a + h, 0),
  );
  const out: Record<string, number> = {};
  if (total === 0) return { 'status:503': 1 };
  let left = 100;
  priorities.forEach((p, i) => {
    const load = Math.min(left, Math.floor(((health[i] ?? 0) * 100) / total));
    left -= load;
    const ls = byPriority.get(p) ?? [];
    const inPanic = (health[i] ?? 0) < panic;
    const picked = inPanic ? ls : ls.filter((l) => !down.includes(l.locality.zone));
    const w = picked.reduce((a, l) => a + l.load_balancing_weight, 0);
    for (const l of picked) out[l.locality.zone] = (out[l.locality.zone] ?? 0) + (load / 100) * (l.load_balancing_weight / w);
  });
  if (left > 0 && priorities.length > 0) {
    // the rounding remainder goes to the first priority with load (as Envoy does)
    const first = byPriority.get(priorities[0] ?? 0) ?? [];
    const w = first.reduce((a, l) => a + l.load_balancing_weight, 0);
    for (const l of first) out[l.locality.zone] = (out[l.locality.zone] ?? 0) + (left / 100) * (l.load_balancing_weight / w);
  }
  return out;
}

describe('Envoy exported by Meridian (checked against Envoy’s .proto definitions; no Envoy binary here)', () => {
  it('the bootstrap reads as envoy.config.bootstrap.v3.Bootstrap and survives a wire round trip', () => {
    const out = envoyExporter.export(exportInput(rev, clusterAddresses(rev)));
    expect(checkEnvoyJson(BOOTSTRAP, JSON.parse(out.files['envoy.json'] ?? '{}'))).toBeGreaterThan(1000);
  });

  it('the checker rejects what Envoy rejects: a wrong field name, enum, JSON type, oneof pair or Any field', () => {
    const mutate = (f: (b: Bootstrap & Record<string, unknown>) => void): (() => number) => {
      const b = exported() as Bootstrap & Record<string, unknown>;
      f(b);
      return () => checkEnvoyJson(BOOTSTRAP, b);
    };
    const first = (b: Bootstrap): Record<string, unknown> => b.static_resources.clusters[0] as unknown as Record<string, unknown>;
    expect(mutate((b) => ((first(b)['load_assignment'] as Record<string, unknown>)['policy'] = { overprovisioning_factr: 140 }))).toThrow(
      /no field overprovisioning_factr/,
    );
    expect(mutate((b) => (first(b)['lb_policy'] = 'ROUND_ROBBIN'))).toThrow(EnvoySchemaError);
    expect(mutate((b) => (first(b)['common_lb_config'] = { healthy_panic_threshold: 50 }))).toThrow(/expected an object/);
    expect(mutate((b) => (first(b)['connect_timeout'] = '1 second'))).toThrow(/duration/);
    expect(mutate((b) => (first(b)['cluster_type'] = { name: 'envoy.clusters.aggregate' }))).toThrow(/oneof/);
    expect(
      mutate((b) => {
        const hcm = b.static_resources.listeners[0]?.filter_chains[0]?.filters[0]?.typed_config as unknown as Record<string, unknown>;
        hcm['route_confg'] = hcm['route_config'];
        delete hcm['route_config'];
      }),
    ).toThrow(/no field route_confg in .*HttpConnectionManager/);
  });

  it('one cluster per routing row: priorities, locality weights, overprovisioning factor, panic threshold, checks, ejection', () => {
    const b = exported();
    const eu = clusterOf(b, 'web_eu-west');
    expect(eu.load_assignment.endpoints.map((l) => [l.priority, l.locality.zone])).toEqual([
      [0, 'eu-west-1'],
      [0, 'eu-west-2'],
      [1, 'eu-central-1'],
    ]);
    expect(eu.load_assignment.policy.overprovisioning_factor).toBe(140);
    expect(eu.common_lb_config.healthy_panic_threshold.value).toBe(50);
    expect(eu.health_checks[0]?.http_health_check.path).toBe('/healthz');
    expect(eu.outlier_detection.consecutive_5xx).toBe(5);
    const us = clusterOf(b, 'web_us-east');
    expect(us.load_assignment.endpoints.filter((l) => l.priority === 0).map((l) => [l.locality.zone, l.load_balancing_weight])).toEqual([
      ['us-east-1', 2],
      ['us-east-2', 1],
    ]);
    const routes = b.static_resources.listeners[0]?.filter_chains[0]?.filters[0]?.typed_config.route_config.virtual_hosts[0]?.routes ?? [];
    const ie = routes.find((r) => r.route?.cluster === 'web_eu-west');
    expect(ie?.match.headers?.[0]).toEqual({ name: 'x-client-country', string_match: { safe_regex: { regex: '^(FR|IE)$' } } });
  });

  it('a locked row’s cluster holds only endpoints in its jurisdiction, so priority spill and panic stay inside it', () => {
    const b = exported();
    const outside = Object.entries(rev.clusters).filter(([, c]) => c.jurisdiction !== 'EU');
    for (const name of ['web_eu-west', 'web_eu-central']) {
      const text = JSON.stringify(clusterOf(b, name));
      for (const [n, c] of outside) {
        expect(text).not.toContain(n);
        expect(text).not.toContain(c.ingress?.address.split(':')[0] ?? '?');
      }
      // every EU cluster down: Envoy panics inside the row (all EU localities), never outside
      const shares = envoyShares(clusterOf(b, name), ['eu-west-1', 'eu-west-2', 'eu-central-1']);
      for (const [n] of outside) expect(shares[n] ?? 0).toBe(0);
    }
  });

  it('Envoy’s arithmetic on the exported numbers gives route simulate’s shares within ±3 points for the locked rows (all up, one cluster down)', () => {
    const b = exported();
    const rows = { 'eu-west': 'web_eu-west', 'eu-central': 'web_eu-central' };
    const diffs: string[] = [];
    for (const down of [[], ['eu-west-1'], ['eu-west-2'], ['eu-central-1'], ['us-east-2']])
      for (const [client, cluster] of Object.entries(rows)) {
        const d = maxDiff(envoyShares(clusterOf(b, cluster), down), simulated(rev, client, down));
        if (d > 3) diffs.push(`${client} down=${down.join(',')}: ${d.toFixed(1)} points`);
      }
    expect(diffs).toEqual([]);
    // all up, the prefer rows too
    expect(maxDiff(envoyShares(clusterOf(b, 'web_us-east'), []), simulated(rev, 'us-east'))).toBeLessThanOrEqual(3);
  });

  it('the documented differences: a prefer row spills outside early (MERIDIAN_LOSS_WIDENING); health counts hosts, not weights (MERIDIAN_LOSS_PRIORITY_LOAD)', () => {
    const b = exported();
    const us = clusterOf(b, 'web_us-east');
    // us-east-2 down: the model keeps US clients in the US (us-east-1 alone), Envoy spills 30 % to the widened EU level
    expect(simulated(rev, 'us-east', ['us-east-2'])).toEqual({ 'us-east-1': 1 });
    const spilled = envoyShares(us, ['us-east-2']);
    expect(spilled['us-east-1']).toBeCloseTo(0.7, 5);
    expect((spilled['eu-west-1'] ?? 0) + (spilled['eu-west-2'] ?? 0)).toBeCloseTo(0.3, 5);
    // us-east-1 (weight 2 of 3) down: the model's level health is 140 % × 1/3 → panic over both; Envoy counts 1 of 2 hosts → 70 %, no panic
    expect(simulated(rev, 'us-east', ['us-east-1'])['us-east-1']).toBeCloseTo(2 / 3, 2);
    expect(envoyShares(us, ['us-east-1'])['us-east-1'] ?? 0).toBe(0);
    const codes = envoyExporter.export(exportInput(rev, clusterAddresses(rev))).loss.map((f) => `${f.code} ${f.client ?? ''}`);
    expect(codes).toContain('MERIDIAN_LOSS_WIDENING us-east');
    expect(codes).toContain('MERIDIAN_LOSS_PRIORITY_LOAD us-east');
    expect(codes).not.toContain('MERIDIAN_LOSS_PRIORITY_LOAD eu-west');
  });
});
