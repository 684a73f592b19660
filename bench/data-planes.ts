/**
 * Data planes side by side, in one run (issue 12's Speed section): with the same routing (the data-plane
 * fixture fleet: IE/FR → eu-west, DE → eu-central, US → us-east, IN → the US by `prefer`), each proxy on
 * one core (taskset CPU 0), wrk on the other (CPU 1) with 64 connections and a Lua script rotating the
 * country header over IE, DE, US and IN:
 *   (a) HAProxy configured by `meridian export haproxy` (priority-load arithmetic, residency guards,
 *       checks, observe layer7),
 *   (b) a hand-written HAProxy configuration with the same routing (a backend per row, country ACLs,
 *       the next level as `backup`, the same checks and weights) — the ≥ 95 % target,
 *   (c) Meridian's Node router (`meridian router`, compiled dist/, one worker) — the ≥ 2× expectation,
 *   (d) nginx configured by `meridian export nginx` (one worker).
 * The upstreams are one nginx (one worker, on CPU 1 with wrk) answering 100 bytes on a port per cluster.
 * Rounds alternate the proxies; medians are reported with the load average before and after.
 *
 * Then the canary weight change through HAProxy's runtime API: a client sends US requests one after the
 * other on one keep-alive connection while the us-east-1 canary goes 0 → 100 % and back (`set server …
 * weight`, src/export/haproxy-runtime.ts); per change, the time from sending the command to the first
 * response from the new version, the requests in between, and failed requests over the whole loop.
 *
 * `--callgrind N` adds the measure load cannot move: the instructions HAProxy executes per request
 * (valgrind's callgrind, instrumentation on only while N requests are sent, 8 keep-alive connections,
 * the same four countries in turn) for Meridian's configuration, the hand-written one, and Meridian's
 * with eu-west-1 drained (its rows take the priority frontend: one request in four here, IE's).
 *
 * Needs haproxy, nginx, wrk, taskset (and valgrind for --callgrind). Run:
 * `npm run bench -- data-planes [--duration 10] [--rounds 3] [--changes 20] [--callgrind 2000]`
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import os from 'node:os';
import { basename, join } from 'node:path';
import { loadAndRender } from '../src/cli/commands/render.js';
import { exportInput, writeExport, type ClusterAddresses } from '../src/export/index.js';
import { haproxyExporter, type HaproxyServer } from '../src/export/haproxy.js';
import { setCanaryWeight, setServerState } from '../src/export/haproxy-runtime.js';
import { nginxExporter } from '../src/export/nginx.js';
import { median } from './lib/measure.js';
import { cpuSeconds, freePort, stop, waitPort } from './lib/processes.js';

const ROOT = join(import.meta.dirname, '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'dataplanes');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const DURATION = arg('duration', 10);
const ROUNDS = arg('rounds', 3);
const CHANGES = arg('changes', 20);
const CALLGRIND = arg('callgrind', 0);
const CONNECTIONS = 64;

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
for (const cmd of ['haproxy', 'nginx', 'wrk', 'taskset'])
  if (!has(cmd)) {
    process.stdout.write(`data-planes: ${cmd} is not installed; skipped\n`);
    process.exit(0);
  }

const children = new Set<ChildProcess>();
/**
 * `taskset -c CPU` and, as root, `nice -n -10`: the measured processes go ahead of whatever else runs on a
 * shared machine (a build at nice 10, other engineers' tests), which otherwise moves one round's
 * requests/s by several times.
 */
const AHEAD = process.getuid?.() === 0 ? ['nice', '-n', '-10'] : [];
const pinned = (cpu: string, cmd: string, args: readonly string[]): string[] => ['-c', cpu, ...AHEAD, cmd, ...args];

