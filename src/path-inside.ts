/** Whether a path stays inside a directory: for files a fleet names or links to (fleet files, `file:` secrets). */
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';

/** True when `path` is `dir` or inside it (compare real paths: symlinks resolved). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (rel.split(sep)[0] !== '..' && !isAbsolute(rel));
}

/**
 * The real path of `path` when it resolves to a place inside the real path of `dir`; otherwise why not
 * (`outside` also for a symlink that leads out; `missing` when it does not exist).
 */
export function realPathInside(dir: string, path: string): { real: string } | { refused: 'outside' | 'missing' } {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return { refused: 'missing' };
  }
  return isInside(realpathSync(dir), real) ? { real } : { refused: 'outside' };
}
