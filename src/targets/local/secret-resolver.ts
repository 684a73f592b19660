/**
 * Resolves secret references for local replicas: `env:NAME` (the driver's own environment) and
 * `file:PATH#KEY` (a `.env`, JSON or YAML file, PATH relative to the fleet). Values are wrapped in
 * {@link SecretValue} so that they cannot be logged or serialised by accident; they are revealed only
 * when the child's environment is built. `vault:` and `k8s:` references are for the other drivers.
 */
import { readFileSync } from 'node:fs';
import { extname, isAbsolute, resolve } from 'node:path';
import { inspect } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { SecretResolutionError } from '../errors.js';
import { realPathInside } from '../../path-inside.js';

const REDACTED = '[secret]';

/** A resolved secret value. Prints, stringifies and inspects as `[secret]`; {@link reveal} gives the value. */
export class SecretValue {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  /** The value itself: only for the child process's environment. */
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Where a reference is used, for error messages. */
export interface SecretUse {
  readonly cluster: string;
  readonly service: string;
  /** The environment variable the secret is exposed as. */
  readonly name: string;
}

export interface SecretResolverOptions {
  /** `file:` paths are relative to this directory (the fleet's). */
  readonly fleetDir: string;
  /** Where `env:` references are looked up; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Resolves `env:` and `file:` references; one instance reads each file once. */
export class SecretResolver {
  readonly #files = new Map<string, { text: string; data: () => unknown }>();
  readonly #fleetDir: string;
  readonly #env: Readonly<Record<string, string | undefined>>;

  constructor(opts: SecretResolverOptions) {
    this.#fleetDir = opts.fleetDir;
    this.#env = opts.env ?? process.env;
  }

  /** Resolves every secret of a service; throws on the first reference that cannot be resolved. */
  resolveAll(secrets: Readonly<Record<string, { readonly ref: string }>>, where: Omit<SecretUse, 'name'>): Map<string, SecretValue> {
    const out = new Map<string, SecretValue>();
    for (const [name, { ref }] of Object.entries(secrets)) out.set(name, this.resolve(ref, { ...where, name }));
    return out;
  }

  /** Resolves one reference. */
  resolve(ref: string, use: SecretUse): SecretValue {
    const at = `secret ${use.name} of service ${use.service} on cluster ${use.cluster} (${ref})`;
    const colon = ref.indexOf(':');
    const provider = colon > 0 ? ref.slice(0, colon) : '';
    const rest = colon > 0 ? ref.slice(colon + 1) : '';
    if (provider === 'vault' || provider === 'k8s') {
      throw new SecretResolutionError(
        'MERIDIAN_E_TARGET_SECRET_PROVIDER',
        ref,
        `${at}: the local driver resolves only env: and file: references, not ${provider}:`,
        {
          hint: `override the reference for the clusters you run locally, e.g. \`overrides: [{ match: { cluster: ${use.cluster} }, set: { secrets: { ${use.name}: { ref: "file:secrets/local.env#${use.name}" } } } }]\`, or use env:${use.name}`,
        },
      );
    }
    if (provider === 'env') {
      if (rest === '' || rest.includes('#')) throw invalid(ref, `${at}: write env:NAME, with no #key`);
      const value = this.#env[rest];
      if (value === undefined || value === '') {
        throw new SecretResolutionError(
          'MERIDIAN_E_TARGET_SECRET_NOT_FOUND',
          ref,
          `${at}: the environment variable ${rest} is not set (or empty) where Meridian runs`,
          {
            hint: `export ${rest}=… in the shell that runs meridian`,
          },
        );
      }
      return new SecretValue(value);
    }
    if (provider === 'file') return this.#fromFile(ref, rest, at);
    throw invalid(ref, `${at}: unknown secret provider ${JSON.stringify(provider)}; use env:NAME or file:PATH#KEY`);
  }

