/**
 * How fast does the router stop sending traffic to a cluster that died or went bad?
 *
 * 1. Dead cluster: eu-west-1 runs two real upstream processes, eu-west-2 one; a paced load of 500 req/s
 *    (keep-alive) goes through the router; both eu-west-1 processes get SIGKILL. Measured from the kill:
 *    when the router marked the endpoints down, when the new table without the cluster was in use, and
 *    when the last request was sent to the cluster (target ≤ 1 s); and how many client requests failed.
 * 2. Bad cluster: the same load at 200 req/s; one cluster starts answering 500. Measured from the
 *    switch: when it was ejected (consecutive5xx: 5) and when the last request reached it (target ≤ 2 s).
 * 3. Slow cluster: the same load; one cluster starts answering after 5 s. With `retries.perTryTimeout:
 *    250ms` each attempt there is retried elsewhere after 250 ms, and five timeouts in a row eject it.
 *    Measured: when it was ejected, the clients' latency from the switch on, and failed requests.
 *
 * The health settings are those of examples/shop (checks every 2 s, 5 consecutive 5xx). Each scenario
 * runs several times with a fresh router; medians and maxima are reported. Loopback only, bounded in
 * time and requests. Run: `npx tsx bench/router-failover.ts [--runs 5] [--json]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { Pool } from 'undici';
import type { Revision } from '../src/render/render.js';
import { LOOPBACK_SOURCES, Router, StaticEndpoints, type RouterEndpoint } from '../src/router/index.js';
import { Routing } from '../src/spec/schema.js';
import { median } from './lib/measure.js';
import { freePort, waitPort } from './lib/processes.js';

/** The load generator stands for a trusted edge proxy (nothing is trusted by default; docs/router.md). */
const TRUST = { trustedSources: LOOPBACK_SOURCES, adminSources: LOOPBACK_SOURCES };

const argN = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = argN('runs', 5);
const JSON_OUT = process.argv.includes('--json');

const UPSTREAM = `
const http = require('node:http');
http.createServer((req, res) => { req.resume(); res.end(process.env.CLUSTER); }).listen(Number(process.env.PORT), '127.0.0.1');
`;

function revision(routing: Record<string, unknown> = {}): Revision {
  const svc = (version: string): Revision['clusters'][string]['services'][string] => ({
    image: `example.test/web@sha256:${'0'.repeat(64)}`,
    digest: `sha256:${'0'.repeat(64)}`,
    version,
    port: 8080,
    replicas: 1,
    resources: {},
    health: { path: '/healthz' },
    requires: {},
    env: {},
    config: {},
    secrets: {},
    ingress: null,
    local: null,
  });
  const cluster = (region: string): Revision['clusters'][string] => ({
    region,
    jurisdiction: 'EU',
    driver: 'local',
    target: null,
    capacity: { rps: 100_000 },
    weight: 1,
    priority: null,
    labels: {},
    services: { web: svc('1.0.0') },
    hash: region,
  });
  return {
    id: 'bench',
    fleet: 'bench',
    regions: {
      'eu-west': { jurisdiction: 'EU', location: { lat: 53.35, lon: -6.26 }, countries: ['IE'], trafficRps: null },
      'eu-central': { jurisdiction: 'EU', location: { lat: 50.11, lon: 8.68 }, countries: ['DE'], trafficRps: null },
    },
    clusters: { 'eu-west-1': cluster('eu-west'), 'eu-west-2': cluster('eu-west'), 'eu-central-1': cluster('eu-central') },
    routing: {
      web: Routing.parse({
        clientCountryHeader: 'x-client-country',
        residency: { EU: { allow: ['EU'], mode: 'lock' } },
        healthCheck: { path: '/healthz', interval: '2s', timeout: '1s', unhealthyThreshold: 3, healthyThreshold: 2 },
        outlierDetection: { consecutive5xx: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
        retries: { attempts: 1, budget: '20%' },
        ...routing,
      }),
    },
    flags: {},
  };
}

async function processUpstream(cluster: string): Promise<{ proc: ChildProcess; endpoint: RouterEndpoint }> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['-e', UPSTREAM], {
    env: { PATH: process.env['PATH'] ?? '', PORT: String(port), CLUSTER: cluster },
    stdio: 'ignore',
  });
  await waitPort(port);
  return { proc, endpoint: { cluster, service: 'web', track: 'stable', version: '1.0.0', host: '127.0.0.1', port } };
}

interface InProcess {
  server: Server;
  status: number;
  /** Answers requests (not health checks) this much later. */
  delayMs: number;
  hits: number;
  lastHitAt: number;
  endpoint: RouterEndpoint;
}
async function inProcessUpstream(cluster: string): Promise<InProcess> {
  const u = { status: 200, delayMs: 0, hits: 0, lastHitAt: 0 } as InProcess;
  u.server = createServer((req, res) => {
    req.resume();
    if (req.url !== '/healthz') {
      u.hits++;
      u.lastHitAt = performance.now();
    }
    if (req.url === '/healthz') res.writeHead(200).end(cluster);
    else if (u.delayMs > 0) setTimeout(() => res.writeHead(u.status).end(cluster), u.delayMs);
    else res.writeHead(u.status).end(cluster);
  });
  await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r));
  u.endpoint = {
    cluster,
    service: 'web',
    track: 'stable',
    version: '1.0.0',
    host: '127.0.0.1',
    port: (u.server.address() as AddressInfo).port,
  };
  return u;
}

