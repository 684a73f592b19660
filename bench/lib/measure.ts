/** Timing helpers for the benchmarks: medians, and whole-process wall time and peak RSS. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** One finished process: exit code, wall time, peak RSS (MiB, or null when unknown), its output. */
export interface ProcessRun {
  readonly code: number | null;
  readonly wallMs: number;
  readonly maxRssMiB: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const GNU_TIME = '/usr/bin/time';
const WRAPPER = join(import.meta.dirname, 'rss-wrapper.mjs');

/** How peak RSS is measured on this machine. */
export function rssMethod(): 'gnu-time' | 'wrapper' {
  return existsSync(GNU_TIME) ? 'gnu-time' : 'wrapper';
}

function collect(
  cmd: string,
  args: readonly string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string },
): Promise<{ code: number | null; wallMs: number; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    child.stdout.on('data', (b: Buffer) => {
      // keep only the head of a large output (a whole rendered fleet is hundreds of MB)
      if (outBytes < 1 << 20) out.push(b);
      outBytes += b.length;
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      resolveRun({
        code,
        wallMs: performance.now() - t0,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/**
 * Runs `node <script> ...args` as a whole process and measures it: wall time from spawn to exit, and
 * peak RSS from GNU time (`-v`) when installed, else from a wrapper that reports its own.
 */
export async function runNode(
  script: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd: string; nodeArgs?: readonly string[] },
): Promise<ProcessRun> {
  const env = { ...process.env, ...opts.env };
  const nodeArgs = opts.nodeArgs ?? [];
  if (rssMethod() === 'gnu-time') {
    const r = await collect(GNU_TIME, ['-v', process.execPath, ...nodeArgs, script, ...args], { env, cwd: opts.cwd });
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
    const stderr = r.stderr.replace(/\n?\tCommand being timed:[\s\S]*$/, '');
    return { ...r, stderr, maxRssMiB: m ? Number(m[1]) / 1024 : null };
  }
  const dir = mkdtempSync(join(tmpdir(), 'meridian-bench-'));
  const file = join(dir, 'rss');
  try {
    const r = await collect(process.execPath, [...nodeArgs, WRAPPER, script, ...args], {
      env: { ...env, MERIDIAN_BENCH_RSS_FILE: file },
      cwd: opts.cwd,
    });
    const kib = existsSync(file) ? Number(readFileSync(file, 'utf8')) : Number.NaN;
    return { ...r, maxRssMiB: Number.isFinite(kib) ? kib / 1024 : null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Formats milliseconds for a table: `850 ms`, `1.42 s`. */
export function ms(v: number): string {
  if (!Number.isFinite(v)) return '—';
  return v < 1000 ? `${v.toFixed(0)} ms` : `${(v / 1000).toFixed(2)} s`;
}

/** Formats MiB for a table. */
export function mib(v: number | null): string {
  return v === null || !Number.isFinite(v) ? '—' : `${v.toFixed(0)} MiB`;
}
