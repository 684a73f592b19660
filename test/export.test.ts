/**
 * Every exporter runs the contract suite; plus the input side: the routing projection the exporters
 * and `route simulate` share, cluster addresses (ingress or local endpoints), and `meridian export`.
 */
import { describe, expect, it } from 'vitest';
import { alertsExporter } from '../src/export/alerts.js';
import { clusterAddresses, EXPORTERS, exportInput, NoAddressError } from '../src/export/index.js';
import { loadAndRender } from '../src/cli/commands/render.js';
import { routingProjection, buildRoutingTable, trafficFromProjection, trafficTable } from '../src/routing/index.js';
import { exporterContract } from './export.contract.js';
import { FLEET_DIR, fixtureRevision, localRevision } from './support/export-kit.js';

for (const e of EXPORTERS) exporterContract(e);
exporterContract(alertsExporter(loadAndRender(FLEET_DIR).loaded.fleet));

describe('the exporters’ input', () => {
  const rev = fixtureRevision();

  it('the projection names levels, clusters and the residency outcome; route simulate’s table is computed from it', () => {
    const p = routingProjection(buildRoutingTable(rev));
    const ie = p.services['web']?.clients['eu-west'];
    expect(ie?.countries).toEqual(['FR', 'IE']);
    expect(ie?.residency).toEqual({ allow: ['EU'], mode: 'lock', source: 'jurisdiction' });
    expect(ie?.variants[0]?.levels.map((l) => [l.regions, l.clusters.map((c) => c.cluster), l.share])).toEqual([
      [['eu-west'], ['eu-west-1', 'eu-west-2'], 1],
      [['eu-central'], ['eu-central-1'], 0],
    ]);
    expect(trafficFromProjection(p)).toEqual(trafficTable(rev));
  });

  it('a prefer row lists the levels it widens to, outside the allowed set, nearest first', () => {
    const input = exportInput(rev, clusterAddresses(rev));
    expect(input.widened['web']?.['us-east']?.map((l) => l.regions)).toEqual([['eu-west'], ['eu-central']]);
    expect(input.widened['web']?.['eu-west']).toBeUndefined(); // a lock never widens
  });

  it('addresses come from clusters.<name>.ingress, or from a local cluster’s endpoints; neither is a typed error', () => {
    expect(clusterAddresses(rev)['us-east-2']?.['web']).toEqual([{ host: '10.0.3.2', port: 443, name: 'ingress', healthPath: '/healthz' }]);
    const local = localRevision(rev);
    const eps = clusterAddresses(local, (c) => [
      {
        cluster: c,
        service: 'web',
        track: 'stable',
        version: '2.4.0',
        revisionId: local.id,
        host: '127.0.0.1',
        port: 4100,
        healthy: true,
        replica: 'r1',
      },
    ]);
    expect(eps['eu-west-1']?.['web']).toEqual([
      { host: '127.0.0.1', port: 4100, name: 'stable-4100', track: 'stable', version: '2.4.0', healthPath: '/healthz' },
    ]);
    expect(() => clusterAddresses(local)).toThrow(NoAddressError);
    try {
      clusterAddresses(local);
    } catch (err) {
      expect((err as NoAddressError).code).toBe('MERIDIAN_E_EXPORT_NO_ADDRESS');
      expect((err as NoAddressError).hint).toContain('ingress.address');
    }
  });
});

describe('capacity caps in loss reports', () => {
  it('a fleet that caps spill-over by capacity is told, per exporter, what each writes instead (once, for the fleet)', () => {
    const rev = fixtureRevision();
    const plain = exportInput(rev, clusterAddresses(rev));
    const capped = { ...plain, projection: { ...plain.projection, capacityCaps: true } };
    const expected: Record<string, string> = {
      haproxy: 'Envoy priority load without caps',
      nginx: 'none',
      envoy: 'nothing (Envoy’s circuit breakers count requests in flight, not rates)',
    };
    for (const [target, exported] of Object.entries(expected)) {
      const exporter = EXPORTERS.find((e) => e.target === target);
      if (!exporter) throw new Error(`no exporter ${target}`);
      const caps = (input: typeof plain) => exporter.export(input).loss.filter((f) => f.code === 'MERIDIAN_LOSS_CAPACITY_CAPS');
      expect(caps(capped), target).toEqual([expect.objectContaining({ target, service: null, exported, severity: 'approximation' })]);
      expect(caps({ ...plain, projection: { ...plain.projection, capacityCaps: false } }), target).toEqual([]);
    }
  });
});
