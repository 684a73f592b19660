/**
 * Reading the files of a fleet directory safely: only regular files, only inside the directory (a
 * symlink may point to another file of the fleet, never out of it), never devices or FIFOs, and never
 * more than the size limits. A pull request that commits `zz.yaml -> /dev/zero` gets a finding, not a
 * process that reads until the machine runs out of memory.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isInside } from '../path-inside.js';
import { FleetNotFoundError } from '../errors.js';
import { parseMemory, formatMemory } from '../units/quantity.js';
import type { Finding } from '../findings/finding.js';

/** How much of a fleet the loader reads. */
export interface LoadLimits {
  /** One file, bytes (default 4 MiB; `MERIDIAN_FLEET_MAX_FILE_SIZE`, e.g. `8Mi`). */
  readonly maxFileBytes: number;
  /** Every file of the fleet together, bytes (default 16 MiB; `MERIDIAN_FLEET_MAX_SIZE`). */
  readonly maxTotalBytes: number;
}

/** The default limits: the Kubernetes API server refuses request bodies over 3 MiB; a fleet is text. */
export const DEFAULT_LOAD_LIMITS: LoadLimits = { maxFileBytes: 4 * 1024 * 1024, maxTotalBytes: 16 * 1024 * 1024 };

/** The limits, with the environment's overrides (a value that is not a size like `8Mi` is ignored). */
export function loadLimits(env: NodeJS.ProcessEnv = process.env): LoadLimits {
  const size = (name: string, fallback: number): number => {
    const v = env[name];
    const n = v === undefined ? undefined : parseMemory(v);
    return n !== undefined && n > 0 ? n : fallback;
  };
  return {
    maxFileBytes: size('MERIDIAN_FLEET_MAX_FILE_SIZE', DEFAULT_LOAD_LIMITS.maxFileBytes),
    maxTotalBytes: size('MERIDIAN_FLEET_MAX_SIZE', DEFAULT_LOAD_LIMITS.maxTotalBytes),
  };
}

/** A file of the fleet, read. */
export interface FleetFile {
  readonly path: string;
  readonly text: string;
}

type FileCode = 'MERIDIAN_E_FILE_REFUSED' | 'MERIDIAN_E_FILE_TOO_LARGE' | 'MERIDIAN_E_FILE_UNREADABLE';

function refused(shown: string, message: string, fix: string, code: FileCode = 'MERIDIAN_E_FILE_REFUSED'): Finding {
  return { code, severity: 'error', message: `${shown} ${message}`, location: { file: shown, line: 1, col: 1 }, fix };
}

const KIND = (st: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string =>
  st.isDirectory()
    ? 'a directory'
    : st.isFIFO()
      ? 'a FIFO'
      : st.isCharacterDevice() || st.isBlockDevice()
        ? 'a device'
        : st.isSocket()
          ? 'a socket'
          : 'not a regular file';

/**
 * Reads at most `max + 1` bytes of a regular file, without following a symlink at the last step and
 * without blocking on a FIFO; for anything else, says what it is.
 */
function readCapped(path: string, max: number): { text: string; size: number } | { kind: string } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: KIND(st) };
    const buf = Buffer.alloc(Math.min(max + 1, Math.max(st.size, 0) + 1));
    let n = 0;
    for (;;) {
      if (n === buf.length) break;
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return { text: buf.subarray(0, n).toString('utf8'), size: n };
  } finally {
    closeSync(fd);
  }
}

/**
 * The fleet's directory and the `*.yaml`/`*.yml` entries of it (sorted; or the one file named) that
 * {@link readFleetFiles} reads for `path`; `single` when `path` names one file.
 */
export function listFiles(path: string): { dir: string; files: string[]; single: boolean } {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new FleetNotFoundError(path, err);
  }
  const single = !st.isDirectory();
  const dir = single ? dirname(resolve(path)) : resolve(path);
  if (single) return { dir, files: [resolve(path)], single };
  try {
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
      .sort()
      .map((f) => join(dir, f));
    return { dir, files, single };
  } catch (err) {
    throw new FleetNotFoundError(path, err);
  }
}

/**
 * The fleet's directory and its `*.yaml`/`*.yml` files (or the one file named), read within the limits;
 * what could not be read safely comes back as findings (`MERIDIAN_E_FILE_REFUSED`, `MERIDIAN_E_FILE_TOO_LARGE`,
 * `MERIDIAN_E_FILE_UNREADABLE`).
 */
export function readFleetFiles(
  path: string,
  display: (path: string) => string,
  limits: LoadLimits = loadLimits(),
): { dir: string; files: FleetFile[]; findings: Finding[] } {
  const { dir, files: names, single } = listFiles(path);
  const realDir = realpathSync(dir);
  const files: FleetFile[] = [];
  const findings: Finding[] = [];
  let total = 0;
  for (const file of names) {
    const shown = display(file);
    let target = file;
    try {
      if (single)
        target = realpathSync(file); // named by the user: where it lives is theirs to say
      else if (lstatSync(file).isSymbolicLink()) {
        try {
          target = realpathSync(file);
        } catch {
          findings.push(
            refused(
              shown,
              'is a symbolic link to nothing',
              'every *.yaml entry of a fleet directory is read: remove the link, or point it at a file of the fleet',
              'MERIDIAN_E_FILE_UNREADABLE',
            ),
          );
          continue;
        }
        if (!isInside(realDir, target)) {
          findings.push(
            refused(
              shown,
              'is a link out of the fleet directory; the loader reads only files inside it',
              'copy the file into the fleet, or remove the link',
            ),
          );
          continue;
        }
      }
      const got = readCapped(target, limits.maxFileBytes);
      if ('kind' in got) {
        if (got.kind === 'a directory')
          findings.push(
            refused(
              shown,
              'is a directory, not a file',
              'every *.yaml entry of a fleet directory is read: rename or remove it',
              'MERIDIAN_E_FILE_UNREADABLE',
            ),
          );
        else findings.push(refused(shown, `is ${got.kind}, not a regular file`, 'a fleet is made of regular files; remove this entry'));
        continue;
      }
      if (got.size > limits.maxFileBytes) {
        findings.push(
          refused(
            shown,
            `is larger than ${formatMemory(limits.maxFileBytes)}, the limit for one fleet file`,
            'split it, or raise MERIDIAN_FLEET_MAX_FILE_SIZE (e.g. 8Mi) if it really is one fleet file',
            'MERIDIAN_E_FILE_TOO_LARGE',
          ),
        );
        continue;
      }
      total += got.size;
      if (total > limits.maxTotalBytes) {
        findings.push(
          refused(
            shown,
            `takes the fleet over ${formatMemory(limits.maxTotalBytes)}, the limit for all its files together`,
            'remove files that are not part of the fleet, or raise MERIDIAN_FLEET_MAX_SIZE (e.g. 64Mi)',
            'MERIDIAN_E_FILE_TOO_LARGE',
          ),
        );
        break;
      }
      files.push({ path: file, text: got.text });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'an error';
      const why =
        code === 'EACCES' || code === 'EPERM'
          ? 'may not be read by this user'
          : code === 'EISDIR'
            ? 'is a directory, not a file'
            : code === 'ENOENT'
              ? 'does not exist (a symbolic link to nothing?)'
              : `cannot be read (${code})`;
      findings.push(
        refused(
          shown,
          why,
          code === 'ELOOP' ? 'remove the link' : 'make it a readable file, or rename or remove it',
          'MERIDIAN_E_FILE_UNREADABLE',
        ),
      );
    }
  }
  return { dir, files, findings };
}