/** Why client requests failed, over all runs: status (and reason) or error code → count. */
const failureKinds: Record<string, number> = {};
function failedAs(kind: string): void {
  failureKinds[kind] = (failureKinds[kind] ?? 0) + 1;
}

/** Sends `rps` requests per second for `ms`; returns the number of failed requests. */
async function pacedLoad(
  port: number,
  rps: number,
  ms: number,
  during: (elapsed: number) => void,
  latencies?: number[],
): Promise<{ sent: number; failed: number }> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64 });
  const t0 = performance.now();
  let sent = 0;
  let failed = 0;
  const inflight = new Set<Promise<void>>();
  while (performance.now() - t0 < ms) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rps);
    while (sent < due) {
      sent++;
      const t = performance.now();
      const p = pool
        .request({ path: '/', method: 'GET', headers: { host: 'shop.example', 'x-client-country': 'IE' } })
        .then(async (r) => {
          const reason = r.headers['x-meridian-reason'];
          await r.body.dump();
          if (r.statusCode !== 200) {
            failed++;
            failedAs(`${r.statusCode}${typeof reason === 'string' ? ` ${reason}` : ''}`);
          }
        })
        .catch((err: unknown) => {
          failed++;
          failedAs(String((err as { code?: string }).code ?? err));
        })
        .finally(() => {
          latencies?.push(performance.now() - t);
          inflight.delete(p);
        });
      inflight.add(p);
    }
    during(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inflight);
  await pool.close();
  return { sent, failed };
}

interface DeadRun {
  markedDownMs: number;
  tableMs: number;
  lastRequestMs: number;
  failed: number;
  sent: number;
}

async function deadCluster(): Promise<DeadRun> {
  const ups = await Promise.all([
    processUpstream('eu-west-1'),
    processUpstream('eu-west-1'),
    processUpstream('eu-west-2'),
    processUpstream('eu-central-1'),
  ]);
  const router = new Router({ revision: revision(), endpoints: new StaticEndpoints(ups.map((u) => u.endpoint)), geoip: null, ...TRUST });
  const { port } = await router.listen(0);
  const m = router.metrics;
  const touching = (): number =>
    m.requests.sum({ cluster: 'eu-west-1' }) +
    m.connectErrors.sum({ cluster: 'eu-west-1' }) +
    m.upstreamFailures.sum({ cluster: 'eu-west-1' });
  let killAt = -1;
  let last = -1;
  let lastCount = 0;
  let markedDown = -1;
  let table = -1;
  const load = await pacedLoad(port, 500, 3000, (elapsed) => {
    if (killAt < 0 && elapsed >= 1000) {
      for (const u of ups.slice(0, 2)) u.proc.kill('SIGKILL');
      killAt = performance.now();
      lastCount = touching();
    }
    if (killAt < 0) return;
    const now = performance.now();
    const c = touching();
    if (c !== lastCount) {
      lastCount = c;
      last = now - killAt;
    }
    const s = router.stats();
    if (markedDown < 0 && s.services['web']?.clusters['eu-west-1']?.usable === 0) markedDown = now - killAt;
    if (table < 0) {
      const snap = router.snapshot();
      const t = snap.services.get('web')?.table;
      const ci = t?.model.clusterIndex.get('eu-west-1') ?? -1;
      if (t && ci >= 0 && t.model.healthFraction[ci] === 0) table = now - killAt;
    }
  });
  await router.close();
  for (const u of ups) u.proc.kill('SIGKILL');
  return { markedDownMs: markedDown, tableMs: table, lastRequestMs: Math.max(0, last), failed: load.failed, sent: load.sent };
}

interface BadRun {
  ejectedMs: number;
  lastHitMs: number;
  failed: number;
  sent: number;
  /** Client latency of requests sent from the change on: p50, p99, max (ms). */
  p50: number;
  p99: number;
  max: number;
}

/**
 * Three clusters under 200 req/s for 3 s; at 1 s, `turn` makes eu-west-1 bad. Measured from then: when it
 * was ejected, when the last request reached it, the clients' latency, and failed requests.
 */
