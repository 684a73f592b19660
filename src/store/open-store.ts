/** Picks and opens the store a command should use, from `--state`, `MERIDIAN_STATE`, or the default file. */
import { resolve } from 'node:path';
import { openPostgresStore } from './postgres-store.js';
import { DEFAULT_STATE_PATH, openSqliteStore } from './sqlite-store.js';
import type { Clock, Store } from './store.js';

export interface OpenStoreOptions {
  readonly clock?: Clock | undefined;
  /** Open for reading only (`audit log`, `audit verify`): nothing is created or migrated. */
  readonly readonly?: boolean | undefined;
  /** Resolve relative paths against this directory (default: the working directory). */
  readonly cwd?: string | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** Where the state lives, before it is opened. */
export type StoreSpec = { readonly kind: 'sqlite'; readonly path: string } | { readonly kind: 'postgres'; readonly url: string };

/**
 * Resolves a store spec: undefined → `MERIDIAN_STATE`, else `.meridian/state.db`; `postgres://` or
 * `postgresql://` → PostgreSQL; anything else → a SQLite file path (relative to `cwd`).
 */
export function resolveStoreSpec(spec?: string, opts: Pick<OpenStoreOptions, 'cwd' | 'env'> = {}): StoreSpec {
  const env = opts.env ?? process.env;
  const given = spec?.trim() || env['MERIDIAN_STATE']?.trim() || DEFAULT_STATE_PATH;
  if (/^postgres(ql)?:\/\//i.test(given)) return { kind: 'postgres', url: given };
  const path = given.startsWith('sqlite:') ? given.slice('sqlite:'.length) : given;
  return { kind: 'sqlite', path: resolve(opts.cwd ?? process.cwd(), path) };
}

/** Opens (creating and migrating when needed) the store named by `spec`; see {@link resolveStoreSpec}. */
export function openStore(spec?: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const s = resolveStoreSpec(spec, opts);
  const common = { clock: opts.clock, readonly: opts.readonly };
  return s.kind === 'postgres' ? openPostgresStore(s.url, common) : openSqliteStore(s.path, common);
}
