/** Running the built CLI as users do, for benchmarks that drive a local fleet end to end. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The built CLI (`npm run build` first). */
export const MERIDIAN_BIN = join(import.meta.dirname, '..', '..', 'bin', 'meridian.js');

/** A number from `--name N` on the command line, or `dflt`. */
export function argNumber(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** Runs `meridian ARGS` in `cwd` to the end (no colour; `actor` in the audit log). */
export function meridian(cwd: string, args: readonly string[], actor = 'bench'): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MERIDIAN_BIN, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', MERIDIAN_ACTOR: actor },
    encoding: 'utf8',
    timeout: 600_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
