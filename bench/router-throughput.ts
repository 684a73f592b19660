/**
 * How fast is the Meridian router next to its peers, in one run, side by side?
 *
 * Two upstreams (one nginx with one worker serving a 100-byte body on two ports), weights 3:1, and in
 * turn on one core (taskset) as the proxy under test:
 * (a) nginx (one worker) as a reverse proxy with upstream keep-alive,
 * (b) a bare undici reverse proxy in Node (bench/lib/bare-undici-proxy.mjs),
 * (c) the Meridian router with every feature on: residency lock, GeoIP from X-Forwarded-For, sticky
 *     cookie per user, canary weight, retries with a per-try timeout (the router's own timer per
 *     attempt), active health checks, outlier detection, metrics,
 *     traceparent generation, x-meridian-* response headers. It runs compiled (src/ built with tsc
 *     into bench/out/router-dist), as `meridian router` runs from dist/ — not under tsx, whose
 *     transform costs the request path several per cent. Before each measurement `checkFeatures`
 *     sees every one of those features work from outside, or the benchmark stops.
 * wrk (on the other core, with the upstream nginx) drives each with 64 connections; each request carries
 * a user cookie from a pool of 1,000 (a wrk Lua script), the same for all three. Rounds alternate the
 * proxies; medians are reported. Then the router with 1 and with 2 workers (node:cluster), unpinned.
 *
 * Needs `nginx` and `wrk` (Debian packages); prints a note and exits 0 without them.
 * Run: `npx tsx bench/router-throughput.ts [--duration 10] [--rounds 3] [--json]`
 *
 * On a shared VM one proxy's requests/s move by ±30 % from one run to the next. Two measures that
 * such swings do not reach:
 * - `--together`: the bare proxy and the router run at the same time on CPU 0, each in its own CPU
 *   control group of equal weight and loaded by its own wrk, so whatever slows the machine slows both in
 *   the same seconds; the ratio of their requests/s is reported per round.
 * - `--callgrind N`: the instructions each Node proxy (bare undici, Meridian) executes per request, under
 *   valgrind's callgrind, over N requests (after `--warm` requests), sent by an undici client in this
 *   process with the same headers as wrk's; rounds alternate. Reported in total and without V8's
 *   optimising compiler and major GC, which fall at random into a window (needs `valgrind`). User space
 *   only: the kernel's share (the socket writes and reads) is not counted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { buildLibrary } from './lib/build.js';
import { median } from './lib/measure.js';
import { cpuSeconds, freePort, stop, waitPort } from './lib/processes.js';

const ROOT = join(import.meta.dirname, '..');
/** The router runs compiled, as `meridian router` does (not under tsx). */
const LIB = join(ROOT, 'bench', 'out', 'router-dist');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const DURATION = arg('duration', 10);
const ROUNDS = arg('rounds', 3);
const JSON_OUT = process.argv.includes('--json');
const strArg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
/** `--peers undici,meridian`: measure only these (default all three). */
const PEERS = (strArg('peers') ?? 'nginx,undici,meridian').split(',') as Peer[];
/** `--no-workers`: skip the 1-vs-2-workers part. */
const WORKERS = !process.argv.includes('--no-workers');
/** `--cpu-prof DIR`: the Node proxies write V8 CPU profiles there (slower; for finding where time goes). */
const CPU_PROF = strArg('cpu-prof');
/** `--together`: the bare proxy and the router loaded at the same time on one core (see above). */
const TOGETHER = process.argv.includes('--together');
/** `--callgrind N`: count instructions per request over N requests instead of timing (see above). */
const CALLGRIND = arg('callgrind', 0);
const WARM = arg('warm', 10_000);
const CONNECTIONS = 64;
const BODY = 'x'.repeat(100);

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
const TASKSET = has('taskset') && os.cpus().length >= 2;
const NGINX = ['/usr/sbin/nginx', 'nginx'].find((c) => spawnSync(c, ['-v']).status === 0);

function pinned(cpu: string, cmd: string, args: string[]): [string, string[]] {
  return TASKSET ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args];
}