function start(cpu: string, cmd: string, args: string[], cwd?: string): ChildProcess {
  const c = spawn('taskset', pinned(cpu, cmd, args), { stdio: ['ignore', 'ignore', 'pipe'], ...(cwd ? { cwd } : {}) });
  c.stderr?.on('data', (b: Buffer) => {
    const t = b.toString();
    if (!/ExperimentalWarning|--trace-warnings|NOTICE|WARNING.*backup/.test(t)) process.stderr.write(t);
  });
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** One GET; the body and status. */
function get(port: number, country: string, agent?: Agent): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', headers: { 'x-client-country': country }, ...(agent ? { agent } : {}) },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0 }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const loadavg = (): string =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

interface Wrk {
  rps: number;
  /** CPU time of the proxy's processes per request, µs: what load on the machine changes least. */
  cpuUs: number;
  requests: number;
  p99ms: number;
  errors: number;
  non2xx: number;
}

function wrk(port: number, script: string, pid: number): Wrk {
  const cpu0 = cpuSeconds(pid);
  const r = spawnSync(
    'taskset',
    pinned('1', 'wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', '-s', script, `http://127.0.0.1:${port}/`]),
    { encoding: 'utf8' },
  );
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99ms = p99 ? Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1) : NaN;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  return { rps, p99ms, errors, non2xx, requests, cpuUs: ((cpuSeconds(pid) - cpu0) * 1e6) / requests };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(os.tmpdir(), 'meridian-bench-planes-'));
  try {
    // the fleet, with the country header believed by the router (HAProxy and nginx read it as exported)
    const fleet = join(work, 'fleet');
    cpSync(FIXTURE, fleet, { recursive: true });
    const yaml = join(fleet, 'fleet.yaml');
    writeFileSync(
      yaml,
      readFileSync(yaml, 'utf8').replace('routing:\n  web:\n', 'routing:\n  web:\n    clientCountryHeader: x-client-country\n'),
    );
    const rev = loadAndRender(fleet).rendered.revision;
    const clusters = Object.keys(rev.clusters).sort();

    // upstreams: one nginx worker, a port per cluster (and one for us-east-1's canary), 100-byte bodies
    const ports: Record<string, number> = {};
    for (const c of [...clusters, 'us-east-1-canary']) ports[c] = await freePort();
    const up = join(work, 'upstreams');
    mkdirSync(join(up, 'tmp'), { recursive: true });
    writeFileSync(
      join(up, 'nginx.conf'),
      [
        'worker_processes 1;',
        'pid nginx.pid;',
        'error_log stderr error;',
        'events { worker_connections 4096; }',
        'http {',
        '  access_log off;',
        '  client_body_temp_path tmp;',
        '  proxy_temp_path tmp;',
        '  fastcgi_temp_path tmp;',
        '  uwsgi_temp_path tmp;',
        '  scgi_temp_path tmp;',
        '  keepalive_requests 1000000;',
        ...Object.entries(ports).map(
          ([c, p]) =>
            `  server { listen 127.0.0.1:${p}; location / { return 200 "${`${c}${c.endsWith('canary') ? '' : '-stable'} `.padEnd(100, 'x')}"; } }`,
        ),
        '}',
      ].join('\n'),
    );
    start('1', 'nginx', ['-p', `${up}/`, '-c', 'nginx.conf', '-g', 'daemon off;']);
    for (const p of Object.values(ports)) await waitPort(p);

    const addresses: ClusterAddresses = Object.fromEntries(
      clusters.map((c) => [
        c,
        {
          web: [
            { host: '127.0.0.1', port: ports[c] ?? 0, name: 'stable', healthPath: '/healthz', track: 'stable' as const, version: '2.4.0' },
            ...(c === 'us-east-1'
              ? [
                  {
                    host: '127.0.0.1',
                    port: ports['us-east-1-canary'] ?? 0,
                    name: 'canary',
                    healthPath: '/healthz',
                    track: 'canary' as const,
                    version: '2.5.0',
                  },
                ]
              : []),
          ],
        },
      ]),
    );
    const canary0 = { canary: { web: { 'us-east-1': { weight: 0, version: '2.5.0' } } } };

    // (a) HAProxy by Meridian
    const hpPort = await freePort();
    const hpDir = join(work, 'haproxy');
    const socket = join(hpDir, 'admin.sock');
    writeExport(
      hpDir,
      'haproxy',
      haproxyExporter.export(
        exportInput(rev, addresses, { listen: `127.0.0.1:${hpPort}`, metricsListen: null, runtimeApi: socket }, canary0),
      ),
    );
    const servers = (JSON.parse(readFileSync(join(hpDir, 'servers.json'), 'utf8')) as { servers: HaproxyServer[] }).servers;

    // (b) hand-written HAProxy, the same routing: a backend per row, the next level as backup
    const handPort = await freePort();
    const handDir = join(work, 'haproxy-hand');
    mkdirSync(handDir, { recursive: true });
    const srv = (c: string, w: number, backup = false): string =>
      `  server ${c} 127.0.0.1:${ports[c]} weight ${w} check observe layer7 error-limit 5 on-error mark-down${backup ? ' backup' : ''}`;
    writeFileSync(
      join(handDir, 'haproxy.cfg'),
      [
        'global',
        '  maxconn 4096',
        'defaults',
        '  mode http',
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        '  option http-keep-alive',
        '  default-server inter 2000 fall 3 rise 2',
        'frontend hand',
        `  bind 127.0.0.1:${handPort}`,
        '  acl eu_west req.hdr(x-client-country) -m str IE FR',
        '  acl eu_central req.hdr(x-client-country) -m str DE',
        '  use_backend web_eu_west if eu_west',
        '  use_backend web_eu_central if eu_central',
        '  default_backend web_us_east',
        'backend web_eu_west',
        '  balance roundrobin',
        '  option httpchk GET /healthz',
        srv('eu-west-1', 100),
        srv('eu-west-2', 100),
        srv('eu-central-1', 100, true),
        'backend web_eu_central',
        '  balance roundrobin',
        '  option httpchk GET /healthz',
        srv('eu-central-1', 100),
        srv('eu-west-1', 100, true),
        srv('eu-west-2', 100, true),
        'backend web_us_east',
        '  balance roundrobin',
        '  option httpchk GET /healthz',
        srv('us-east-1', 200),
        srv('us-east-2', 100),
        '',
      ].join('\n'),
    );

    // (c) the Node router, compiled, one worker
    const rtPort = await freePort();
    const eps = join(work, 'endpoints.json');
    writeFileSync(
      eps,
      JSON.stringify({ endpoints: clusters.map((c) => ({ cluster: c, service: 'web', host: '127.0.0.1', port: ports[c] })) }, null, 2),
    );

    // (d) nginx by Meridian
    const ngPort = await freePort();
    const ngDir = join(work, 'nginx');
    writeExport(ngDir, 'nginx', nginxExporter.export(exportInput(rev, addresses, { listen: `127.0.0.1:${ngPort}` })));
    mkdirSync(join(ngDir, 'tmp'), { recursive: true });

    const proxies: Record<string, { port: number; start: () => ChildProcess }> = {
      'haproxy (Meridian)': { port: hpPort, start: () => start('0', 'haproxy', ['-db', '-f', join(hpDir, 'haproxy.cfg')]) },
      'haproxy (hand-written)': { port: handPort, start: () => start('0', 'haproxy', ['-db', '-f', join(handDir, 'haproxy.cfg')]) },
      'Node router (Meridian)': {
        port: rtPort,
        start: () =>
          start('0', process.execPath, [
            join(ROOT, 'bin', 'meridian.js'),
            'router',
            '--fleet',
            fleet,
            '--endpoints',
            eps,
            '--port',
            String(rtPort),
            '--no-geoip',
            '--trusted-sources',
            '127.0.0.1',
          ]),
      },
      'nginx (Meridian)': { port: ngPort, start: () => start('0', 'nginx', ['-p', `${ngDir}/`, '-c', 'nginx.conf', '-g', 'daemon off;']) },
    };

    // every proxy routes each country to the clusters the fixture's routing gives, before it is measured
    const expect: Record<string, RegExp> = { IE: /^eu-west-/, DE: /^eu-central-1/, US: /^us-east-/, IN: /^us-east-/ };
    const lua = join(work, 'countries.lua');
    writeFileSync(
      lua,
      [
        'local countries = {"IE", "DE", "US", "IN"}',
        'local i = 0',
        'request = function()',
        '  i = i + 1',
        '  return wrk.format("GET", "/", { ["x-client-country"] = countries[(i % 4) + 1] })',
        'end',
        '',
      ].join('\n'),
    );

    const results: Record<string, Wrk[]> = {};
    const loadBefore = loadavg();
    const started = new Date().toISOString();
    for (let round = 0; round < ROUNDS; round++) {
      const order = Object.keys(proxies);
      if (round % 2 === 1) order.reverse();
      for (const name of order) {
        const p = proxies[name];
        if (!p) continue;
        const child = p.start();
        await waitPort(p.port);
        for (const [cc, re] of Object.entries(expect)) {
          const r = await get(p.port, cc);
          if (r.status !== 200 || !re.test(r.body)) throw new Error(`${name}: ${cc} answered ${r.status} ${r.body.slice(0, 40)}`);
        }
        wrk(p.port, lua, child.pid ?? -1); // warm-up (JIT, connections), not counted
        (results[name] ??= []).push(wrk(p.port, lua, child.pid ?? -1));
        await stop(child);
      }
    }
    const loadAfter = loadavg();

    const med = (name: string): number => median((results[name] ?? []).map((r) => r.rps));
    const base = med('haproxy (Meridian)');
    const cpu = (name: string): number => median((results[name] ?? []).map((r) => r.cpuUs));
    const cpuBase = cpu('haproxy (Meridian)');
    // each round runs the two HAProxy configurations one right after the other: their ratio per round is
    // the least moved by load that drifts over the run
    const paired = (of: (r: Wrk) => number): number[] =>
      (results['haproxy (Meridian)'] ?? []).map((r, i) => {
        const h = results['haproxy (hand-written)']?.[i];
        return h ? of(r) / of(h) : NaN;
      });
    const rpsPairs = paired((r) => r.rps);
    const cpuPairs = paired((r) => 1 / r.cpuUs);
    const lines = [
      `## Data planes: HAProxy by Meridian vs hand-written HAProxy, the Node router, nginx by Meridian (\`bench/data-planes.ts\`)`,
      '',
      `- command: \`npm run bench -- data-planes --duration ${DURATION} --rounds ${ROUNDS} --changes ${CHANGES}${CALLGRIND > 0 ? ` --callgrind ${CALLGRIND}` : ''}\``,
      `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${started}; load average before ${loadBefore}, after ${loadAfter}`,
      `- ${spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0]}; ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}`,
      `- each proxy on CPU 0 alone (taskset${AHEAD.length > 0 ? '; everything measured at nice −10' : ''}; HAProxy one thread, nginx one worker, the router one process); wrk (1 thread, ${CONNECTIONS} connections, ${DURATION} s after a warm-up run) and the upstream nginx on CPU 1; countries IE, DE, US, IN in turn`,
      '',
      '| proxy | requests/s per round | median | vs HAProxy by Meridian | CPU µs per request (median) | vs HAProxy by Meridian | p99 (median) | errors / non-2xx |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
      ...Object.keys(proxies).map((name) => {
        const rs = results[name] ?? [];
        return `| ${name} | ${rs.map((r) => Math.round(r.rps)).join(', ')} | ${Math.round(med(name))} | ${(med(name) / base).toFixed(2)} | ${cpu(name).toFixed(1)} | ${(cpu(name) / cpuBase).toFixed(2)} | ${median(rs.map((r) => r.p99ms)).toFixed(1)} ms | ${rs.map((r) => `${r.errors}/${r.non2xx}`).join(', ')} |`;
      }),
      '',
      `Ratios: HAProxy by Meridian / hand-written = **${(base / med('haproxy (hand-written)')).toFixed(2)}** (target ≥ 0.95); HAProxy by Meridian / Node router = **${(base / med('Node router (Meridian)')).toFixed(2)}** (expect ≥ 2); HAProxy by Meridian / nginx by Meridian = **${(base / med('nginx (Meridian)')).toFixed(2)}**. By CPU per request (the same ratios as throughput on a core of its own; less moved by other load): hand-written / Meridian's HAProxy = **${(cpu('haproxy (hand-written)') / cpuBase).toFixed(2)}**, Node router / Meridian's HAProxy = **${(cpu('Node router (Meridian)') / cpuBase).toFixed(2)}**, nginx / Meridian's HAProxy = **${(cpu('nginx (Meridian)') / cpuBase).toFixed(2)}**.`,
      '',
      `Paired, round by round (the two HAProxy configurations run back to back in every round): Meridian's requests/s ÷ hand-written's = ${rpsPairs.map((x) => x.toFixed(2)).join(', ')} — median **${median(rpsPairs).toFixed(2)}**; hand-written's CPU per request ÷ Meridian's = ${cpuPairs.map((x) => x.toFixed(2)).join(', ')} — median **${median(cpuPairs).toFixed(2)}** (target ≥ 0.95).`,
      '',
    ];

    // the canary weight change through the runtime API, reaching the next requests
    const hp = start('0', 'haproxy', ['-db', '-f', join(hpDir, 'haproxy.cfg')]);
    await waitPort(hpPort);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let failed = 0;
    let sent = 0;
    const delays: number[] = [];
    const between: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const to = i % 2 === 0 ? 100 : 0;
      const want = to === 100 ? /^us-east-1-canary/ : /^us-east-1-stable/;
      const t0 = performance.now();
      await setCanaryWeight(socket, servers, 'web', 'us-east-1', to);
      let n = 0;
      for (;;) {
        const r = await get(hpPort, 'US', agent).catch(() => ({ status: 0, body: '', ms: 0 }));
        sent++;
        n++;
        if (r.status !== 200) failed++;
        if (want.test(r.body)) break;
        if (n > 1000) throw new Error('the weight change never reached a request');
      }
      delays.push(performance.now() - t0);
      between.push(n);
    }
    agent.destroy();
    await stop(hp);
    const sorted = [...delays].sort((a, b) => a - b);
    lines.push(
      `Canary weight change through the runtime API (us-east-1 0 ↔ 100 %, ${CHANGES} changes, US requests one after the other on one keep-alive connection, ${sent} requests): from sending \`set server … weight\` to the first response of the new version — median **${median(delays).toFixed(1)} ms**, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(1)} ms (target ≤ 100 ms); requests until then: median ${median(between)}, max ${Math.max(...between)} (us-east-2 takes 1 in 3 US requests, so the first or second request after the change can be its); failed requests: **${failed}**. Load average after: ${loadavg()}.`,
      '',
    );
    if (CALLGRIND > 0) lines.push(...(await instructions(work, { hpDir, hpPort, handDir, handPort, socket, servers }, expect)));
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const c of [...children]) await stop(c);
    rmSync(work, { recursive: true, force: true });
  }
}

