/** Helpers the benchmarks share for the processes they start: a free port, waiting for a listener, and stopping a child. */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';

/** A port free on 127.0.0.1 just now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Stops a child (SIGTERM, SIGKILL after 3 s) and waits for it to exit. */
export async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  await new Promise<void>((r) => {
    c.once('exit', () => r());
    c.kill('SIGTERM');
    setTimeout(() => c.kill('SIGKILL'), 3000).unref();
  });
}

/** Waits until something accepts connections on 127.0.0.1:`port` (throws after `ms`). */
export async function waitPort(port: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** utime + stime of a process and its descendants, in seconds (Linux /proc; NaN elsewhere). */
export function cpuSeconds(root: number): number {
  try {
    const stats = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map((d) => {
        try {
          const text = readFileSync(`/proc/${d}/stat`, 'utf8');
          const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
          return { pid: Number(d), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
        } catch {
          return null;
        }
      })
      .filter((x): x is { pid: number; ppid: number; ticks: number } => x !== null);
    const tree = new Set([root]);
    for (let grew = true; grew;) {
      grew = false;
      for (const p of stats) if (!tree.has(p.pid) && tree.has(p.ppid)) grew = tree.add(p.pid) !== null;
    }
    const hz = 100; // USER_HZ on Linux
    return stats.filter((p) => tree.has(p.pid)).reduce((a, p) => a + p.ticks, 0) / hz;
  } catch {
    return Number.NaN;
  }
}