const children = new Set<ChildProcess>();
function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  c.stderr?.on('data', (b: Buffer) => {
    const t = b.toString();
    if (!/ExperimentalWarning|--trace-warnings/.test(t)) process.stderr.write(t);
  });
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
}
process.on('exit', cleanup);

interface WrkResult {
  rps: number;
  p99ms: number;
  errors: number;
  non2xx: number;
  requests: number;
  /** CPU time of the proxy's processes per request, µs (utime + stime from /proc; NaN where unknown). */
  cpuUs: number;
}

function parseLatency(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : n;
}

async function wrk(port: number, seconds: number, script: string, proxyPid = -1): Promise<WrkResult> {
  const cpu0 = proxyPid > 0 ? cpuSeconds(proxyPid) : Number.NaN;
  const [cmd, args] = pinned('1', 'wrk', [
    '-t1',
    `-c${CONNECTIONS}`,
    `-d${seconds}s`,
    '--latency',
    '-s',
    script,
    `http://127.0.0.1:${port}/`,
  ]);
  const out = await new Promise<string>((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    c.stdout.on('data', (b: Buffer) => (s += b.toString()));
    c.on('exit', () => resolve(s));
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const cpu = proxyPid > 0 ? cpuSeconds(proxyPid) - cpu0 : Number.NaN;
  return {
    requests,
    cpuUs: (cpu / requests) * 1e6,
    rps,
    p99ms: p99 ? parseLatency(p99[1] as string, p99[2] as string) : NaN,
    errors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx,
  };
}

function fleetYaml(): string {
  const digest = `sha256:${'a'.repeat(64)}`;
  return `apiVersion: meridian/v1
fleet: bench
regions:
  eu-west: { jurisdiction: EU, location: { lat: 53.35, lon: -6.26 }, countries: [IE, GB] }
  us-east: { jurisdiction: US, location: { lat: 38.9, lon: -77.04 }, countries: [US] }
clusters:
  eu-west-1: { region: eu-west, driver: local, capacity: { rps: 1000000 }, weight: 3 }
  eu-west-2: { region: eu-west, driver: local, capacity: { rps: 1000000 }, weight: 1 }
  us-east-1: { region: us-east, driver: local, capacity: { rps: 1000000 } }
services:
  web:
    image: example.test/web:1.0.0@${digest}
    version: 1.0.0
    port: 8080
    health: { path: /healthz }
routing:
  web:
    residency:
      EU: { allow: [EU], mode: lock }
      default: { allow: [US, EU], mode: prefer }
    clientCountryHeader: x-client-country
    healthCheck: { path: /healthz, interval: 2s, timeout: 1s, unhealthyThreshold: 3, healthyThreshold: 2 }
    outlierDetection: { consecutive5xx: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50 }
    stickiness: { cookie: mrd_uid }
    retries: { attempts: 1, budget: 20%, perTryTimeout: 5s }
    timeout: 15s
`;
}

const LUA = `
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", { ["Host"] = "shop.example", ["Cookie"] = "mrd_uid=user-" .. (n % 1000), ["X-Forwarded-For"] = "81.2.69.160" })
end
`;

function nginxUpstreamConf(dir: string, p1: number, p2: number): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/up.pid;
error_log ${dir}/up-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:${p1}; location / { return 200 "${BODY}"; } location /echo { return 200 "$http_traceparent|$http_x_forwarded_for"; } }
  server { listen 127.0.0.1:${p2}; location / { return 200 "${BODY}"; } location /echo { return 200 "$http_traceparent|$http_x_forwarded_for"; } }
}
`;
}

function nginxProxyConf(dir: string, port: number, p1: number, p2: number): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/proxy.pid;
error_log ${dir}/proxy-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  upstream app { server 127.0.0.1:${p1} weight=3; server 127.0.0.1:${p2} weight=1; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
}

type Peer = 'nginx' | 'undici' | 'meridian';

const profArgs = (peer: Peer): string[] => (CPU_PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(CPU_PROF, peer)]);

/** The node command under callgrind, instrumentation off until `callgrind_control --instr=on`. */
function callgrindWrap(dir: string, nodeArgs: string[]): [string, string[]] {
  const out = join(dir, 'callgrind.%p');
  return [
    'valgrind',
    [
      '-q',
      '--tool=callgrind',
      '--smc-check=all-non-file',
      '--instr-atstart=no',
      `--callgrind-out-file=${out}`,
      process.execPath,
      ...nodeArgs,
    ],
  ];
}

/** Sends `n` requests like wrk's script, `concurrency` at a time, over keep-alive connections; returns the non-2xx count. */
async function drive(port: number, n: number, concurrency = 16): Promise<number> {
  const { Pool } = await import('undici');
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency });
  let next = 0;
  let bad = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const r = await pool.request({
        path: '/',
        method: 'GET',
        headers: { host: 'shop.example', cookie: `mrd_uid=user-${i % 1000}`, 'x-forwarded-for': '81.2.69.160' },
      });
      if (r.statusCode !== 200) bad++;
      await r.body.dump();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  await pool.close();
  return bad;
}

interface InstructionCount {
  /** Instructions per request, all threads. */
  total: number;
  /** Of which V8's optimising compilers and major (mark-compact) GC: they land at random in a window. */
  compiler: number;
  majorGc: number;
}

/** Instructions per request in a callgrind dump, split as {@link InstructionCount}. */
function readCallgrind(file: string, n: number): InstructionCount {
  const out = spawnSync('callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
  let total = 0;
  let compiler = 0;
  let majorGc = 0;
  for (const line of out.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = Number((m[1] as string).replaceAll(',', ''));
    const what = m[2] as string;
    if (what.includes('PROGRAM TOTALS')) total = v;
    else if (/compiler::|[Mm]aglev|[Tt]urboshaft|OptimizedCompilationJob|Compiler::|Pipeline/.test(what)) compiler += v;
    else if (/MarkCompact|ConcurrentMarking|MarkingVisitor|Sweeper|MarkingWorklist|IncrementalMarking|MarkingBarrier/.test(what))
      majorGc += v;
  }
  return { total: total / n, compiler: compiler / n, majorGc: majorGc / n };
}

async function instructionRounds(dir: string, launch: (peer: Peer) => Promise<{ proc: ChildProcess; port: number }>): Promise<void> {
  if (!has('valgrind') || !has('callgrind_control') || !has('callgrind_annotate')) {
    console.log('> router-throughput --callgrind: skipped (needs valgrind: `apt-get install -y valgrind`)');
    return;
  }
  const peers: Peer[] = (['undici', 'meridian'] as const).filter((p) => PEERS.includes(p));
  const counts: Record<string, InstructionCount[]> = { undici: [], meridian: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const peer of round % 2 === 0 ? peers : [...peers].reverse()) {
      const { proc, port } = await launch(peer);
      const pid = String(proc.pid);
      const bad = await drive(port, WARM);
      spawnSync('callgrind_control', ['--instr=on', pid]);
      spawnSync('callgrind_control', ['-z', pid]);
      const badMeasured = await drive(port, CALLGRIND);
      spawnSync('callgrind_control', ['-d', pid]);
      const dumped = (): boolean => readdirSync(dir).some((f) => f.startsWith(`callgrind.${pid}.`));
      for (let i = 0; i < 100 && !dumped(); i++) await new Promise((r) => setTimeout(r, 100));
      await stop(proc);
      if (bad + badMeasured > 0) throw new Error(`${peer}: ${bad + badMeasured} requests failed`);
      const dumps = readdirSync(dir)
        .filter((f) => f.startsWith(`callgrind.${pid}.`))
        .sort();
      const last = dumps[dumps.length - 1];
      if (last === undefined) throw new Error(`${peer}: no callgrind dump`);
      const c = readCallgrind(join(dir, last), CALLGRIND);
      (counts[peer] as InstructionCount[]).push(c);
      for (const f of readdirSync(dir)) if (f.startsWith(`callgrind.${pid}`)) rmSync(join(dir, f));
      if (!JSON_OUT) process.stderr.write(`round ${round + 1} ${peer}: ${Math.round(c.total)} instructions/request\n`);
    }
  }
  const steady = (c: InstructionCount): number => c.total - c.compiler - c.majorGc;
  const u = counts.undici ?? [];
  const m = counts.meridian ?? [];
  const ratio = {
    total: median(u.map((c) => c.total)) / median(m.map((c) => c.total)),
    steady: median(u.map(steady)) / median(m.map(steady)),
  };
  if (JSON_OUT) {
    console.log(JSON.stringify({ requests: CALLGRIND, warm: WARM, rounds: ROUNDS, counts, ratio }, null, 2));
    return;
  }
  const k = (x: number): string => `${(x / 1000).toFixed(1)}k`;
  console.log('### Instructions per request (bench/router-throughput.ts --callgrind)\n');
  console.log(`${CALLGRIND} requests after ${WARM} of warm-up, 16 at a time; ${ROUNDS} rounds in alternating order; medians.\n`);
  console.log('| proxy | instructions / request | without compiler and major GC | runs (without) |');
  console.log('| --- | ---: | ---: | --- |');
  for (const [name, cs] of [
    ['bare undici (Node)', u],
    ['Meridian router, every feature on', m],
  ] as const) {
    console.log(
      `| ${name} | ${k(median(cs.map((c) => c.total)))} | ${k(median(cs.map(steady)))} | ${cs.map((c) => k(steady(c))).join(', ')} |`,
    );
  }
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  console.log(
    `\n- router / bare undici (throughput goes as 1 / work per request): ${pct(ratio.total)} in total, ${pct(ratio.steady)} without compiler and major GC`,
  );
}

/**
 * Before a router is measured: its features are on and work, seen from outside — GeoIP from
 * X-Forwarded-For with residency (a GB client served in the EU, a US client in the US), the
 * `x-meridian-*` headers, a sticky cookie set when absent and kept when sent, the canary weight
 * (both versions served), a generated `traceparent` and X-Forwarded-For reaching the upstream,
 * metrics by decision reason and active health checks. Throws on the first that is not.
 */
async function checkFeatures(port: number): Promise<void> {
  const { request } = await import('undici');
  const base = `http://127.0.0.1:${port}`;
  const get = async (
    path: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, unknown>; body: string }> => {
    const r = await request(base + path, { headers: { host: 'shop.example', ...headers } });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };
  const fail = (what: string, got: unknown): never => {
    throw new Error(`the router under test does not have every feature on: ${what} (got ${JSON.stringify(got)})`);
  };
  const gb = await get('/echo', { cookie: 'mrd_uid=user-1', 'x-forwarded-for': '81.2.69.160' });
  if (gb.status !== 200 || gb.headers['x-meridian-region'] !== 'eu-west') fail('a GB client (GeoIP) is served in eu-west', gb.headers);
  if (typeof gb.headers['x-meridian-cluster'] !== 'string' || typeof gb.headers['x-meridian-version'] !== 'string')
    fail('x-meridian-cluster and x-meridian-version on the response', gb.headers);
  const [traceparent, xff] = gb.body.split('|');
  if (!/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/.test(traceparent ?? '')) fail('a generated traceparent reaches the upstream', gb.body);
  if (xff !== '81.2.69.160, 127.0.0.1') fail('X-Forwarded-For with the sender appended reaches the upstream', gb.body);
  const us = await get('/', { cookie: 'mrd_uid=user-1', 'x-forwarded-for': '8.8.8.8' });
  if (us.headers['x-meridian-region'] !== 'us-east') fail('a US client (GeoIP) is served in us-east', us.headers);
  const fresh = await get('/', { 'x-forwarded-for': '81.2.69.160' });
  if (!/^mrd_uid=[^;]+;/.test(String(fresh.headers['set-cookie'] ?? ''))) fail('a sticky cookie is set for a new user', fresh.headers);
  const versions = new Set<unknown>();
  for (let i = 0; i < 300; i++) {
    const r = await get('/', { cookie: `mrd_uid=check-${i}`, 'x-forwarded-for': '81.2.69.160' });
    const again = await get('/', { cookie: `mrd_uid=check-${i}`, 'x-forwarded-for': '81.2.69.160' });
    if (
      r.headers['x-meridian-cluster'] === 'eu-west-1' &&
      again.headers['x-meridian-cluster'] === 'eu-west-1' &&
      r.headers['x-meridian-version'] !== again.headers['x-meridian-version']
    )
      fail('a user keeps their version (sticky canary bucket)', [r.headers, again.headers]);
    versions.add(r.headers['x-meridian-version']);
  }
  if (!versions.has('1.0.0') || !versions.has('1.1.0'))
    fail('the canary (10 % in eu-west-1) and the stable version both serve', [...versions]);
  const metrics = (await get('/_meridian/metrics', {})).body;
  for (const m of [
    /meridian_router_requests_total\{[^}]*reason="sticky"/,
    /meridian_router_sticky_assignments_total/,
    /meridian_router_request_duration_seconds_bucket/,
  ])
    if (!m.test(metrics)) fail(`metrics show ${m.source}`, metrics.slice(0, 400));
  const route = JSON.parse((await get('/_meridian/debug/route?country=GB&user=u1', {})).body) as {
    residency?: { rule?: { mode?: string } };
    endpoints?: Record<string, { state: string }[]>;
  };
  if (route.residency?.rule?.mode !== 'lock') fail('residency lock for a GB (EU) client in /debug/route', route.residency);
  const states = Object.values(route.endpoints ?? {}).flatMap((es) => es.map((e) => e.state));
  if (states.length !== 4 || states.some((st) => st !== 'healthy')) fail('every endpoint healthy by active health checks', states);
}

