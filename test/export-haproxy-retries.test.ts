/**
 * The route's timing and retries in HAProxy, for real (Debian's HAProxy 2.6 on loopback): with
 * `retries: { attempts: 1, perTryTimeout: 300ms }`, an attempt on a cluster that stopped answering gives
 * up after 300 ms and an idempotent request is retried on the level's other cluster; a POST is not
 * (it may have been processed) and gets HAProxy's 504. Without them (HAProxy's `timeout server 30s`, retries
 * on connection failures only), both would wait 30 s.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAndRender } from '../src/cli/commands/render.js';
import type { ClusterAddresses } from '../src/export/contract.js';
import { exportInput, writeExport } from '../src/export/index.js';
import { haproxyExporter } from '../src/export/haproxy.js';
import { FLEET_DIR, freePort, type Proc, spawnProc, tempDir, waitHttp } from './support/export-kit.js';
import { closeAgents, get, startUpstream, until, type Upstream } from './support/router-kit.js';

const PER_TRY_MS = 300;

describe('HAProxy: per-try timeout and retries from the route', () => {
  const tmp = tempDir('meridian-haproxy-retries-');
  const ups: Record<string, Upstream> = {};
  let haproxy: Proc;
  let port: number;
  let cfg: string;

  beforeAll(async () => {
    // the data-plane fixture fleet, with a timed route
    const fleetDir = join(tmp.dir, 'fleet');
    cpSync(FLEET_DIR, fleetDir, { recursive: true });
    const fleetFile = join(fleetDir, 'fleet.yaml');
    writeFileSync(
      fleetFile,
      readFileSync(fleetFile, 'utf8').replace(
        'routing:\n  web:\n',
        `routing:\n  web:\n    timeout: 5s\n    retries: { attempts: 1, budget: 50%, perTryTimeout: ${PER_TRY_MS}ms }\n`,
      ),
    );
    const rev = loadAndRender(fleetDir).rendered.revision;
    for (const c of Object.keys(rev.clusters)) ups[c] = await startUpstream(c, '2.4.0');
    const addresses: ClusterAddresses = Object.fromEntries(
      Object.entries(ups).map(([c, u]) => [c, { web: [{ host: '127.0.0.1', port: u.port, name: 'ingress', healthPath: '/healthz' }] }]),
    );
    port = await freePort();
    const out = join(tmp.dir, 'haproxy');
    writeExport(
      out,
      'haproxy',
      haproxyExporter.export(
        exportInput(rev, addresses, { listen: `127.0.0.1:${port}`, metricsListen: null, runtimeApi: join(tmp.dir, 'admin.sock') }),
      ),
    );
    cfg = readFileSync(join(out, 'haproxy.cfg'), 'utf8');
    execFileSync('haproxy', ['-c', '-q', '-f', join(out, 'haproxy.cfg')]);
    haproxy = spawnProc('haproxy', ['-db', '-f', join(out, 'haproxy.cfg')]);
    await waitHttp(port, haproxy);
    // both eu-west clusters answer Irish clients
    const seen = new Set<string>();
    await until(async () => {
      const r = await get(port, '/', { headers: { 'x-client-country': 'IE' } });
      if (r.status === 200) seen.add(r.json<{ cluster: string }>().cluster);
      return seen.has('eu-west-1') && seen.has('eu-west-2');
    });
  }, 60_000);

  afterAll(async () => {
    closeAgents();
    await haproxy?.stop();
    for (const u of Object.values(ups)) await u.kill();
    tmp.cleanup();
  });

  it('writes the route’s timing and retry rules into the level backends', () => {
    expect(cfg).toContain(`  timeout server ${PER_TRY_MS}ms`);
    expect(cfg).toContain('  retry-on conn-failure empty-response response-timeout 500 502 503 504');
    expect(cfg).toContain('  http-request disable-l7-retry if !{ method GET HEAD OPTIONS TRACE PUT DELETE }');
    // the hop to the priority frontend is the whole request, not an attempt
    expect(cfg).toMatch(/http-request set-timeout server 30000ms if \{ nbsrv lt \d+ \}/);
  });

  it('gives up on a hung cluster after the per-try timeout: a POST gets 504, a GET is retried on the other cluster', async () => {
    const hung = ups['eu-west-1'];
    if (!hung) throw new Error('fixture');
    hung.delayMs = 20_000; // it accepts and reads requests, and answers none in time (its health check still passes)
    const ie = { 'x-client-country': 'IE' };

    // roundrobin over two equal servers: two POSTs in a row reach each once
    const posts = [];
    for (let i = 0; i < 2; i++) {
      const t0 = Date.now();
      const r = await get(port, '/', { method: 'POST', body: 'x', headers: ie });
      posts.push({ status: r.status, ms: Date.now() - t0 });
    }
    expect(posts.map((p) => p.status).sort()).toEqual([200, 504]);
    const failed = posts.find((p) => p.status === 504);
    expect(failed?.ms).toBeGreaterThanOrEqual(PER_TRY_MS - 20);
    expect(failed?.ms).toBeLessThan(5_000);

    const gets = [];
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      const r = await get(port, '/', { headers: ie });
      gets.push({ status: r.status, cluster: r.status === 200 ? r.json<{ cluster: string }>().cluster : null, ms: Date.now() - t0 });
    }
    expect(
      gets.every((g) => g.status === 200 && g.cluster === 'eu-west-2'),
      JSON.stringify(gets),
    ).toBe(true);
    // the GETs that reached eu-west-1 first waited one per-try timeout, then were answered by eu-west-2
    const retried = gets.filter((g) => g.ms >= PER_TRY_MS - 20);
    expect(retried.length).toBeGreaterThan(0);
    expect(Math.max(...gets.map((g) => g.ms))).toBeLessThan(5_000);
  }, 60_000);
});
