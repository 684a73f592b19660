/**
 * Can a slowloris client keep the router or the control plane from serving a normal client? Measured
 * next to nginx under the same attack, in one run (issue 13, security review F-2).
 *
 * Targets, each with its shipped defaults: nginx as a reverse proxy (Debian's nginx.conf limits:
 * `worker_processes auto`, `worker_connections 768`, nginx's own 60 s header/body timeouts), the
 * Meridian router (`meridian router`, built CLI) in front of the same upstream (an nginx answering 200),
 * and the control plane (`meridian serve`, `GET /healthz`). For each target in turn:
 * 1. baseline: the normal client alone;
 * 2. attack: one process (this one) holds `--connections` (default 600) half-open connections — a third
 *    silent, a third trickling a header line every 5 s, a third announcing a 100-byte body they never
 *    send — and opens a new one whenever the target closes one; meanwhile the normal client measures.
 * The normal client sends one request at a time (a new connection each, as a stranger would), for
 * `--seconds` (default 20) per phase; a request without an answer in 5 s counts as failed.
 * Reported: the normal client's p50/p99/max latency and failures, how many attack connections the
 * target closed, and each Meridian target's p99 as a ratio of nginx's in the same run.
 *
 * Needs `nginx` (Debian package) and `npm run build` (dist/); prints a note and exits 0 without nginx.
 * Run: `npm run bench -- slowloris [--connections 600] [--seconds 20]`
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { freePort, stop } from './lib/processes.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'meridian.js');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const CONNECTIONS = arg('connections', 600);
const SECONDS = arg('seconds', 20);
const NGINX = ['/usr/sbin/nginx', 'nginx'].find((c) => spawnSync(c, ['-v']).status === 0);

const children = new Set<ChildProcess>();
function start(cmd: string, args: string[], cwd = ROOT): ChildProcess {
  const c = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** One request on a new connection: its latency in ms, or null when it failed or took over 5 s. */
function probe(port: number, path: string, host: string): Promise<number | null> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host, connection: 'close' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : null));
      res.on('error', () => resolve(null));
    });
    req.on('error', () => resolve(null));
    req.setTimeout(5000, () => req.destroy());
    req.end();
  });
}