/**
 * A CPU control group (cgroup v1 `cpu` or v2) of default weight for one proxy, so that two proxies on
 * one core get equal shares however many threads each runs (V8's GC and compiler threads would
 * otherwise win their process extra time). Returns a function that moves a process into it and one
 * that removes it; null where there are no writable cgroups (then the scheduler shares per thread).
 */
function cpuGroup(name: string): { join(pid: number): void; remove(): void } | null {
  for (const base of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup']) {
    const path = join(base, name);
    try {
      if (!existsSync(join(base, 'cgroup.procs'))) continue;
      if (base === '/sys/fs/cgroup' && !readFileSync(join(base, 'cgroup.subtree_control'), 'utf8').includes('cpu')) continue;
      mkdirSync(path, { recursive: true });
      return {
        join: (pid) => writeFileSync(join(path, 'cgroup.procs'), String(pid)),
        remove: () => {
          try {
            rmdirSync(path);
          } catch {
            // still has a process (it is being killed): left for the system
          }
        },
      };
    } catch {
      // not writable here: try the next layout
    }
  }
  return null;
}

/** `--together`: rounds of the bare proxy and the router loaded at the same time on one core (see TOGETHER). */
async function togetherRounds(dir: string, launch: (peer: Peer) => Promise<{ proc: ChildProcess; port: number }>): Promise<void> {
  const script = join(dir, 'req.lua');
  const groups = { undici: cpuGroup(`meridian-bench-undici-${process.pid}`), meridian: cpuGroup(`meridian-bench-router-${process.pid}`) };
  const fair = groups.undici !== null && groups.meridian !== null;
  const rounds: { undici: WrkResult; meridian: WrkResult; busy: number }[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const u = await launch('undici');
      const m = await launch('meridian');
      if (fair) {
        groups.undici?.join(u.proc.pid as number);
        groups.meridian?.join(m.proc.pid as number);
      }
      await Promise.all([wrk(u.port, 3, script), wrk(m.port, 3, script)]); // warm-up (JIT, connections)
      const [ru, rm] = await Promise.all([wrk(u.port, DURATION, script, u.proc.pid), wrk(m.port, DURATION, script, m.proc.pid)]);
      await Promise.all([stop(u.proc), stop(m.proc)]);
      // how much of CPU 0 the two proxies used: near 1 when both were saturated, as the ratio assumes
      const busy = (ru.cpuUs * ru.requests + rm.cpuUs * rm.requests) / 1e6 / DURATION;
      rounds.push({ undici: ru, meridian: rm, busy });
      if (!JSON_OUT)
        process.stderr.write(
          `round ${round + 1}: bare ${ru.rps.toFixed(0)} req/s, router ${rm.rps.toFixed(0)} req/s, router / bare ${((rm.rps / ru.rps) * 100).toFixed(1)} %, CPU 0 busy ${busy.toFixed(2)}\n`,
        );
    }
  } finally {
    groups.undici?.remove();
    groups.meridian?.remove();
  }
  const ratios = rounds.map((r) => r.meridian.rps / r.undici.rps);
  const cpuRatios = rounds.map((r) => r.undici.cpuUs / r.meridian.cpuUs);
  const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${os.platform()} ${os.arch()}`;
  const errors = rounds.reduce((a, r) => a + r.undici.errors + r.undici.non2xx + r.meridian.errors + r.meridian.non2xx, 0);
  if (JSON_OUT) {
    console.log(JSON.stringify({ machine, duration: DURATION, rounds, fair, ratios, cpuRatios, errors }, null, 2));
    return;
  }
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  console.log('### Router and bare undici proxy at the same time on one core (bench/router-throughput.ts --together)\n');
  console.log(
    `machine: ${machine}; both proxies pinned to CPU 0 ${fair ? 'in two CPU control groups of equal weight' : '(no writable cgroups: the scheduler shares per thread)'}, each loaded by its own wrk -t1 -c${CONNECTIONS} on CPU 1 with the upstream nginx; ${DURATION} s after 3 s of warm-up, per round.\n`,
  );
  console.log('| round | bare undici req/s | router req/s | router / bare | CPU/request bare vs router | CPU 0 busy |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  rounds.forEach((r, i) =>
    console.log(
      `| ${i + 1} | ${r.undici.rps.toFixed(0)} | ${r.meridian.rps.toFixed(0)} | ${pct(r.meridian.rps / r.undici.rps)} | ${r.undici.cpuUs.toFixed(1)} vs ${r.meridian.cpuUs.toFixed(1)} µs | ${r.busy.toFixed(2)} |`,
    ),
  );
  console.log(
    `\n- router / bare undici: **${pct(median(ratios))}** median of ${rounds.length} rounds (${pct(Math.min(...ratios))}–${pct(Math.max(...ratios))}); from CPU per request ${pct(median(cpuRatios))}; target ≥ 95 %; errors + non-2xx: ${errors}`,
  );
}

async function main(): Promise<void> {
  if (!NGINX || !has('wrk')) {
    console.log('> router-throughput: skipped (needs the Debian packages nginx and wrk: `apt-get install -y nginx wrk`)');
    return;
  }
  const build = buildLibrary(ROOT, LIB);
  if (!build.ok) throw new Error(`could not compile src/ for the benchmark: ${build.message}`);
  const dir = mkdtempSync(join(os.tmpdir(), 'meridian-router-bench-'));
  try {
    const [p1, p2] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'up.conf'), nginxUpstreamConf(dir, p1, p2));
    writeFileSync(join(dir, 'fleet.yaml'), fleetYaml());
    writeFileSync(
      join(dir, 'endpoints.json'),
      JSON.stringify({
        endpoints: [
          { cluster: 'eu-west-1', service: 'web', port: p1 },
          { cluster: 'eu-west-2', service: 'web', port: p2 },
          { cluster: 'us-east-1', service: 'web', port: p2 },
          { cluster: 'eu-west-1', service: 'web', track: 'canary', version: '1.1.0', port: p1 },
        ],
        canary: { web: { 'eu-west-1': { weight: 10, version: '1.1.0' } } },
      }),
    );
    writeFileSync(join(dir, 'req.lua'), LUA);
    const upstream = start(...pinned('1', NGINX, ['-c', join(dir, 'up.conf'), '-p', dir]));
    await Promise.all([waitPort(p1), waitPort(p2)]);

    const launch = async (peer: Peer, workers = 1, cpu: string | null = '0'): Promise<{ proc: ChildProcess; port: number }> => {
      const port = await freePort();
      let proc: ChildProcess;
      if (peer === 'nginx') {
        writeFileSync(join(dir, 'proxy.conf'), nginxProxyConf(dir, port, p1, p2));
        const [c, a] = cpu
          ? pinned(cpu, NGINX, ['-c', join(dir, 'proxy.conf'), '-p', dir])
          : [NGINX, ['-c', join(dir, 'proxy.conf'), '-p', dir]];
        proc = start(c, a);
      } else if (peer === 'undici') {
        const args = [
          ...profArgs('undici'),
          join(ROOT, 'bench', 'lib', 'bare-undici-proxy.mjs'),
          String(port),
          `127.0.0.1:${p1}:3`,
          `127.0.0.1:${p2}:1`,
        ];
        const [c, a] = CALLGRIND > 0 ? callgrindWrap(dir, args) : cpu ? pinned(cpu, process.execPath, args) : [process.execPath, args];
        proc = start(c, a);
      } else {
        // the load generator stands for a trusted edge proxy, and the feature check reads /_meridian/* (docs/router.md)
        const trust = ['127.0.0.0/8'];
        const config = {
          fleet: dir,
          endpoints: join(dir, 'endpoints.json'),
          port,
          host: '127.0.0.1',
          workers,
          trustedSources: trust,
          adminSources: trust,
        };
        const args = [...profArgs('meridian'), join(LIB, 'router', 'worker-main.js')];
        const [c, a] = CALLGRIND > 0 ? callgrindWrap(dir, args) : cpu ? pinned(cpu, process.execPath, args) : [process.execPath, args];
        proc = start(c, a, { MERIDIAN_ROUTER_CONFIG: JSON.stringify(config) });
      }
      await waitPort(port, CALLGRIND > 0 ? 300_000 : 15_000);
      if (peer === 'meridian') await checkFeatures(port);
      return { proc, port };
    };

    if (CALLGRIND > 0) {
      await instructionRounds(dir, (peer) => launch(peer));
      await stop(upstream);
      return;
    }
    if (TOGETHER) {
      await togetherRounds(dir, (peer) => launch(peer));
      await stop(upstream);
      return;
    }

    const results: Record<Peer, WrkResult[]> = { nginx: [], undici: [], meridian: [] };
    const peers: Peer[] = (['nginx', 'undici', 'meridian'] as const).filter((p) => PEERS.includes(p));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? peers : [...peers].reverse();
      for (const peer of order) {
        const { proc, port } = await launch(peer);
        await wrk(port, 3, join(dir, 'req.lua')); // warm-up (JIT, connections)
        results[peer].push(await wrk(port, DURATION, join(dir, 'req.lua'), proc.pid));
        await stop(proc);
      }
    }
    const workers: Record<string, WrkResult[]> = { '1': [], '2': [] };
    for (let round = 0; round < (WORKERS ? ROUNDS : 0); round++) {
      for (const n of round % 2 === 0 ? [1, 2] : [2, 1]) {
        const { proc, port } = await launch('meridian', n, null);
        await wrk(port, 3, join(dir, 'req.lua'));
        (workers[String(n)] as WrkResult[]).push(await wrk(port, DURATION, join(dir, 'req.lua'), proc.pid));
        await stop(proc);
      }
    }
    await stop(upstream);

    const med = (rs: WrkResult[], k: 'rps' | 'p99ms' | 'cpuUs'): number => median(rs.map((r) => r[k]));
    const row = (name: string, rs: WrkResult[]): string =>
      `| ${name} | ${med(rs, 'rps').toFixed(0)} | ${med(rs, 'p99ms').toFixed(2)} ms | ${med(rs, 'cpuUs').toFixed(1)} µs | ${rs.map((r) => r.rps.toFixed(0)).join(', ')} | ${rs.reduce((a, r) => a + r.errors + r.non2xx, 0)} |`;
    /** Median over rounds of a/b within the same round (the two ran back to back under the same load). */
    const paired = (a: WrkResult[], b: WrkResult[], k: 'rps' | 'cpuUs'): number => median(a.map((x, i) => x[k] / (b[i]?.[k] ?? NaN)));
    const m = med(results.meridian, 'rps');
    const u = med(results.undici, 'rps');
    const n = med(results.nginx, 'rps');
    const ratios = {
      routerUndici: m / u,
      routerNginx: m / n,
      routerUndiciPaired: paired(results.meridian, results.undici, 'rps'),
      routerNginxPaired: paired(results.meridian, results.nginx, 'rps'),
      // throughput at saturation goes as 1 / CPU per request: a ratio that other load on the machine disturbs less
      routerUndiciCpu: med(results.undici, 'cpuUs') / med(results.meridian, 'cpuUs'),
      routerNginxCpu: med(results.nginx, 'cpuUs') / med(results.meridian, 'cpuUs'),
      workers2to1: med(workers['2'] ?? [], 'rps') / med(workers['1'] ?? [], 'rps'),
      workers2to1Paired: paired(workers['2'] ?? [], workers['1'] ?? [], 'rps'),
    };
    const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${os.platform()} ${os.arch()}`;
    if (JSON_OUT) {
      console.log(JSON.stringify({ machine, duration: DURATION, rounds: ROUNDS, results, workers, ratios }, null, 2));
      return;
    }
    const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
    console.log('### Router throughput (bench/router-throughput.ts)\n');
    console.log(
      `machine: ${machine}; proxy pinned to CPU 0 ${TASKSET ? '(taskset)' : '(not pinned: no taskset)'}, wrk and the upstream nginx on CPU 1;`,
    );
    console.log(
      `wrk -t1 -c${CONNECTIONS} -d${DURATION}s (after 3 s of warm-up), ${ROUNDS} rounds in alternating order, medians; 100-byte body, weights 3:1;`,
    );
    console.log("CPU per request = the proxy processes' utime + stime over the run / requests.\n");
    console.log('| proxy | req/s | p99 | CPU per request | runs (req/s) | errors + non-2xx |');
    console.log('| --- | ---: | ---: | ---: | --- | ---: |');
    // only what was measured (`--peers`, `--no-workers` leave parts out)
    if (PEERS.includes('nginx')) console.log(row('nginx 1 worker', results.nginx));
    if (PEERS.includes('undici')) console.log(row('bare undici (Node)', results.undici));
    if (PEERS.includes('meridian')) console.log(row('Meridian router, every feature on', results.meridian));
    console.log('');
    if (!PEERS.includes('meridian') || PEERS.length < 2) return;
    console.log('| ratio | medians of req/s | per-round pairs (median) | from CPU per request | target |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    if (PEERS.includes('undici'))
      console.log(
        `| router / bare undici | ${pct(ratios.routerUndici)} | ${pct(ratios.routerUndiciPaired)} | ${pct(ratios.routerUndiciCpu)} | ≥ 95 % |`,
      );
    if (PEERS.includes('nginx'))
      console.log(
        `| router / nginx | ${pct(ratios.routerNginx)} | ${pct(ratios.routerNginxPaired)} | ${pct(ratios.routerNginxCpu)} | ≥ 25 % |`,
      );
    console.log('');
    if (!WORKERS) return;
    console.log('| router workers (unpinned, sharing 2 cores with wrk and the upstream) | req/s | p99 | runs |');
    console.log('| --- | ---: | ---: | --- |');
    for (const k of ['1', '2']) {
      const rs = workers[k] ?? [];
      console.log(
        `| ${k} | ${med(rs, 'rps').toFixed(0)} | ${med(rs, 'p99ms').toFixed(2)} ms | ${rs.map((r) => r.rps.toFixed(0)).join(', ')} |`,
      );
    }
    console.log(
      `\n- 2 workers / 1 worker: **${ratios.workers2to1.toFixed(2)}×** (per-round pairs: ${ratios.workers2to1Paired.toFixed(2)}×)`,
    );
  } finally {
    // SIGTERM first (then SIGKILL): an nginx master killed outright leaves its workers running
    await Promise.all([...children].map((c) => stop(c)));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
