/**
 * BIND 9 as a data plane, for real: `meridian export bind` for the fixture fleet with each cluster's
 * ingress on its own loopback address, a GeoIP2 country database written here (test/mmdb-kit.ts maps
 * 127.0.x.0/24 to countries: the licensed database is not on this machine), Debian's named 9.18 started
 * on a loopback port, queries with dig from a source address per country. Each country is answered with
 * its row's first level; a dead cluster stays in the answers until the next export and reload (BIND has
 * no health checks); with every EU cluster down, EU clients get no answer, never a cluster outside the EU.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindExporter } from '../src/export/bind.js';
import { clusterAddresses, exportInput, writeExport } from '../src/export/index.js';
import type { Revision } from '../src/render/render.js';
import { simulatedState } from '../src/routing/index.js';
import { fixtureRevision, freePort, maxDiff, type Proc, simulated, spawnProc, tempDir } from './support/export-kit.js';
import { countryMmdb } from './support/mmdb-kit.js';
import { until } from './support/router-kit.js';

const IP: Record<string, string> = {
  'eu-west-1': '127.0.10.1',
  'eu-west-2': '127.0.10.2',
  'eu-central-1': '127.0.10.3',
  'us-east-1': '127.0.10.4',
  'us-east-2': '127.0.10.5',
};
const CLUSTER_OF = new Map(Object.entries(IP).map(([c, ip]) => [ip, c]));
/** The GeoIP database: source networks → countries. */
const GEO = { '127.0.1.0/24': 'DE', '127.0.2.0/24': 'IE', '127.0.3.0/24': 'US', '127.0.4.0/24': 'IN' };
/** `--country-net` overrides: a network the database does not know, and one it places in IE. */
const NETS = { '127.0.5.0/24': 'DE', '127.0.2.128/25': 'DE' };
const EU = ['eu-west-1', 'eu-west-2', 'eu-central-1'];

