/**
 * The Istio and Gateway API exports, checked without an Istio control plane or an API server with these
 * CRDs (none runs here): every object validates against its CRD's OpenAPI schema and CEL rules (Istio's
 * CRDs from istio.io/api 1.32.0, Gateway API's standard channel from sigs.k8s.io/gateway-api 1.6.3, via
 * scripts/mesh-crds.sh), planted mistakes are refused by the same check, and the objects say what the
 * routing model says: each row's clusters and weights as `route simulate`, only allowed clusters in a
 * locked row's subset or backends, canary shares, failover order.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, type ExportInput } from '../src/export/index.js';
import { gatewayApiExporter, backendName } from '../src/export/gateway-api.js';
import { istioExporter, istioHost } from '../src/export/istio.js';
import { trafficTable } from '../src/routing/index.js';
import { type CrdSet, meshCrds, validateObject, yamlObjects } from './support/crd-schema-kit.js';
import { fixtureRevision } from './support/export-kit.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- reading back YAML

const rev = fixtureRevision();
const canary = { canary: { web: { 'us-east-1': { weight: 10, version: '2.5.0' } } } };
const inputs: { readonly plain: ExportInput; readonly canary: ExportInput } = {
  plain: exportInput(rev, clusterAddresses(rev)),
  canary: exportInput(rev, clusterAddresses(rev), {}, canary),
};
const EU = Object.entries(rev.clusters)
  .filter(([, c]) => c.jurisdiction === 'EU')
  .map(([n]) => n);

let crds: CrdSet;
beforeAll(() => {
  crds = meshCrds();
}, 120_000);

const objects = (text: string | undefined): Json[] => yamlObjects(text ?? '') as Json[];
const istio = (input: ExportInput): Json[] => objects(istioExporter.export(input).files['istio.yaml']);
const routes = (input: ExportInput): Json[] => objects(gatewayApiExporter.export(input).files['httproutes.yaml']);

describe('Istio and Gateway API objects against their CRD schemas', () => {
  it('every exported object validates (schema, unknown fields, CEL rules), with and without a canary', () => {
    let cel = 0;
    const skipped = new Set<string>();
    for (const input of Object.values(inputs))
      for (const o of [...istio(input), ...routes(input)]) {
        const v = validateObject(crds, o);
        expect(v.errors, `${o['kind']} ${o['metadata']?.name}`).toEqual([]);
        cel += v.celChecked;
        for (const s of v.celSkipped) skipped.add(s.replace(/^[^:]*: /, ''));
      }
    expect(cel).toBeGreaterThan(100); // CEL rules evaluated (ServiceEntry, DestinationRule, HTTPRoute)
    // the rules cel-js cannot run (has() on an index) are named, not silently passed
    for (const s of skipped) expect(s).toMatch(/has\(\) invalid argument|a transition rule/);
  });

  it('refuses planted mistakes: an unknown field, a bad enum, a weight out of range, too many rules, a CEL rule', () => {
    const [se, dr, vs] = istio(inputs.canary);
    const [hr] = routes(inputs.canary);
    const bad = (o: Json | undefined, change: (o: Json) => void): string[] => {
      const copy = structuredClone(o) as Json;
      change(copy);
      return validateObject(crds, copy).errors;
    };
    expect(bad(vs, (o) => (o['spec'].http[2].route[0].wieght = 10))).toEqual([expect.stringMatching(/unknown field "wieght"/)]);
    expect(bad(vs, (o) => (o['spec'].http[2].route[0].weight = 'ten')).join()).toMatch(/must be integer/);
    expect(bad(dr, (o) => (o['spec'].trafficPolicy.loadBalancer.simple = 'ROUND_ROBBIN')).join()).toMatch(/ROUND_ROBBIN/);
    expect(bad(se, (o) => (o['spec'].resolution = 'STATIK')).join()).toMatch(/STATIK/);
    expect(bad(hr, (o) => (o['spec'].rules[0].backendRefs[0].weight = 2_000_000)).join()).toMatch(/above the maximum 1000000/);
    expect(bad(hr, (o) => (o['spec'].rules = Array.from({ length: 17 }, () => o['spec'].rules[0]))).join()).toMatch(/more than 16 items/);
    expect(bad(hr, (o) => (o['spec'].rules[0].matches[0].headers[0].type = 'Exakt')).join()).toMatch(/Exakt/);
    // a CEL rule of the CRD (a path prefix must start with "/"), not a plain schema check
    expect(bad(hr, (o) => (o['spec'].rules[0].matches[0].path.value = 'web')).join()).toMatch(/CEL rule failed/);
    expect(bad({ ...vs, kind: 'VirtualSvc' }, () => {})).toEqual([expect.stringMatching(/no served CRD/)]);
  });
});

describe('the Istio export says what the model says', () => {
  const [se, dr, vs] = istio(inputs.canary);
  const endpoints = (se?.['spec'].endpoints ?? []) as Json[];
  const subsetMembers = (name: string): string[] => {
    const labels = (dr?.['spec'].subsets as Json[]).find((s) => s['name'] === name)?.['labels'] as Record<string, string>;
    return [
      ...new Set(
        endpoints
          .filter((e) => Object.entries(labels).every(([k, v]) => e['labels'][k] === v))
          .map((e) => e['labels']['meridian.dev/cluster']),
      ),
    ].sort();
  };

  it('a locked row’s subsets select only its allowed clusters; the route picks it by the country header', () => {
    for (const row of ['eu-west', 'eu-central']) {
      for (const track of ['stable', 'canary']) {
        const members = subsetMembers(`${row}-${track}`);
        for (const m of members) expect(EU, `${row}-${track} selects ${m}`).toContain(m);
      }
      expect(subsetMembers(`${row}-stable`).length).toBeGreaterThan(0);
    }
    const ie = (vs?.['spec'].http as Json[]).find((h) => h['name'] === 'clients-of-eu-west');
    expect(ie?.['match'][0].headers['x-client-country'].regex).toBe('^(FR|IE)$');
    expect(ie?.['route'].map((r: Json) => r['destination'])).toEqual([
      { host: istioHost(inputs.canary, 'web'), subset: 'eu-west-stable' },
      { host: istioHost(inputs.canary, 'web'), subset: 'eu-west-canary' },
    ]);
    // locality failover in the row's level order
    const sub = (dr?.['spec'].subsets as Json[]).find((s) => s['name'] === 'eu-west-stable');
    expect(sub?.['trafficPolicy'].loadBalancer.localityLbSetting.failover).toEqual([{ from: 'eu-west', to: 'eu-central' }]);
    expect(sub?.['trafficPolicy'].outlierDetection.consecutive5xxErrors).toBe(inputs.canary.settings.errorLimit);
  });

  it('a row’s canary weight is the model’s canary share of the row', () => {
    const us = (vs?.['spec'].http as Json[]).find((h) => h['name'] === 'clients-of-us-east');
    const model = trafficTable(rev, canary).services['web']?.['us-east'];
    const share = Object.values(model?.clusters ?? {}).reduce((n, c) => n + c.canary, 0);
    expect(us?.['route'][1].weight).toBe(Math.round(share * 100));
    expect(us?.['route'][0].weight + us?.['route'][1].weight).toBe(100);
  });

  it('the loss report says locality failover is not fail-closed', () => {
    const f = istioExporter.export(inputs.plain).loss.find((l) => l.code === 'MERIDIAN_LOSS_LOCALITY_FAILOVER');
    expect(f?.effect).toMatch(/not fail-closed/);
  });
});

describe('the Gateway API export says what the model says', () => {
  it('each row’s backends and weights are route simulate’s shares; a locked row names only allowed clusters', () => {
    const [hr] = routes(inputs.canary);
    const table = trafficTable(rev, canary).services['web'] ?? {};
    const rules = hr?.['spec'].rules as Json[];
    for (const [client, countries] of [
      ['eu-west', ['FR', 'IE']],
      ['eu-central', ['DE']],
      ['us-east', ['US']],
    ] as const) {
      const rule = rules.find((r) => (r['matches'] as Json[]).some((m) => m['headers']?.[0]?.value === countries[0]));
      expect((rule?.['matches'] as Json[]).map((m) => m['headers'][0].value)).toEqual(countries);
      const refs = rule?.['backendRefs'] as Json[];
      const total = refs.reduce((n, r) => n + (r['weight'] as number), 0);
      const row = table[client];
      for (const [cluster, share] of Object.entries(row?.clusters ?? {})) {
        expect((refs.find((r) => r['name'] === backendName('web', cluster))?.['weight'] ?? 0) / total).toBeCloseTo(share.stable, 3);
        expect((refs.find((r) => r['name'] === backendName('web', cluster, true))?.['weight'] ?? 0) / total).toBeCloseTo(share.canary, 3);
      }
      if (client.startsWith('eu-')) for (const r of refs) expect(EU.some((c) => r['name'] === backendName('web', c))).toBe(true);
    }
  });
});
