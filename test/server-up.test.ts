/**
 * `meridian up` starts the control plane beside the local fleet and prints the dashboard URL with an
 * in-memory admin token: the API then shows the live clusters and the traffic sent through the router.
 * Real processes; needs a fresh build.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, until } from './support/server-kit.js';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'meridian-server-up-'));
const fleet = join(work, 'shop');
cpSync(join(root, 'examples', 'shop'), fleet, { recursive: true });

function meridian(args: string[]): CliRun {
  return runMeridian(args, { cwd: work, actor: 'local-user', timeout: 150_000 });
}

afterAll(() => {
  meridian(['down']);
  for (const pid of replicaPids(fleet)) process.kill(pid, 'SIGKILL'); // any replica \`down\` left
  rmSync(work, { recursive: true, force: true });
});

describe('meridian up with the control plane', () => {
  it('prints the dashboard URL; its token acts as the local admin; clusters and traffic are live', async () => {
    const up = meridian(['up', 'shop', '--detach', '--port', '0', '--server-port', '0']);
    expect(up.code).toBe(0);
    expect(up.out).toMatch(/dashboard http:\/\/127\.0\.0\.1:\d+\/#token=mrl_/);
    const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as {
      server: string;
      dashboard: string;
      router: string;
    };
    const token = info.dashboard.split('#token=')[1] ?? '';
    expect((await api(info.server, 'GET', '/api/v1/whoami', { token })).body).toMatchObject({
      identity: 'local-user',
      roles: ['admin'],
      via: 'local',
    });
    expect((await api(info.server, 'GET', '/api/v1/whoami')).status).toBe(401);
    await until(
      async () => {
        const cl = (await api(info.server, 'GET', '/api/v1/clusters', { token })).body as { reachable: boolean; healthy: boolean }[];
        return cl.length > 0 && cl.every((c) => c.reachable && c.healthy);
      },
      'every cluster healthy',
      30_000,
    );
    // traffic through the router shows up in the live flows
    await until(
      async () => {
        await Promise.all(
          Array.from({ length: 20 }, () => fetch(info.router, { headers: { 'x-client-country': 'DE' } }).then((r) => r.text())),
        );
        const t = (await api(info.server, 'GET', '/api/v1/traffic', { token })).body as { flows: { clientRegion: string; rps: number }[] };
        return t.flows.some((f) => f.clientRegion !== '(unknown)' && f.rps > 0);
      },
      'live traffic',
      30_000,
    );
    const page = await fetch(info.server);
    expect(page.status).toBe(200);
  }, 120_000);
});
