/** Compiles src/ with tsc into a private folder, so the benchmarks measure what the CLI would run. */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Compiles the project's tsconfig into `outDir`. tsc emits even when some file has a type error (other
 * work in progress), so this fails only when the modules the benchmarks need were not written.
 */
export function buildLibrary(root: string, outDir: string): { ok: boolean; message: string } {
  rmSync(outDir, { recursive: true, force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(
    process.execPath,
    [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', outDir, '--noEmit', 'false', '--declaration', 'false'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  // as `npm run build`: the CLI's command summaries for --help, from the compiled command modules
  if (existsSync(join(outDir, 'cli', 'commands', 'index.js'))) {
    spawnSync(process.execPath, [join(root, 'scripts', 'cli-summaries.mjs'), outDir], { cwd: root, encoding: 'utf8' });
  }
  const ok = ['spec/load.js', 'render/render.js'].every((f) => existsSync(join(outDir, f)));
  const errors = (r.stdout.match(/error TS/g) ?? []).length;
  return {
    ok,
    message: ok ? (errors > 0 ? `compiled with ${errors} type error(s) elsewhere in src/` : 'compiled cleanly') : r.stdout.slice(0, 2000),
  };
}
