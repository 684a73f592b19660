/**
 * `meridian up --detach` and `meridian down` as a user runs them: the example fleet as real processes,
 * real requests through the router, and no process left behind.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replicaPids, runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'meridian-up-'));
const fleet = join(work, 'shop');
cpSync(join(root, 'examples', 'shop'), fleet, { recursive: true });

function meridian(args: string[]): CliRun {
  return runMeridian(args, { cwd: work, timeout: 150_000 });
}

/** PIDs of processes whose working directory is the copied fleet: the replicas `up` started. */
const fleetPids = (): number[] => replicaPids(fleet);

function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

afterAll(() => {
  meridian(['down']);
  for (const pid of fleetPids()) process.kill(pid, 'SIGKILL');
});

describe('meridian up --detach / down', () => {
  it('runs every cluster as processes behind the router, serves by residency, and leaves no process after down', async () => {
    const up = meridian(['up', 'shop', '--detach', '--port', '0']);
    expect(up.err).toBe('');
    expect(up.code).toBe(0);
    const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { pid: number; router: string };
    expect(up.out).toContain(info.router);
    const pids = fleetPids();
    expect(pids.length).toBeGreaterThanOrEqual(16); // 8 clusters, several services, 2 replicas each (capped)

    const de = await get(info.router, { host: 'shop.example', 'x-client-country': 'DE' });
    expect(de.status).toBe(200);
    expect(String(de.headers['x-meridian-region'])).toMatch(/^eu-/);
    expect(JSON.parse(de.body)).toMatchObject({ service: 'web', version: '2.4.0' });
    const us = await get(info.router, { host: 'shop.example', 'x-client-country': 'US' });
    expect(String(us.headers['x-meridian-region'])).toBe('us-east');

    const audit = meridian(['audit', 'log']);
    expect(audit.out).toMatch(/cluster\.state/);

    const down = meridian(['down']);
    expect(down.code).toBe(0);
    expect(down.out).toMatch(/stopped the fleet shop/);
    expect(existsSync(join(work, '.meridian', 'up.json'))).toBe(false);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 180_000);
});
