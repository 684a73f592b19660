/**
 * The shared health probe (src/health/probe.ts) when the checking process itself stalls: a healthy endpoint
 * whose answer waited behind a blocked event loop passes; a hung one still fails, within twice its timeout.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probe, stallTolerantTimeout } from '../src/health/probe.js';

/** Keeps this process's event loop busy for `ms`, as a starved or blocked router would be. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
}

let server: Server;
let port = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/hang') return; // never answers
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('health probe', () => {
  it('passes a healthy endpoint whose answer waited while this process was blocked past the timeout', async () => {
    for (const path of ['/ok', null]) {
      const check = probe({ host: '127.0.0.1', port, path, timeoutMs: 150 });
      setTimeout(() => block(600), 1); // the loop stalls after the check started: its timer fires 450 ms late
      expect(await check, String(path)).toEqual({ ok: true });
    }
  });

  it('fails a hung endpoint after its timeout, and after at most twice the timeout when this process stalled', async () => {
    const t0 = performance.now();
    expect(await probe({ host: '127.0.0.1', port, path: '/hang', timeoutMs: 150 })).toEqual({
      ok: false,
      reason: 'no answer from /hang within 150 ms',
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(145);

    const t1 = performance.now();
    const stalled = probe({ host: '127.0.0.1', port, path: '/hang', timeoutMs: 150 });
    setTimeout(() => block(400), 1);
    expect(await stalled).toEqual({ ok: false, reason: 'no answer from /hang within 150 ms' });
    // the timer fired ~250 ms late, so the check waited 150 ms more instead of failing at once
    expect(performance.now() - t1).toBeGreaterThanOrEqual(400 + 145);
  });

  it('waits its timeout once more when its timer fired over half the timeout late, and only once', async () => {
    /** Runs a 20 ms timeout whose clock reads `readings`; answers how often it read the clock. */
    const run = (readings: number[]) =>
      new Promise<number>((done) => {
        let reads = 0;
        stallTolerantTimeout(
          20,
          () => done(reads),
          () => {
            reads++;
            return readings.shift() ?? 0;
          },
        );
      });
    expect(await run([0, 25])).toBe(2); // armed at 0, fired 5 ms late: times out
    expect(await run([0, 100, 100, 1000])).toBe(3); // fired 80 ms late: armed again, then times out however late
  });
});
