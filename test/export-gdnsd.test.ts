/**
 * gdnsd as a data plane, for real: `meridian export gdnsd` for the fixture fleet with each cluster's
 * ingress on its own loopback address (a health endpoint served here), Debian's gdnsd 3.8 started on
 * loopback, queries with dig from a source address per country. Each country is answered with its row's
 * first cluster; a cluster whose health check fails is replaced by the next in the row; with every EU
 * cluster down, EU clients are never answered with a cluster outside the EU.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterAddresses, exportInput, writeExport } from '../src/export/index.js';
import { gdnsdExporter } from '../src/export/gdnsd.js';
import type { Revision } from '../src/render/render.js';
import { fixtureRevision, freePort, type Proc, spawnProc, tempDir } from './support/export-kit.js';
import { until } from './support/router-kit.js';

const IP = {
  'eu-west-1': '127.0.10.1',
  'eu-west-2': '127.0.10.2',
  'eu-central-1': '127.0.10.3',
  'us-east-1': '127.0.10.4',
  'us-east-2': '127.0.10.5',
};
const NETS = { '127.0.1.0/24': 'DE', '127.0.2.0/24': 'IE', '127.0.3.0/24': 'US' };

describe('gdnsd exported by Meridian', () => {
  const tmp = tempDir('meridian-gdnsd-');
  const health = new Map<string, Server>();
  let gdnsd: Proc;
  let port: number;

  /** The A records dig reads for web.meridian.test from a source address ('' when gdnsd does not answer yet). */
  const dig = (from: string): string => {
    try {
      return execFileSync(
        'dig',
        ['@127.0.0.1', '-p', String(port), '-b', from, 'web.meridian.test', 'A', '+short', '+time=1', '+tries=1'],
        {
          encoding: 'utf8',
        },
      ).trim();
    } catch {
      return '';
    }
  };

  beforeAll(async () => {
    const rev = fixtureRevision();
    const clusters: Record<string, Revision['clusters'][string]> = {};
    for (const [name, c] of Object.entries(rev.clusters)) {
      const server = createServer((_req, res) => res.writeHead(200).end('ok'));
      await new Promise<void>((r) => server.listen(0, IP[name as keyof typeof IP], r));
      health.set(name, server);
      clusters[name] = { ...c, ingress: { address: `${IP[name as keyof typeof IP]}:${(server.address() as AddressInfo).port}` } };
    }
    const live = { ...rev, clusters };
    port = await freePort();
    const input = exportInput(live, clusterAddresses(live), {
      countryNets: NETS,
      dnsListen: `127.0.0.1:${port}`,
      dnsRunDir: tmp.dir,
      checkIntervalMs: 2000,
      fall: 1,
      rise: 1,
    });
    writeExport(tmp.dir, 'gdnsd', gdnsdExporter.export(input));
    execFileSync('gdnsd', ['-c', tmp.dir, 'checkconf'], { stdio: 'ignore' });
    gdnsd = spawnProc('gdnsd', ['-c', tmp.dir, 'start']);
    await until(() => dig('127.0.2.9') !== '', 20_000, 'gdnsd to answer');
  }, 60_000);

  afterAll(async () => {
    await gdnsd?.stop();
    for (const s of health.values()) s.close();
    tmp.cleanup();
  });

  it('answers each country with the first cluster of its row, in its jurisdiction', () => {
    expect(dig('127.0.2.9')).toBe(IP['eu-west-1']); // IE: eu-west, then eu-central
    expect(dig('127.0.1.9')).toBe(IP['eu-central-1']); // DE
    expect(dig('127.0.3.9')).toBe(IP['us-east-1']); // US: us-east-1 (weight 2) first
  });

  it('fails over to the next cluster of the row when a health check fails', async () => {
    health.get('eu-west-1')?.close();
    await until(() => dig('127.0.2.9') === IP['eu-west-2'], 30_000, 'IE to move to eu-west-2');
  }, 40_000);

  it('with every EU cluster down, EU clients are never answered outside the EU (MERIDIAN_LOSS_PANIC)', async () => {
    health.get('eu-west-2')?.close();
    health.get('eu-central-1')?.close();
    await new Promise((r) => setTimeout(r, 5000)); // let the monitors see both down (fall 1, every 2 s)
    const eu = [IP['eu-west-1'], IP['eu-west-2'], IP['eu-central-1']];
    for (const from of ['127.0.2.9', '127.0.1.9']) {
      const answer = dig(from);
      for (const a of answer.split('\n').filter(Boolean)) expect(eu).toContain(a);
    }
    expect(dig('127.0.3.9')).toBe(IP['us-east-1']);
  }, 40_000);
});
