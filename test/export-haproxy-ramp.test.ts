/**
 * The HAProxy export while a place ramps back after a restore (docs/recovery.md, "The restore ramp"): the
 * rows it serves leave the fast path and choose their levels by the routing table's shares, fixed in the
 * configuration; a cluster ramping beside another in its level gets a backend weighed by the shares; with
 * nothing ramping, or every ramp at 100 %, the export is the one without a ramp. Pure, and `haproxy -c`.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, writeExport } from '../src/export/index.js';
import { haproxyExporter } from '../src/export/haproxy.js';
import type { RoutingState } from '../src/routing/index.js';
import { trafficTable } from '../src/routing/index.js';
import { fixtureRevision, maxDiff, tempDir } from './support/export-kit.js';

const rev = fixtureRevision();
const exported = (state: RoutingState = {}): Readonly<Record<string, string>> =>
  haproxyExporter.export(exportInput(rev, clusterAddresses(rev), {}, state)).files;

/** The countries on the fast path: their entry in web.by-country.map is a first level's backend, not the priority frontend. */
const fastCountries = (files: Readonly<Record<string, string>>): string[] =>
  (files['web.by-country.map'] ?? '')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#') && !l.endsWith(' meridian_priority'))
    .map((l) => l.split(' ')[0] ?? '');

/**
 * What the configuration gives a row while it ramps, cluster → share, read from haproxy.cfg alone: each
 * fixed level choice (its `txn.q` range of 10000) spread over its backend's servers by weight.
 */
function fixedShares(cfg: string, client: string): Record<string, number> {
  const weights = new Map<string, Map<string, number>>();
  let backend = '';
  for (const line of cfg.split('\n')) {
    const b = /^backend (\S+)/.exec(line);
    if (b) backend = b[1] ?? '';
    const s = /^ {2}server (\S+?)\.\S* \S+ weight (\d+)/.exec(line);
    if (s && backend !== '') {
      const m = weights.get(backend) ?? new Map<string, number>();
      m.set(s[1] ?? '', (m.get(s[1] ?? '') ?? 0) + Number(s[2]));
      weights.set(backend, m);
    }
  }
  const acl = `row_web_${client}`;
  const out: Record<string, number> = {};
  for (const line of cfg.split('\n')) {
    if (!line.includes(`set-var(txn.lvl) int(`) || !line.includes(` if ${acl} `) || !line.includes('var(txn.q)')) continue;
    const lo = Number(/var\(txn\.q\) -m int ge (\d+)/.exec(line)?.[1] ?? 0);
    const hi = Number(/var\(txn\.q\) -m int lt (\d+)/.exec(line)?.[1] ?? 0);
    const servers = weights.get(/nbsrv\((\S+)\)/.exec(line)?.[1] ?? '') ?? new Map<string, number>();
    const total = [...servers.values()].reduce((n, w) => n + w, 0);
    for (const [cluster, w] of servers) out[cluster] = (out[cluster] ?? 0) + ((hi - lo) / 10000) * (w / total);
  }
  return out;
}

/** `route simulate`'s shares of web for a client region in this state. */
function simulated(client: string, state: RoutingState): Record<string, number> {
  const row = trafficTable(rev, state).services['web']?.[client];
  return Object.fromEntries(Object.entries(row?.clusters ?? {}).map(([c, v]) => [c, v.stable + v.canary]));
}

