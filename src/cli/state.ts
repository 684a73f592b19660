/** The CLI's access to the state store: which store, and what each cluster runs now. */
import { existsSync } from 'node:fs';
import type { RenderedCluster } from '../render/render.js';
import { openStore, resolveStoreSpec } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import type { Io } from './io.js';

/** Opens the store a command names with `--state` (or MERIDIAN_STATE, or `.meridian/state.db`). */
export function storeFor(spec: string | undefined, io: Io, opts: { readonly?: boolean } = {}): Promise<Store> {
  return openStore(spec, { cwd: io.cwd, env: io.env, readonly: opts.readonly });
}

/**
 * What each cluster runs now, from the store; undefined when nothing was ever recorded (no state file
 * yet), so that a first `validate` creates nothing.
 */
export async function recordedState(spec: string | undefined, io: Io): Promise<Record<string, RenderedCluster> | undefined> {
  const where = resolveStoreSpec(spec, { cwd: io.cwd, env: io.env });
  if (where.kind === 'sqlite' && !existsSync(where.path)) return undefined;
  const store = await storeFor(spec, io, { readonly: true });
  try {
    const states = await store.clusterStates();
    const out: Record<string, RenderedCluster> = {};
    for (const [name, rec] of Object.entries(states)) out[name] = rec.state;
    return Object.keys(out).length > 0 ? out : undefined;
  } finally {
    await store.close();
  }
}
