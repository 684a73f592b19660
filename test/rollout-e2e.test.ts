/**
 * The whole path as a user runs it: `meridian up --detach` (real processes behind the router, with its
 * control API), `meridian rollout` of a new version through the router's canary weights, real requests
 * answered by the new version, `meridian rollback`, and `meridian down` with no process left behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'meridian.js');
const work = mkdtempSync(join(tmpdir(), 'meridian-rollout-e2e-'));
const fleet = join(work, 'tiny');
copyRolloutFleet(fleet);

function meridian(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'ci' },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function replicaPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readlinkSync(`/proc/${d}/cwd`) === fleet;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host: 'tiny.example', 'x-client-country': 'DE' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

afterAll(() => {
  meridian(['down']);
  for (const pid of replicaPids()) process.kill(pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('meridian up + rollout + rollback', () => {
  it('rolls a new version out to real processes through the router, rolls it back, and leaves nothing running', async () => {
    const up = meridian(['up', 'tiny', '--detach', '--port', '0']);
    expect(up.code, up.err).toBe(0);
    const upFile = join(work, '.meridian', 'up.json');
    expect(statSync(upFile).mode & 0o777).toBe(0o600);
    const info = JSON.parse(readFileSync(upFile, 'utf8')) as { router: string; control: string; token: string };
    expect(info.control).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(info.token).toMatch(/^[0-9a-f]{48}$/);
    expect(JSON.parse((await get(info.router)).body)).toMatchObject({ version: '1.0.0' });

    const yaml = join(fleet, 'fleet.yaml');
    writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('version: 1.0.0', 'version: 1.1.0').replace('web:1.0.0@', 'web:1.1.0@'));
    const out = meridian(['rollout', 'tiny', '--poll', '50ms']);
    expect(out.code, out.err).toBe(0);
    expect(out.err).toMatch(/#\d+ promoted → promoted: every wave promoted/);
    for (let i = 0; i < 5; i++) expect(JSON.parse((await get(info.router)).body)).toMatchObject({ version: '1.1.0', track: 'stable' });

    const back = meridian(['rollback', '--poll', '50ms']);
    expect(back.code, back.err).toBe(0);
    expect(JSON.parse((await get(info.router)).body)).toMatchObject({ version: '1.0.0', track: 'stable' });
    const status = JSON.parse(meridian(['rollout', 'status', '-o', 'json']).out) as { kind: string; state: string };
    expect(status).toMatchObject({ kind: 'rollback', state: 'promoted' });
    expect(meridian(['audit', 'verify']).code).toBe(0);

    const pids = replicaPids();
    expect(meridian(['down']).code).toBe(0);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 120_000);
});
