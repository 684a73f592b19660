/**
 * `meridian router` as a process: the example fleet over a static endpoints file, in one process and with
 * two workers; SIGHUP reloads the file; SIGTERM stops it; bad input exits 2 with a clear message. And two
 * workers following a real `meridian serve` (over a real `meridian up` fleet; these start bin/meridian.js,
 * so they need a fresh build): table changes reach both, a killed worker comes back with the current
 * table, and the workers keep serving when the server stops.
 */
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeAgents, get, startUpstream, until, type Upstream, TRUST_LOOPBACK_FLAGS } from './support/router-kit.js';
import { BIN, spawnNode, type NodeProcess } from './support/cli-kit.js';
import { api } from './support/server-kit.js';

const ROOT = join(import.meta.dirname, '..');
const SHOP = join(ROOT, 'examples', 'shop');
const SHOP_CLUSTERS = ['eu-west-1', 'eu-west-2', 'eu-central-1', 'us-east-1', 'us-east-2', 'us-west-1', 'ap-south-1', 'ap-northeast-1'];

/** Runs the command as `meridian router …` would, with the command registered on a fresh program. */
const RUNNER = `
import { Command } from 'commander';
import { registerRouter } from './src/cli/commands/router.ts';
import { processIo } from './src/cli/io.ts';
const program = new Command('meridian').exitOverride();
const result = { code: 0 };
registerRouter(program, processIo(), result);
try {
  await program.parseAsync(process.argv.slice(1), { from: 'user' });
  process.exit(result.code);
} catch (err) {
  process.stderr.write(\`error \${err.code ?? ''}: \${err.message}\\n\`);
  process.exit(2);
}
`;

const procs: ChildProcess[] = [];
const upstreams: Upstream[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await Promise.all(upstreams.splice(0).map((u) => u.kill()));
});
afterAll(() => closeAgents());

function meridianRouter(args: string[]): NodeProcess {
  const p = spawnNode(['--import', 'tsx', '--input-type=module', '-e', RUNNER, ...args], { cwd: ROOT });
  procs.push(p.proc);
  return p;
}

async function endpointsFile(drained: string[] = []): Promise<{ file: string; write: (drained: string[]) => void }> {
  const web = await startUpstream('any', '2.4.0');
  const api = await startUpstream('any', '1.6.2');
  upstreams.push(web, api);
  const file = join(mkdtempSync(join(tmpdir(), 'meridian-router-cli-')), 'endpoints.json');
  const write = (d: string[]): void =>
    writeFileSync(
      file,
      JSON.stringify({
        endpoints: SHOP_CLUSTERS.flatMap((cluster) => [
          { cluster, service: 'web', port: web.port },
          { cluster, service: 'api', port: api.port },
        ]),
        drained: d,
      }),
    );
  write(drained);
  return { file, write };
}

