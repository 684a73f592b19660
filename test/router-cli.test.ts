/**
 * `meridian router` as a process: the example fleet over a static endpoints file, in one process and with
 * two workers; SIGHUP reloads the file; SIGTERM stops it; bad input exits 2 with a clear message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeAgents, get, startUpstream, until, type Upstream } from './router-kit.js';

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

function meridianRouter(args: string[]): { proc: ChildProcess; out: () => string; err: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RUNNER, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.push(proc);
  let out = '';
  let err = '';
  proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, out: () => out, err: () => err, exited };
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
    const r = meridianRouter(['router', '--fleet', SHOP, '--endpoints', file, '--port', '0', '--no-health-checks']);
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
    const r = meridianRouter(['router', '-f', SHOP, '-e', file, '-p', '0', '--admin-port', '0', '--workers', '2', '--no-health-checks']);
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
