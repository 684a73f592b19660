/** `.meridian/up.json`: what a running `meridian up` tells other commands (router, admin, control API). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Io } from './io.js';

/** What a running `meridian up` leaves in `.meridian/up.json` for `meridian down` and for tools. */
export interface UpInfo {
  readonly pid: number;
  readonly fleet: string;
  /** The fleet's directory (absolute): where `meridian drill` reads the fleet's policy. Absent in files of older versions. */
  readonly fleetDir?: string;
  readonly revision: string;
  readonly router: string;
  readonly admin: string;
  /** The control API (driver operations and traffic control) that `meridian rollout` uses. */
  readonly control: string;
  /** Its bearer token; the file is readable by its owner only. */
  readonly token: string;
  readonly startedAt: string;
  /** The control plane beside the fleet (`meridian serve`), when it runs. */
  readonly server?: string;
  /** The dashboard URL with its in-memory admin token (`#token=…`); the file is readable by its owner only. */
  readonly dashboard?: string;
  /** Where the services' logs go (`meridian logs` reads them). */
  readonly logs?: string;
  /** When HAProxy serves the fleet instead of the router (`--data-plane haproxy`): its master's pid and its files. */
  readonly dataPlane?: { readonly kind: 'haproxy'; readonly pid: number; readonly dir: string };
}

export function upFile(io: Io): string {
  return join(io.cwd, '.meridian', 'up.json');
}

/** Reads `.meridian/up.json` when a live `meridian up` wrote it. */
export function readUpInfo(io: Io): UpInfo | undefined {
  const file = upFile(io);
  if (!existsSync(file)) return undefined;
  let info: UpInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as UpInfo;
  } catch {
    return undefined; // damaged (it is written to a temporary file and renamed, so never half-written)
  }
  try {
    process.kill(info.pid, 0);
    return info;
  } catch {
    return undefined; // stale: its process is gone
  }
}