/** Waits until `port` answers `path` with 200. */
async function ready(port: number, path: string, host: string, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await probe(port, path, host)) === null) {
    if (Date.now() > deadline) throw new Error(`${what} did not answer on ${port}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Attack {
  /** Attack connections the target closed (each replaced by a new one). */
  closed(): number;
  /** Attack connections open now. */
  open(): number;
  stop(): void;
}

/** Holds `n` half-open connections to `port` from this process, replacing each one the target closes. */
function slowloris(port: number, n: number): Attack {
  const live = new Set<Socket>();
  let closed = 0;
  let stopped = false;
  const timers: NodeJS.Timeout[] = [];
  const one = (kind: number): void => {
    if (stopped) return;
    const s = connect(port, '127.0.0.1');
    live.add(s);
    s.on('error', () => undefined);
    s.on('connect', () => {
      if (kind === 1) s.write('GET / HTTP/1.1\r\nHost: shop.example\r\n');
      if (kind === 2) s.write('POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 100\r\n\r\n');
    });
    s.on('close', () => {
      live.delete(s);
      if (stopped) return;
      closed++;
      setTimeout(() => one(kind), 100).unref();
    });
  };
  for (let i = 0; i < n; i++) one(i % 3);
  // the trickling third sends one more header line every 5 s, never the blank line that ends them
  timers.push(
    setInterval(() => {
      let i = 0;
      for (const s of live) if (i++ % 3 === 1 && s.writable) s.write(`X-Slow-${i}: ${Date.now()}\r\n`);
    }, 5000),
  );
  return {
    closed: () => closed,
    open: () => live.size,
    stop: () => {
      stopped = true;
      for (const t of timers) clearInterval(t);
      for (const s of live) s.destroy();
    },
  };
}

interface Phase {
  requests: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
}

/** The normal client: one request at a time for `seconds`. */
async function measure(port: number, path: string, host: string, seconds: number): Promise<Phase> {
  const lat: number[] = [];
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const ms = await probe(port, path, host);
    if (ms === null) failed++;
    else lat.push(ms);
    await new Promise((r) => setTimeout(r, 20));
  }
  lat.sort((a, b) => a - b);
  return {
    requests: lat.length + failed,
    failed,
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
    max: lat[lat.length - 1] ?? NaN,
  };
}

/** The `q` quantile of sorted values (nearest rank). */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

interface Target {
  name: string;
  port: number;
  path: string;
  host: string;
}

async function run(): Promise<void> {
  if (!NGINX) {
    process.stdout.write('bench/slowloris: nginx is not installed; skipped\n');
    return;
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'meridian-slowloris-'));
  const [up, proxy, router, server] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  writeFileSync(
    join(dir, 'nginx.conf'),
    `# Debian's shipped limits (worker_processes auto, worker_connections 768); nginx's default timeouts
worker_processes auto;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log crit;
events { worker_connections 768; }
http {
  access_log off;
  server { listen 127.0.0.1:${up}; location / { return 200 "ok\\n"; } }
  upstream app { server 127.0.0.1:${up}; keepalive 16; }
  server {
    listen 127.0.0.1:${proxy};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const fleet = join(ROOT, 'examples', 'shop');
  const clusters = ['eu-west-1', 'eu-west-2', 'eu-central-1', 'us-east-1', 'us-east-2', 'us-west-1', 'ap-south-1', 'ap-northeast-1'];
  writeFileSync(
    join(dir, 'endpoints.json'),
    JSON.stringify({ endpoints: clusters.map((cluster) => ({ cluster, service: 'web', port: up })) }),
  );
  const procs = [
    start(NGINX, ['-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]),
    start(process.execPath, [BIN, 'router', '-f', fleet, '-e', join(dir, 'endpoints.json'), '-p', String(router), '--no-health-checks']),
    start(process.execPath, [BIN, 'serve', fleet, '--port', String(server), '--state', join(dir, 'state.db'), '--no-local-admin'], dir),
  ];
  try {
    const targets: Target[] = [
      { name: 'nginx (reverse proxy)', port: proxy, path: '/', host: 'shop.example' },
      { name: 'Meridian router', port: router, path: '/', host: 'shop.example' },
      { name: 'Meridian control plane', port: server, path: '/healthz', host: 'localhost' },
    ];
    for (const t of targets) await ready(t.port, t.path, t.host, t.name);
    const rows: { t: Target; base: Phase; attacked: Phase; open: number; closed: number }[] = [];
    for (const t of targets) {
      const base = await measure(t.port, t.path, t.host, SECONDS);
      const attack = slowloris(t.port, CONNECTIONS);
      await new Promise((r) => setTimeout(r, 2000)); // let the connections open
      const attacked = await measure(t.port, t.path, t.host, SECONDS);
      const open = attack.open();
      const closed = attack.closed();
      attack.stop();
      rows.push({ t, base, attacked, open, closed });
      await new Promise((r) => setTimeout(r, 1000));
    }
    const nginxP99 = rows[0]?.attacked.p99 ?? NaN;
    const f = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '–');
    const lines = [
      `slowloris: ${CONNECTIONS} half-open connections from one process (silent / trickled headers / unsent body), ${SECONDS} s per phase; normal client one request at a time on a new connection`,
      `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg()[0]?.toFixed(1)} at the end`,
      '',
      '| target | baseline p50 / p99 ms | under attack p50 / p99 / max ms | requests (failed) under attack | attack conns open at the end / closed by the target | p99 attack ÷ baseline | p99 under attack ÷ nginx |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map(
        (r) =>
          `| ${r.t.name} | ${f(r.base.p50)} / ${f(r.base.p99)} | ${f(r.attacked.p50)} / ${f(r.attacked.p99)} / ${f(r.attacked.max)} | ${r.attacked.requests} (${r.attacked.failed}) | ${r.open} / ${r.closed} | ${(r.attacked.p99 / r.base.p99).toFixed(2)}× | ${(r.attacked.p99 / nginxP99).toFixed(2)}× |`,
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await Promise.all(procs.map(stop));
    rmSync(dir, { recursive: true, force: true });
  }
}

await run();