describe('the HAProxy export during a restore ramp', () => {
  it('with nothing ramping, or every ramp at 100 %, writes the configuration without a ramp (the golden files)', () => {
    const plain = exported();
    expect(exported({ ramp: {} })).toEqual(plain);
    expect(exported({ ramp: { 'eu-west': 100, 'eu-west-1': 100 } })).toEqual(plain);
    expect(fastCountries(plain)).toEqual(['DE', 'FR', 'IE', 'IN', 'US']);
  });

  it('a region at 20 %: its clients leave the fast path and take the routing table’s level shares, fixed (20 % eu-west, 80 % eu-central)', () => {
    const state = { ramp: { 'eu-west': 20 } };
    const files = exported(state);
    const cfg = files['haproxy.cfg'] ?? '';
    // the Irish row goes to the priority frontend; German clients (eu-west is only their second level) keep their fast path
    expect(fastCountries(files)).toEqual(['DE', 'IN', 'US']);
    expect(cfg).toContain(
      'http-request set-var(txn.lvl) int(0) if row_web_eu-west !{ var(txn.lvl) -m found } { var(txn.q) -m int lt 2000 } { nbsrv(web_eu-west) gt 0 }',
    );
    expect(cfg).toContain(
      'http-request set-var(txn.lvl) int(1) if row_web_eu-west !{ var(txn.lvl) -m found } { var(txn.q) -m int ge 2000 } { var(txn.q) -m int lt 10000 } { nbsrv(web_eu-central) gt 0 }',
    );
    const shares = fixedShares(cfg, 'eu-west');
    expect(maxDiff(shares, simulated('eu-west', state)), JSON.stringify(shares)).toBeLessThan(0.5);
    expect(shares['eu-west-1']! + shares['eu-west-2']!).toBeCloseTo(0.2, 5);
    // Envoy's priority load stays below the fixed choice, as the fallback
    expect(cfg.indexOf('{ var(txn.q) -m int lt 2000 }')).toBeLessThan(cfg.indexOf('set-var(txn.w0) int(0) if row_web_eu-west'));
    // no backend of its own: the region's clusters all ramp alike
    expect(cfg).not.toContain('_ramp');
  });

  it('one cluster at 20 % beside another in its level: the level gets a backend weighed by the clusters’ shares (10 % / 90 %)', () => {
    const state = { ramp: { 'eu-west-1': 20 } };
    const files = exported(state);
    const cfg = files['haproxy.cfg'] ?? '';
    expect(fastCountries(files)).not.toContain('IE');
    expect(cfg).toContain('backend web_eu-west_ramp');
    expect(cfg).toContain('use_backend web_eu-west_ramp if row_web_eu-west { var(txn.lvl) -m int eq 200 }');
    const shares = fixedShares(cfg, 'eu-west');
    const model = simulated('eu-west', state);
    expect(model['eu-west-1']).toBeCloseTo(0.1, 5);
    expect(maxDiff(shares, model), JSON.stringify({ shares, model })).toBeLessThan(0.5);
    // the ramp backend's servers are in servers.json: drains and canary weights reach them through the runtime API
    const servers = (JSON.parse(files['servers.json'] ?? '{}') as { servers: { backend: string; cluster: string }[] }).servers;
    expect(servers.filter((s) => s.backend === 'web_eu-west_ramp').map((s) => s.cluster)).toEqual(['eu-west-1', 'eu-west-2']);
  });

  it('a region at 0 %: its clients all go where they went while it was evacuated, the region still a fallback', () => {
    const cfg = exported({ ramp: { 'eu-west': 0 } })['haproxy.cfg'] ?? '';
    const shares = fixedShares(cfg, 'eu-west');
    expect(shares).toEqual({ 'eu-central-1': 1 });
    expect(cfg).toContain('set-var(txn.lvl) int(0) if row_web_eu-west !{ var(txn.lvl) -m found } { nbsrv(web_eu-west) gt 0 }');
  });

  it('reports the ramp in the loss report only while a place ramps', () => {
    const loss = (state: RoutingState): string[] =>
      haproxyExporter.export(exportInput(rev, clusterAddresses(rev), {}, state)).loss.map((f) => f.code);
    expect(loss({})).not.toContain('MERIDIAN_LOSS_RESTORE_RAMP');
    expect(loss({ ramp: { 'eu-west': 50 } })).toContain('MERIDIAN_LOSS_RESTORE_RAMP');
  });

  it('HAProxy accepts the configuration of each ramp', () => {
    const tmp = tempDir('meridian-haproxy-ramp-');
    try {
      for (const ramp of [{ 'eu-west': 20 }, { 'eu-west-1': 20 }, { 'eu-west': 0, 'us-east-2': 50 }]) {
        const dir = join(tmp.dir, Object.keys(ramp).join('+'));
        writeExport(dir, 'haproxy', haproxyExporter.export(exportInput(rev, clusterAddresses(rev), {}, { ramp })));
        execFileSync('haproxy', ['-c', '-q', '-f', join(dir, 'haproxy.cfg')]);
      }
    } finally {
      tmp.cleanup();
    }
  });
});
