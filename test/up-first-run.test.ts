/**
 * `meridian up` in the foreground as a newcomer meets it: a short status with URLs that fit the fleet
 * (the explain link names a service the router routes), ports that move when taken (and say so), the
 * services' output in files that `meridian logs` shows merged and prefixed, and no process left after
 * a SIGTERM.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyRolloutFleet } from './fixtures/copy-rollout-fleet.js';
import { BIN, replicaPids, runMeridian, spawnNode } from './support/cli-kit.js';

const work = mkdtempSync(join(tmpdir(), 'meridian-up-first-'));
const fleet = join(work, 'tiny');
copyRolloutFleet(fleet);
// a fleet without a service called web: the router routes `shopfront`
const yaml = join(fleet, 'fleet.yaml');
writeFileSync(yaml, readFileSync(yaml, 'utf8').replace(/^ {2}web:$/gm, '  shopfront:'));

const started: number[] = [];
afterAll(() => {
  for (const pid of [...started, ...replicaPids(fleet)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

async function until(what: string, ok: () => boolean, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function occupy(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

describe('meridian up in the foreground', () => {
  it('prints URLs that fit the fleet, moves off taken ports, keeps service logs in files for `meridian logs`, and stops on SIGTERM', async () => {
    const taken = await occupy();
    const up = spawnNode([BIN, 'up', 'tiny', '--port', String(taken.port), '--server-port', String(taken.port)], { cwd: work });
    started.push(up.proc.pid as number);
    try {
      await until('the fleet to be up', () => up.out().includes('Ctrl-C stops everything'));
      const out = up.out();
      expect(out).toMatch(/explain +http:\/\/127\.0\.0\.1:\d+\/debug\/route\?service=shopfront&country=DE\n/);
      expect(out).not.toContain('service=web');
      expect(out).toContain(`port ${taken.port} is taken: the router listens on`);
      expect(out).toContain(`port ${taken.port} is taken: the dashboard and API are on`);
      const router = /router +(http:\S+)/.exec(out)?.[1] ?? '';
      const dashboard = /dashboard +(http:\S+)/.exec(out)?.[1] ?? '';
      expect(router).not.toContain(`:${taken.port}/`);
      expect(dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=/);
      expect(dashboard).not.toContain(`:${taken.port}/`);
      expect(out).toMatch(/try +meridian traffic --url \S+ --host tiny\.example/);
      expect(out).toContain(`logs       ${join(work, '.meridian', 'logs')} (meridian logs -f)`);
      // the services' output went to files, not to the terminal
      expect(up.err()).not.toMatch(/"msg":/);
      const logs = runMeridian(['logs'], { cwd: work });
      expect(logs.code, logs.err).toBe(0);
      const lines = logs.out.trim().split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(3); // one replica in each of 3 clusters says it listens
      for (const l of lines) expect(l).toMatch(/^\d\d:\d\d:\d\d\.\d{3} local-[abc]\/shopfront#\d+ \{"msg":/);
      const times = lines.map((l) => l.slice(0, 12));
      expect([...times].sort()).toEqual(times); // merged in time order
      const one = runMeridian(['logs', '--cluster', 'local-b'], { cwd: work });
      expect(
        one.out
          .trim()
          .split('\n')
          .every((l) => l.includes(' local-b/shopfront#')),
      ).toBe(true);
      const none = runMeridian(['logs', '--service', 'nope'], { cwd: work });
      expect(none.code).toBe(2);
      expect(none.err).toContain('no service logs of service nope in');

      const pids = replicaPids(fleet);
      expect(pids.length).toBeGreaterThanOrEqual(3);
      up.proc.kill('SIGTERM');
      await up.exited;
      await until('every replica to stop', () => replicaPids(fleet).length === 0, 20_000);
    } finally {
      taken.server.close();
      up.proc.kill('SIGKILL');
    }
  }, 150_000);
});
