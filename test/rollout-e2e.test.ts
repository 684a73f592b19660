/**
 * The whole path as a user runs it: `meridian up --detach` (real processes behind the router, with its
 * control API), `meridian rollout` of a new version through the router's canary weights, real requests
 * answered by the new version, `meridian rollback`, and `meridian down` with no process left behind.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { get, liveFleet } from './support/rollout-live-kit.js';

const live = liveFleet('rollout-e2e');

afterAll(async () => {
  await live.down();
  live.remove();
});

describe('meridian up + rollout + rollback', () => {
  it('rolls a new version out to real processes through the router, rolls it back, and leaves nothing running', async () => {
    await live.up();
    const upFile = join(live.work, '.meridian', 'up.json');
    expect(statSync(upFile).mode & 0o777).toBe(0o600);
    const info = live.info();
    expect(info.control).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(info.token).toMatch(/^[0-9a-f]{48}$/);
    expect(JSON.parse((await get(info.router)).body)).toMatchObject({ version: '1.0.0' });

    live.edit((y) => y.replace('version: 1.0.0', 'version: 1.1.0').replace('web:1.0.0@', 'web:1.1.0@'));
    const out = await live.run(['rollout', 'tiny', '--poll', '50ms']);
    expect(out.code, out.err).toBe(0);
    expect(out.err).toMatch(/#\d+ promoted → promoted: every wave promoted/);
    for (let i = 0; i < 5; i++) expect(JSON.parse((await get(info.router)).body)).toMatchObject({ version: '1.1.0', track: 'stable' });

    const back = await live.run(['rollback', '--poll', '50ms']);
    expect(back.code, back.err).toBe(0);
    expect(JSON.parse((await get(info.router)).body)).toMatchObject({ version: '1.0.0', track: 'stable' });
    const status = JSON.parse((await live.run(['rollout', 'status', '-o', 'json'])).out) as { kind: string; state: string };
    expect(status).toMatchObject({ kind: 'rollback', state: 'promoted' });
    expect((await live.run(['audit', 'verify'])).code).toBe(0);
    expect(readFileSync(join(live.fleet, 'fleet.yaml'), 'utf8')).toContain('version: 1.1.0');

    expect(await live.down()).toEqual([]);
  }, 120_000);
});
