/**
 * Where a fleet description is and what it holds: its directory and a hash over its YAML files (names
 * and bytes). A saved plan carries it, so that `meridian rollout --plan` finds the fleet without being
 * told, and says so when the files there are not the ones the plan was made from.
 */
import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { readFleetFiles } from './fleet-files.js';

/** A fleet description's location and content. */
export interface FleetSource {
  /** The absolute path of the fleet directory (or the one file) the fleet was loaded from. */
  readonly path: string;
  /** sha256 over each YAML file's name and bytes, in name order. */
  readonly contentHash: string;
}

/**
 * The source of the fleet at `path` (a directory or one file), read as the loader reads it (within its
 * file rules and size limits).
 * @throws InputError when a file of it cannot be read safely
 */
export function fleetSource(path: string): FleetSource {
  const { files, findings } = readFleetFiles(path, (p) => p);
  if (findings.length > 0) throw new InputError(`the fleet at ${resolve(path)} cannot be read`, findings);
  const hash = createHash('sha256');
  for (const { path: file, text } of files) {
    const name = basename(file);
    hash.update(`${name.length}:${name}`);
    const bytes = Buffer.from(text, 'utf8');
    hash.update(`${bytes.length}:`);
    hash.update(bytes);
  }
  return { path: resolve(path), contentHash: hash.digest('hex') };
}
