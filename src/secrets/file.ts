/**
 * `file:PATH#KEY`: a key in a `.env`, YAML or JSON file, PATH relative to the fleet directory. Each file
 * is read once however many clusters share it; only the names of keys with a non-empty value are kept.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { realPathInside } from '../path-inside.js';
import type { SecretLookup } from './presence.js';

/** A secrets file larger than this is refused (it is a few keys, not a data set). */
const MAX_SECRET_FILE_BYTES = 1024 * 1024;

type KeySet = { readonly keys: ReadonlySet<string> } | { readonly error: string };

export class FileSecretStore {
  private readonly cache = new Map<string, Promise<KeySet>>();

  /** Whether `key` has a non-empty value in the file at `path` (relative to `fleetDir`). */
  async has(path: string, key: string, fleetDir: string): Promise<SecretLookup> {
    const abs = isAbsolute(path) ? path : resolve(fleetDir, path);
    let entry = this.cache.get(abs);
    if (!entry) {
      const inside = realPathInside(fleetDir, abs);
      entry =
        'real' in inside
          ? readKeys(inside.real, path)
          : Promise.resolve(
              inside.refused === 'outside'
                ? { error: `${path} leads outside the fleet directory; file: references are confined to it` }
                : { error: `${path} does not exist` },
            );
      this.cache.set(abs, entry);
    }
    const set = await entry;
    if ('error' in set) return { error: set.error };
    return set.keys.has(key) ? 'present' : 'missing';
  }

  /** How many files were read (for tests of the cache). */
  get reads(): number {
    return this.cache.size;
  }
}

async function readKeys(abs: string, shown: string): Promise<KeySet> {
  let text: string;
  try {
    const st = await stat(abs);
    if (!st.isFile()) return { error: `${shown} is not a regular file` };
    if (st.size > MAX_SECRET_FILE_BYTES) return { error: `${shown} is larger than ${MAX_SECRET_FILE_BYTES} bytes` };
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? `${shown} does not exist` : `${shown} cannot be read (${code ?? 'error'})` };
  }
  const ext = extname(abs).toLowerCase();
  if (ext === '.json') {
    try {
      return { keys: leafKeys(JSON.parse(text) as unknown) };
    } catch {
      return { error: `${shown} is not valid JSON` }; // the parser's message can quote the file: never show it
    }
  }
  if (ext === '.yaml' || ext === '.yml') {
    try {
      return { keys: leafKeys(parseYaml(text, { prettyErrors: false }) as unknown) };
    } catch {
      return { error: `${shown} is not valid YAML` };
    }
  }
  return { keys: dotenvKeys(text) };
}

/** Names of `.env` entries with a non-empty value: `KEY=value`, `export KEY="value"`; `#` comments. */
export function dotenvKeys(text: string): Set<string> {
  const keys = new Set<string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const value = (m[2] ?? '')
      .replace(/^(['"])(.*)\1$/, '$2')
      .replace(/\s+#.*$/, '')
      .trim();
    if (value !== '') keys.add(m[1] as string);
  }
  return keys;
}

/** Keys of a YAML/JSON document: top-level names, and dotted paths to nested values (`db.password`). */
function leafKeys(doc: unknown): Set<string> {
  const keys = new Set<string>();
  const walk = (v: unknown, prefix: string): void => {
    if (v === null || v === undefined || v === '') return;
    if (typeof v === 'object' && !Array.isArray(v)) {
      const entries = Object.entries(v as Record<string, unknown>);
      if (prefix && entries.length > 0) keys.add(prefix);
      for (const [k, x] of entries) walk(x, prefix ? `${prefix}.${k}` : k);
      return;
    }
    if (prefix) keys.add(prefix);
  };
  walk(doc, '');
  return keys;
}