/** Sends `n` requests over 8 keep-alive connections, the countries in turn; returns how many were not 200. */
async function drive(port: number, n: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const countries = ['IE', 'DE', 'US', 'IN'];
  let next = 0;
  let bad = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const r = await get(port, countries[i % 4] ?? 'US', agent).catch(() => ({ status: 0 }));
      if (r.status !== 200) bad++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, () => worker()));
  agent.destroy();
  return bad;
}

/** `--callgrind N`: HAProxy's instructions per request for each configuration (see the header). */
async function instructions(
  work: string,
  o: { hpDir: string; hpPort: number; handDir: string; handPort: number; socket: string; servers: readonly HaproxyServer[] },
  expect: Record<string, RegExp>,
): Promise<string[]> {
  if (!has('valgrind') || !has('callgrind_control')) return ['(`--callgrind`: skipped, valgrind is not installed)', ''];
  const dir = join(work, 'callgrind');
  mkdirSync(dir, { recursive: true });
  const cases = [
    { name: 'haproxy (Meridian)', cfg: join(o.hpDir, 'haproxy.cfg'), port: o.hpPort, drain: false },
    { name: 'haproxy (hand-written)', cfg: join(o.handDir, 'haproxy.cfg'), port: o.handPort, drain: false },
    { name: 'haproxy (Meridian), eu-west-1 drained', cfg: join(o.hpDir, 'haproxy.cfg'), port: o.hpPort, drain: true },
  ];
  const per: Record<string, number> = {};
  for (const c of cases) {
    const out = join(dir, 'callgrind.out');
    const proc = start('0', 'valgrind', [
      '-q',
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${out}`,
      'haproxy',
      '-db',
      '-f',
      c.cfg,
    ]);
    await waitPort(c.port, 60_000);
    // a drain puts the cluster's servers in maintenance, as `meridian up --data-plane haproxy` does
    if (c.drain)
      for (const x of o.servers.filter((x) => x.cluster === 'eu-west-1')) await setServerState(o.socket, x.backend, x.server, 'maint');
    for (const [cc, re] of Object.entries(expect)) {
      const r = await get(c.port, cc);
      if (r.status !== 200 || (!c.drain && !re.test(r.body)))
        throw new Error(`${c.name}: ${cc} answered ${r.status} ${r.body.slice(0, 40)}`);
    }
    const warm = await drive(c.port, 500);
    const pid = String(proc.pid);
    spawnSync('callgrind_control', ['--instr=on', pid]);
    spawnSync('callgrind_control', ['-z', pid]);
    const bad = await drive(c.port, CALLGRIND);
    spawnSync('callgrind_control', ['-d', pid]);
    await stop(proc);
    if (warm + bad > 0) throw new Error(`${c.name}: ${warm + bad} requests failed`);
    const dumps = readdirSync(dir)
      .filter((f) => f.startsWith(basename(out)) && f !== basename(out))
      .sort();
    const last = dumps[dumps.length - 1];
    if (last === undefined) throw new Error(`${c.name}: no callgrind dump`);
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, last), 'utf8'))?.[1] ?? NaN);
    per[c.name] = total / CALLGRIND;
    for (const f of readdirSync(dir)) rmSync(join(dir, f));
    process.stderr.write(`${c.name}: ${Math.round(total / CALLGRIND)} instructions/request\n`);
  }
  const base = per['haproxy (Meridian)'] ?? NaN;
  return [
    `Instructions per request (\`--callgrind ${CALLGRIND}\`: valgrind's callgrind on HAProxy, instrumentation on only for ${CALLGRIND} requests over 8 keep-alive connections, IE, DE, US, IN in turn; what load on the machine cannot move):`,
    '',
    '| configuration | instructions per request | hand-written / this |',
    '| --- | ---: | ---: |',
    ...cases.map(
      (c) =>
        `| ${c.name} | ${Math.round(per[c.name] ?? NaN)} | ${((per['haproxy (hand-written)'] ?? NaN) / (per[c.name] ?? NaN)).toFixed(2)} |`,
    ),
    '',
    `HAProxy by Meridian / hand-written by instructions: **${((per['haproxy (hand-written)'] ?? NaN) / base).toFixed(2)}** (the throughput ratio if instructions were all; the kernel's share of a request, the same for both, is not in it).`,
    '',
  ];
}

await main();