async function clusterTurnsBad(turn: (u: InProcess) => void, routing: Record<string, unknown> = {}): Promise<BadRun> {
  const ups = await Promise.all([inProcessUpstream('eu-west-1'), inProcessUpstream('eu-west-2'), inProcessUpstream('eu-central-1')]);
  const router = new Router({
    revision: revision(routing),
    endpoints: new StaticEndpoints(ups.map((u) => u.endpoint)),
    geoip: null,
    ...TRUST,
  });
  const { port } = await router.listen(0);
  const bad = ups[0] as InProcess;
  // the ejection counter, not router.stats(): building the stats every millisecond would load the router under test
  const ejections = (): number => router.metrics.ejections.sum({ cluster: 'eu-west-1' });
  let switchAt = -1;
  let ejected = -1;
  const latencies: number[] = [];
  let before = 0;
  const load = await pacedLoad(
    port,
    200,
    3000,
    (elapsed) => {
      if (switchAt < 0 && elapsed >= 1000) {
        turn(bad);
        switchAt = performance.now();
        before = latencies.length;
      }
      if (switchAt >= 0 && ejected < 0 && ejections() > 0) ejected = performance.now() - switchAt;
    },
    latencies,
  );
  await router.close();
  for (const u of ups) {
    u.server.closeAllConnections();
    u.server.close();
  }
  // latencies are pushed as requests finish; those of requests sent before the change are mostly first
  const after = latencies.slice(before).sort((a, b) => a - b);
  const q = (p: number): number => after[Math.min(after.length - 1, Math.floor(p * after.length))] ?? -1;
  return {
    ejectedMs: ejected,
    lastHitMs: Math.max(0, bad.lastHitAt - switchAt),
    failed: load.failed,
    sent: load.sent,
    p50: q(0.5),
    p99: q(0.99),
    max: after.at(-1) ?? -1,
  };
}

/** The cluster starts answering 500. */
const badCluster = (): Promise<BadRun> => clusterTurnsBad((u) => (u.status = 500));

/** The cluster goes slow (answers after 5 s): each attempt there times out after `perTryTimeout` and is retried elsewhere. */
const slowCluster = (): Promise<BadRun> =>
  clusterTurnsBad((u) => (u.delayMs = 5000), { timeout: '10s', retries: { attempts: 1, budget: '20%', perTryTimeout: '250ms' } });

const dead: DeadRun[] = [];
const badRuns: BadRun[] = [];
const slowRuns: BadRun[] = [];
for (let i = 0; i < RUNS; i++) {
  dead.push(await deadCluster());
  badRuns.push(await badCluster());
  slowRuns.push(await slowCluster());
}
const f = (v: number): string => (v < 0 ? 'never' : `${v.toFixed(0)} ms`);
const ms1 = (v: number): string => `${v.toFixed(1)} ms`;
const stat = (xs: number[]): string => `${f(median(xs))} (max ${f(Math.max(...xs))})`;
if (JSON_OUT) {
  console.log(JSON.stringify({ runs: RUNS, dead, bad: badRuns, slow: slowRuns, failureKinds }, null, 2));
} else {
  console.log('### Router failure detection (bench/router-failover.ts)\n');
  console.log(
    `machine: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}; ${RUNS} runs each, median (max); times from the event.\n`,
  );
  console.log('| scenario | measure | result | target |');
  console.log('| --- | --- | ---: | ---: |');
  console.log(`| dead cluster (2 processes SIGKILLed), 500 req/s | endpoints marked down | ${stat(dead.map((d) => d.markedDownMs))} | |`);
  console.log(`| | table without the cluster in use | ${stat(dead.map((d) => d.tableMs))} | |`);
  console.log(`| | last request sent to it | ${stat(dead.map((d) => d.lastRequestMs))} | ≤ 1 s |`);
  console.log(`| | client requests failed | ${dead.reduce((a, d) => a + d.failed, 0)} of ${dead.reduce((a, d) => a + d.sent, 0)} | 0 |`);
  console.log(`| cluster answers 500, 200 req/s | ejected (5 consecutive 5xx) | ${stat(badRuns.map((d) => d.ejectedMs))} | ≤ 2 s |`);
  console.log(`| | last request reaching it | ${stat(badRuns.map((d) => d.lastHitMs))} | |`);
  console.log(
    `| | client requests failed | ${badRuns.reduce((a, d) => a + d.failed, 0)} of ${badRuns.reduce((a, d) => a + d.sent, 0)} | 0 |`,
  );
  console.log(
    `| cluster answers after 5 s, 200 req/s (perTryTimeout 250ms) | ejected (5 timeouts in a row) | ${stat(slowRuns.map((d) => d.ejectedMs))} | |`,
  );
  console.log(`| | last request reaching it | ${stat(slowRuns.map((d) => d.lastHitMs))} | |`);
  console.log(
    `| | client latency from the switch on: p50 · p99 · max | ${ms1(median(slowRuns.map((d) => d.p50)))} · ${ms1(median(slowRuns.map((d) => d.p99)))} · ${ms1(Math.max(...slowRuns.map((d) => d.max)))} | |`,
  );
  console.log(
    `| | client requests failed | ${slowRuns.reduce((a, d) => a + d.failed, 0)} of ${slowRuns.reduce((a, d) => a + d.sent, 0)} | 0 |`,
  );
  if (Object.keys(failureKinds).length > 0) {
    console.log(
      `\nfailed requests by status or error: ${Object.entries(failureKinds)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')}`,
    );
  }
}