describe('BIND 9 views exported by Meridian', () => {
  const tmp = tempDir('meridian-bind-');
  let named: Proc;
  let port: number;
  let live: Revision;

  /** The addresses dig reads for web.meridian.test from a source address, in answer order ([] for none). */
  const dig = (from: string): string[] =>
    execFileSync('dig', ['@127.0.0.1', '-p', String(port), '-b', from, 'web.meridian.test', 'A', '+short', '+time=2', '+tries=2'], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean);

  /** Shares of the first address of `n` answers by cluster (a client connects to the first). */
  const firstShares = (from: string, n: number): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const first = dig(from)[0];
      const key = first === undefined ? 'no answer' : (CLUSTER_OF.get(first) ?? first);
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
  };

  /** Exports for the given clusters down (the routing state at export time) and returns the files. */
  const exportFor = (down: readonly string[]): Record<string, string> => {
    const input = exportInput(
      live,
      clusterAddresses(live),
      { countryNets: NETS, dnsListen: `127.0.0.1:${port}`, dnsRunDir: tmp.dir },
      simulatedState({ down }),
    );
    const out = bindExporter.export(input);
    writeExport(tmp.dir, 'bind', out);
    return { ...out.files };
  };

  /** Re-exports and reloads named (SIGHUP to its pid), then waits until `from` gets the expected answer. */
  const reexport = async (down: readonly string[], from: string, expected: (a: string[]) => boolean): Promise<void> => {
    await new Promise((r) => setTimeout(r, 1100)); // zone files are reloaded when their mtime (seconds) changes
    exportFor(down);
    execFileSync('named-checkconf', ['-z', join(tmp.dir, 'named.conf')], { stdio: 'ignore' });
    if (named.child.pid !== undefined) process.kill(named.child.pid, 'SIGHUP');
    await until(() => expected(dig(from)), 20_000, `named to answer ${from} after the reload`);
  };

  beforeAll(async () => {
    const rev = fixtureRevision();
    const clusters: Record<string, Revision['clusters'][string]> = {};
    for (const [name, c] of Object.entries(rev.clusters)) clusters[name] = { ...c, ingress: { address: `${IP[name]}:8443` } };
    live = { ...rev, clusters };
    port = await freePort();
    mkdirSync(join(tmp.dir, 'geoip'));
    writeFileSync(join(tmp.dir, 'geoip', 'GeoIP2-Country.mmdb'), countryMmdb(GEO));
    exportFor([]);
    execFileSync('named-checkconf', ['-z', join(tmp.dir, 'named.conf')], { stdio: 'ignore' });
    named = spawnProc('named', ['-g', '-n', '1', '-c', join(tmp.dir, 'named.conf')], { cwd: tmp.dir });
    await until(
      () => {
        if (named.child.exitCode !== null) throw new Error(`named exited: ${named.output()}`);
        try {
          return dig('127.0.3.9').length > 0;
        } catch {
          return false;
        }
      },
      20_000,
      'named to answer',
    );
    // named refuses to start without a GeoIP2 country database for the `geoip country` ACLs, so an
    // answer means it opened the generated one (its log line may be cut from the kept output)
  }, 60_000);

  afterAll(async () => {
    await named?.stop();
    tmp.cleanup();
  });

  it('answers each country (geoip country ACLs) with its row’s first level, in its jurisdiction', () => {
    expect(dig('127.0.2.9').sort()).toEqual([IP['eu-west-1'], IP['eu-west-2']]); // IE, from the database
    expect(dig('127.0.1.9')).toEqual([IP['eu-central-1']]); // DE
    expect(dig('127.0.3.9').sort()).toEqual([IP['us-east-1'], IP['us-east-2']]); // US
    expect(dig('127.0.4.9').sort()).toEqual([IP['us-east-1'], IP['us-east-2']]); // IN: ap-south prefers US
    expect(dig('127.0.9.9').sort()).toEqual([IP['us-east-1'], IP['us-east-2']]); // not in the database: (unknown)
  });

  it('--country-net networks win over the database (a net it places in IE is DE here)', () => {
    expect(dig('127.0.5.9')).toEqual([IP['eu-central-1']]);
    expect(dig('127.0.2.200')).toEqual([IP['eu-central-1']]);
    expect(dig('127.0.2.9')).not.toContain(IP['eu-central-1']);
  });

  it('first addresses follow route simulate within ±3 points where weights are equal; weights are lost (MERIDIAN_LOSS_PRIORITY_LOAD)', () => {
    const ie = firstShares('127.0.2.9', 40);
    expect(maxDiff(ie, simulated(live, 'eu-west'))).toBeLessThanOrEqual(3);
    // us-east-1 has weight 2: the model sends it 2/3, BIND's rotation 1/2
    const us = firstShares('127.0.3.9', 40);
    expect(simulated(live, 'us-east')['us-east-1']).toBeCloseTo(2 / 3, 2);
    expect(maxDiff(us, { 'us-east-1': 0.5, 'us-east-2': 0.5 })).toBeLessThanOrEqual(3);
  });

  it('a dead cluster stays in the answers until a new export and reload (MERIDIAN_LOSS_ACTIVE_HEALTH), then the row keeps its level', async () => {
    // eu-west-1's ingress is not served at all here: BIND cannot tell, it answers it as before
    expect(dig('127.0.2.9')).toContain(IP['eu-west-1']);
    await reexport(['eu-west-1'], '127.0.2.9', (a) => a.length === 1 && a[0] === IP['eu-west-2']);
    // route simulate --down eu-west-1 spills 30 % to eu-central-1; the static answer keeps the first level
    expect(simulated(live, 'eu-west', ['eu-west-1'])['eu-central-1']).toBeGreaterThan(0.2);
    expect(firstShares('127.0.2.9', 20)).toEqual({ 'eu-west-2': 1 });
  }, 40_000);

  it('with every EU cluster down, EU clients get no answer, never a cluster outside the EU (MERIDIAN_LOSS_PANIC)', async () => {
    const files = exportFor(EU);
    for (const view of ['eu-west', 'eu-central'])
      for (const [c, ip] of Object.entries(IP)) if (!EU.includes(c)) expect(files[`zones/${view}.meridian.test`]).not.toContain(ip);
    await reexport(EU, '127.0.2.9', (a) => a.length === 0);
    for (const from of ['127.0.1.9', '127.0.2.9', '127.0.5.9']) expect(dig(from)).toEqual([]);
    expect(dig('127.0.3.9').sort()).toEqual([IP['us-east-1'], IP['us-east-2']]);
    expect(readFileSync(join(tmp.dir, 'named.conf'), 'utf8')).toContain('# web, clients of eu-west: no answer');
  }, 40_000);
});