describe('meridian router', () => {
  it('routes the example fleet from an endpoints file, reloads it on SIGHUP and stops on SIGTERM', async () => {
    const { file, write } = await endpointsFile();
    const r = meridianRouter([
      'router',
      '--fleet',
      SHOP,
      '--endpoints',
      file,
      '--port',
      '0',
      '--no-health-checks',
      ...TRUST_LOOPBACK_FLAGS,
    ]);
    await until(() => /listening on http:\/\/127\.0\.0\.1:(\d+)/.test(r.out()), 20_000, 'the router to listen');
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(r.out())?.[1]);
    const de = await get(port, '/', { headers: { host: 'shop.example', 'x-client-country': 'DE' } });
    expect(de.status).toBe(200);
    expect(de.headers).toMatchObject({
      'x-meridian-cluster': 'eu-central-1',
      'x-meridian-region': 'eu-central',
      'x-meridian-version': '2.4.0',
    });
    const api = await get(port, '/v1/items', { headers: { host: 'api.shop.example', 'x-client-country': 'US' } });
    expect(api.headers['x-meridian-version']).toBe('1.6.2');
    write(['eu-central']);
    r.proc.kill('SIGHUP');
    await until(
      async () => {
        const x = await get(port, '/', { headers: { host: 'shop.example', 'x-client-country': 'DE' } });
        return String(x.headers['x-meridian-cluster']).startsWith('eu-west-');
      },
      10_000,
      'the reload',
    );
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  });

  it('runs two workers on one port with metrics aggregated on the admin port', async () => {
    const { file } = await endpointsFile();
    const r = meridianRouter([
      'router',
      '-f',
      SHOP,
      '-e',
      file,
      '-p',
      '0',
      '--admin-port',
      '0',
      '--workers',
      '2',
      '--no-health-checks',
      ...TRUST_LOOPBACK_FLAGS,
    ]);
    await until(() => /admin on http:\/\/127\.0\.0\.1:(\d+)/.test(r.out()), 30_000, 'the workers to listen');
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(r.out())?.[1]);
    const adminPort = Number(/admin on http:\/\/127\.0\.0\.1:(\d+)/.exec(r.out())?.[1]);
    for (let i = 0; i < 20; i++) {
      expect(
        (await get(port, `/?i=${i}`, { headers: { host: 'shop.example', 'x-client-country': 'JP', connection: 'close' } })).headers[
          'x-meridian-cluster'
        ],
      ).toBe('ap-northeast-1');
    }
    const metrics = await get(adminPort, '/metrics');
    const m = /meridian_router_requests_total\{[^}]*client_region="ap-northeast"[^}]*\} (\d+)/.exec(metrics.body);
    expect(Number(m?.[1])).toBe(20);
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  });

  it('exits 2 with a clear message on missing or broken input', async () => {
    const none = meridianRouter(['router', '--fleet', SHOP]);
    expect(await none.exited).toBe(2);
    expect(none.err()).toMatch(/MERIDIAN_E_USAGE: meridian router needs --endpoints FILE\.json/);
    const file = join(mkdtempSync(join(tmpdir(), 'meridian-router-cli-')), 'bad.json');
    writeFileSync(file, JSON.stringify({ endpoints: [{ cluster: 'eu-west-1', service: 'web' }] }));
    const bad = meridianRouter(['router', '--fleet', SHOP, '--endpoints', file]);
    expect(await bad.exited).toBe(2);
    expect(bad.err()).toMatch(/MERIDIAN_E_ROUTER_ENDPOINTS: .*bad\.json: endpoints\.0\.port/);
    // a server that is not a URL is refused at once, not retried for ever
    const server = meridianRouter(['router', '--server', 'notaurl', '--token', 't']);
    expect(await server.exited).toBe(2);
    expect(server.err()).toMatch(/MERIDIAN_E_USAGE: --server must be an http\(s\) URL .*"notaurl"/);
  });
});

