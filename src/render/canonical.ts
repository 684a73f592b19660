/** Canonical JSON (sorted keys, no whitespace) and content hashes over it: the basis of revision ids. */
import { createHash } from 'node:crypto';

/** Serialises a value with object keys in sorted order, so equal content gives equal bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const cached = memo.get(value);
  if (cached !== undefined) return cached;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += canonicalJson(v === undefined ? null : v);
    }
    return `${out}]`;
  }
  const keys = Object.keys(value);
  for (let i = 1; i < keys.length; i++) {
    if ((keys[i - 1] as string) > (keys[i] as string)) {
      keys.sort(); // only when not already in order: rendered objects mostly are
      break;
    }
  }
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** Canonical JSON of immutable objects that are serialised more than once (a cluster's services). */
const memo = new WeakMap<object, string>();

/**
 * Serialises an object that will not change again and remembers the result, so that every later
 * serialisation containing it (the cluster hash, the revision id, the store) reuses the string.
 */
export function canonicalJsonOnce(value: object, opts: { sortedByConstruction?: boolean } = {}): string {
  // With `sortedByConstruction` the caller guarantees every object in `value` has its keys in sorted
  // order and no undefined values, so the native serialiser gives the canonical bytes (4x faster);
  // test/render.test.ts checks the guarantee against the general serialiser.
  const text = opts.sortedByConstruction ? JSON.stringify(value) : canonicalJson(value);
  memo.set(value, text);
  return text;
}

/** sha256 of the canonical JSON, as hex. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** Returns a deep copy with every object's keys in sorted order (for byte-stable YAML and JSON output). */
export function sortKeys<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => sortKeys(v)) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = sortKeys(v);
  }
  return out as T;
}
