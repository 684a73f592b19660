/**
 * The kill switch end to end: `meridian up --detach` runs a small fleet as real processes behind the
 * router, which follows the flags over OFREP; `meridian flag set beta --region eu --off` must stop new
 * requests from reaching the eu clusters (they fail over to us), and `--on` brings them back. The delay
 * is measured and printed; the bound (5 s) is only a safety net — bench/flag-killswitch.ts measures it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFlagGatedFleet, type Sample, trafficUntil } from './fixtures/flag-gated-fleet.js';
import { runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'meridian.js');
const work = mkdtempSync(join(tmpdir(), 'meridian-killswitch-'));
const fleet = join(work, 'fleet');
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
let router = '';
let control = '';

function meridian(args: string[]): CliRun {
  return runMeridian(args, { cwd: work, actor: 'oncall' });
}

/** The same, without blocking the event loop (traffic keeps flowing while the command runs). */
function meridianAsync(args: string[]): Promise<{ code: number; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: work, env: { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: 'oncall' } });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout.resume();
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, err }));
  });
}

const traffic = (stop: (samples: readonly Sample[]) => boolean): Promise<Sample[]> => trafficUntil(router, agent, stop);

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  copyFlagGatedFleet(fleet);
  const up = meridian(['up', fleet, '--detach', '--port', '0', '--quiet']);
  if (up.code !== 0) throw new Error(`meridian up failed (${up.code}): ${up.out}${up.err}`);
  const info = JSON.parse(readFileSync(join(work, '.meridian', 'up.json'), 'utf8')) as { router: string; control: string };
  router = info.router;
  control = info.control;
}, 150_000);

afterAll(() => {
  agent.destroy();
  meridian(['down']);
  rmSync(work, { recursive: true, force: true });
});

describe('the flag kill switch on a live local fleet', () => {
  it('serves the flags over OFREP from the control API', async () => {
    const res = await fetch(`${control}ofrep/v1/evaluate/flags/beta`, {
      method: 'POST',
      body: JSON.stringify({ context: { region: 'eu' } }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      key: 'beta',
      value: true,
      reason: 'DEFAULT',
      metadata: { fleet: 'tiny', description: 'the beta checkout' },
    });
  });

  it('stops new requests from reaching a region within a second of `flag set --off`, and brings them back with --on', async () => {
    // eu serves before the switch: 40 requests in a row (a loaded machine's health checks may fail over a few at first)
    const before = await traffic((s) => (s.length >= 40 && s.slice(-40).every((x) => x.region === 'eu')) || s.length > 4000);
    expect(before.slice(-40).filter((s) => s.region !== 'eu')).toEqual([]); // names any request served elsewhere

    let setDone = 0;
    const running = traffic((s) => {
      if (setDone === 0 || s.length === 0) return false;
      const lastEu = s.reduce((t, x) => (x.region === 'eu' ? Math.max(t, x.sentAt) : t), 0);
      const quietFor = Date.now() - Math.max(lastEu, setDone);
      return quietFor > 1000 || Date.now() - setDone > 5000; // 1 s without eu, or the 5 s safety net
    });
    const off = await meridianAsync(['flag', 'set', 'beta', '--region', 'eu', '--off', '-f', fleet, '--reason', 'kill switch test']);
    setDone = Date.now();
    expect(off.code, off.err).toBe(0);
    const samples = await running;
    const entry = (JSON.parse(meridian(['audit', 'log', '-o', 'json', '-n', '1']).out) as { action: string; at: string }[])[0];
    expect(entry?.action).toBe('flag.set');
    const committed = Date.parse(entry?.at ?? '');

    const lastEu = Math.max(...samples.filter((s) => s.region === 'eu').map((s) => s.sentAt));
    const after = samples.filter((s) => s.sentAt > lastEu);
    const delay = lastEu - committed;
    console.log(`kill switch: last request served by eu ${delay} ms after the flag change was committed (${samples.length} requests)`);
    expect(after.length).toBeGreaterThan(20);
    expect(after.every((s) => s.region === 'us')).toBe(true); // failed over, not failed
    expect(delay).toBeLessThan(5000);
    expect((await traffic((s) => s.length >= 40)).every((s) => s.region === 'us')).toBe(true);

    const on = meridian(['flag', 'set', 'beta', '--region', 'eu', '--on', '-f', fleet]);
    expect(on.code, on.err).toBe(0);
    const back = await traffic((s) => s.slice(-20).filter((x) => x.region === 'eu').length === 20 || s.length > 5000);
    expect(back.slice(-20).every((s) => s.region === 'eu')).toBe(true);
  });
});