  #fromFile(ref: string, rest: string, at: string): SecretValue {
    const hash = rest.indexOf('#');
    const path = hash >= 0 ? rest.slice(0, hash) : rest;
    const key = hash >= 0 ? rest.slice(hash + 1) : null;
    if (path === '' || key === '') throw invalid(ref, `${at}: write file:PATH#KEY (or file:PATH for the whole file)`);
    const inside = realPathInside(this.#fleetDir, isAbsolute(path) ? path : resolve(this.#fleetDir, path));
    if ('refused' in inside && inside.refused === 'outside')
      throw invalid(ref, `${at}: ${path} leads outside the fleet directory; file: references are confined to it`);
    const full = 'real' in inside ? inside.real : resolve(this.#fleetDir, path);
    const file = this.#read(full, ref, at);
    if (key === null) return new SecretValue(file.text.replace(/\r?\n$/, ''));
    const value = lookup(file.data(), key);
    if (value === undefined || value === '' || value === null) {
      throw new SecretResolutionError(
        'MERIDIAN_E_TARGET_SECRET_NOT_FOUND',
        ref,
        `${at}: ${path} has no key ${key} (or its value is empty)`,
        {
          hint: `add ${key} to ${full}`,
        },
      );
    }
    if (typeof value === 'object') throw invalid(ref, `${at}: ${key} in ${path} is not a string, number or boolean`);
    return new SecretValue(String(value as string | number | boolean));
  }

  #read(full: string, ref: string, at: string): { text: string; data: () => unknown } {
    const cached = this.#files.get(full);
    if (cached) return cached;
    let text: string;
    try {
      text = readFileSync(full, 'utf8');
    } catch (cause) {
      throw new SecretResolutionError('MERIDIAN_E_TARGET_SECRET_NOT_FOUND', ref, `${at}: cannot read ${full}`, {
        cause,
        hint: 'file: paths are relative to the fleet directory; create the file or fix the path',
      });
    }
    const ext = extname(full).toLowerCase();
    const format = ext === '.json' ? 'JSON' : ext === '.yaml' || ext === '.yml' ? 'YAML' : '.env';
    let parsed: { data: unknown } | undefined;
    const data = (): unknown => {
      if (parsed) return parsed.data;
      try {
        parsed = {
          data: format === 'JSON' ? JSON.parse(text) : format === 'YAML' ? parseYaml(text) : Object.fromEntries(parseDotenv(text)),
        };
      } catch {
        // the parser's message may quote the file's content: do not pass it on
        throw invalid(
          ref,
          `${at}: ${full} is not valid ${format} (the format follows the extension: .json, .yaml/.yml, anything else is .env)`,
        );
      }
      return parsed.data;
    };
    const entry = { text, data };
    this.#files.set(full, entry);
    return entry;
  }
}

function invalid(ref: string, message: string): SecretResolutionError {
  return new SecretResolutionError('MERIDIAN_E_TARGET_SECRET_INVALID', ref, message);
}

/** A key in parsed data: the exact top-level key first, else a dotted path (`db.password`). */
function lookup(data: unknown, key: string): unknown {
  if (data === null || typeof data !== 'object') return undefined;
  const rec = data as Record<string, unknown>;
  if (Object.hasOwn(rec, key)) return rec[key];
  let v: unknown = data;
  for (const part of key.split('.')) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/**
 * Parses a `.env` file: `KEY=value`, optional `export `, `#` comments, single quotes (literal), double
 * quotes (with \n, \t, \", \\ escapes), and ` #` comments after unquoted values. Other lines are skipped.
 */
export function parseDotenv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue; // not KEY=VALUE: skipped, as dotenv does (and as preflight's presence check does)
    const key = m[1] as string;
    let raw = m[2] as string;
    let value: string;
    if (raw.startsWith("'")) {
      const end = raw.indexOf("'", 1);
      if (end < 0) throw new Error(`line ${i + 1}: unterminated quote`);
      value = raw.slice(1, end);
    } else if (raw.startsWith('"')) {
      let j = 1;
      let v = '';
      // a double-quoted value may span lines
      for (;;) {
        if (j >= raw.length) {
          if (i + 1 >= lines.length) throw new Error(`line ${i + 1}: unterminated quote`);
          i += 1;
          v += '\n';
          raw = lines[i] ?? '';
          j = 0;
          continue;
        }
        const c = raw[j] as string;
        if (c === '"') break;
        if (c === '\\' && j + 1 < raw.length) {
          const n = raw[j + 1] as string;
          v += n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n;
          j += 2;
          continue;
        }
        v += c;
        j += 1;
      }
      value = v;
    } else {
      const comment = raw.search(/\s#/);
      value = (comment >= 0 ? raw.slice(0, comment) : raw).trim();
    }
    out.set(key, value);
  }
  return out;
}