describe('meridian router --server with --workers', () => {
  const work = mkdtempSync(join(tmpdir(), 'meridian-router-follow-'));
  const fleet = join(work, 'shop');
  cpSync(SHOP, fleet, { recursive: true });

  /** Starts `meridian ARGS` (the built CLI) in the work directory and collects its output. */
  const meridian = (args: string[]): NodeProcess => spawnNode([BIN, ...args], { cwd: work, actor: 'tester' });

  const started: { proc: ChildProcess; exited: Promise<number | null> }[] = [];
  afterAll(async () => {
    // the fleet (`meridian up`) last: it stops its own replicas on SIGTERM
    for (const p of started.reverse()) {
      if (p.proc.exitCode === null && p.proc.signalCode === null) {
        p.proc.kill('SIGTERM');
        await p.exited;
      }
    }
  });

  it('relays each table to every worker, replaces a killed worker with the current table, and keeps serving without the server', async () => {
    // a real fleet of local processes (no control plane beside it), and a real control plane over it
    const up = meridian(['up', 'shop', '--port', '0', '--no-server', '--quiet']);
    started.push(up);
    const upFile = join(work, '.meridian', 'up.json');
    await until(() => existsSync(upFile), 120_000, `the fleet to start (meridian up: ${up.err()})`);
    const fleetRouter = (JSON.parse(readFileSync(upFile, 'utf8')) as { router: string }).router;
    const serve = meridian(['serve', 'shop', '--port', '0', '--print-admin-token']);
    started.push(serve);
    await until(() => /admin\s+mrl_\S+/.test(serve.out()) && /control plane on http:\/\/\S+/.test(serve.out()), 30_000, 'the server');
    const url = /control plane on (http:\/\/\S+)/.exec(serve.out())?.[1] ?? '';
    const token = /admin\s+(mrl_\S+)/.exec(serve.out())?.[1] ?? '';
    expect(fleetRouter).not.toBe(url);

    const r = meridianRouter([
      'router',
      '--server',
      url,
      '--token',
      token,
      '--workers',
      '2',
      '--port',
      '0',
      '--admin-port',
      '0',
      ...TRUST_LOOPBACK_FLAGS,
    ]);
    await until(() => /listening on http:\/\/127\.0\.0\.1:\d+, following .* \(2 workers; .*admin on/.test(r.out()), 30_000, 'the router');
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(r.out())?.[1]);
    const adminPort = Number(/admin on http:\/\/127\.0\.0\.1:(\d+)/.exec(r.out())?.[1]);
    // one stream to the server for both workers: each worker got its table from the primary
    const workerPids = (): string[] =>
      [...r.err().matchAll(/router worker (\d+) listening with routing table \d+/g)].map((m) => m[1] ?? '');
    expect(workerPids()).toHaveLength(2);
    await until(() => r.err().includes('following the control plane at'), 15_000, 'the event stream');
    expect(r.err().match(/following the control plane at/g)).toHaveLength(1);
    const serverMetrics = await api(url, 'GET', '/metrics', { token });
    expect(String(serverMetrics.body)).toMatch(/^meridian_server_event_subscribers 1$/m);

    /** The clusters answering `n` requests from Germany, each on a new connection (spread over the workers). */
    const clustersFromDE = async (n: number): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        const x = await get(port, `/?i=${i}`, { headers: { host: 'shop.example', 'x-client-country': 'DE', connection: 'close' } });
        expect(x.status).toBe(200);
        out.push(String(x.headers['x-meridian-cluster']));
      }
      return out;
    };
    const metricTotal = async (): Promise<number> => {
      const text = (await get(adminPort, '/metrics')).body;
      let sum = 0;
      for (const m of text.matchAll(/^meridian_router_requests_total\{[^}]*client_region="eu-central"[^}]*\} (\d+)$/gm))
        sum += Number(m[1]);
      return sum;
    };
    // the fleet's endpoints reach the server with its first fleet poll
    await until(
      async () => (await get(port, '/', { headers: { host: 'shop.example', 'x-client-country': 'DE' } })).status === 200,
      30_000,
      'endpoints',
    );
    expect(new Set(await clustersFromDE(20))).toEqual(new Set(['eu-central-1']));

    // a drain through the REST API reaches both workers: the primary logs it once every worker acknowledged it
    const d = await api(url, 'POST', '/api/v1/regions/eu-central/drain', { token, body: { drained: true } });
    expect(d.status).toBe(200);
    const version = (d.body as { tableVersion: number }).tableVersion;
    await until(() => r.err().includes(`routing table ${version} applied in 2 workers`), 15_000, 'the drain in both workers');
    const before = await metricTotal();
    const drained = await clustersFromDE(30);
    expect(drained.filter((c) => c === 'eu-central-1')).toEqual([]);
    expect(drained.every((c) => c.startsWith('eu-west-'))).toBe(true);
    expect((await metricTotal()) - before).toBe(30); // summed over the workers on the admin port

    // each worker in turn is killed; its replacement gets the current table (the drain), not the first one,
    // and while it is the only one left, the other replacement answers everything
    for (const pid of workerPids().slice(0, 2)) {
      const seen = workerPids().length;
      process.kill(Number(pid), 'SIGKILL');
      await until(() => r.err().includes(`router worker ${pid} exited`), 15_000, `worker ${pid} to be reported`);
      await until(() => workerPids().length === seen + 1, 15_000, 'the replacement');
      expect(r.err()).toMatch(new RegExp(`router worker \\d+ listening with routing table ${version}\\b`));
      expect((await clustersFromDE(10)).filter((c) => c === 'eu-central-1')).toEqual([]);
    }

    // the server stops: the workers keep serving with the last table, and a worker started now still gets it
    serve.proc.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    await until(() => /lost the control plane at .*; keeping routing table \d+/.test(r.err()), 15_000, 'the router to notice');
    expect((await clustersFromDE(20)).filter((c) => c === 'eu-central-1')).toEqual([]);
    const last = workerPids().at(-1) ?? '';
    const seen = workerPids().length;
    process.kill(Number(last), 'SIGKILL');
    await until(() => workerPids().length === seen + 1, 15_000, 'a replacement while the server is down');
    expect(r.err().slice(r.err().lastIndexOf('listening with routing table'))).toMatch(
      new RegExp(`^listening with routing table ${version}\\b`),
    );
    const without = await clustersFromDE(20);
    expect(without.filter((c) => c === 'eu-central-1')).toEqual([]);
    expect(without.every((c) => c.startsWith('eu-west-'))).toBe(true);

    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }, 240_000);
});
