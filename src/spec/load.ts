/**
 * Loads a fleet: reads every `*.yaml` file of a directory that starts with `apiVersion: meridian/v1`,
 * merges them by their top-level maps, checks the schema and the references between names, and
 * returns either the fleet or every problem at once, each at its file:line:col.
 */
import { relative, resolve } from 'node:path';
import { isScalar, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { FleetNotFoundError, InputError } from '../errors.js';
import { type Finding, compareFindings, formatPath } from '../findings/finding.js';
import { maskSecret, looksLikeSecret } from '../secrets/secret-scan.js';
import { readFleetFiles, type LoadLimits } from './fleet-files.js';
import { checkReferences } from './references.js';
import { Fleet } from './schema.js';
import { closest, keysAt } from './schema-walk.js';
import { SourceMap, type Origins, type SourceFile } from './source-map.js';

/** Top-level keys whose value is a map of named entries, merged across files by name. */
const NAMED = new Set(['regions', 'clusters', 'services', 'routing', 'flags']);
/** Top-level keys whose value is a single object, merged across files by its keys. */
const SECTIONS = new Set(['rollout', 'policies']);

/** A loaded, schema-checked fleet with where every value came from. */
export interface LoadedFleet {
  readonly fleet: Fleet;
  /** The fleet's directory: relative paths in it (secrets, local commands) are resolved from here. */
  readonly dir: string;
  readonly sources: SourceMap;
}

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

/** True when a file's text begins (after comments, blank lines and `---`) with `apiVersion:`: a fleet file. */
export function looksLikeFleetFile(text: string): boolean {
  for (const line of text.split('\n', 200)) {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t === '---') continue;
    return /^["']?apiVersion["']?\s*:/.test(t);
  }
  return false;
}

/**
 * The parser's message without the source text it may quote (a secret, in a file that failed to
 * parse): quoted spans become `"…"`.
 */
function syntaxMessage(message: string): string {
  return (message.split('\n')[0] ?? '').replace(/"(?:[^"\\]|\\.)*"/g, '"…"');
}

/**
 * Keys that appear twice in one map, found with a set per map (the parser's own `uniqueKeys` compares
 * each key with every earlier one: quadratic in the size of a map). Scalars compare by type and value.
 */
function duplicateKeys(doc: Document.Parsed): Node[] {
  const out: Node[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const k = pair.key;
        if (!isScalar(k)) continue;
        const id = `${typeof k.value}:${String(k.value)}`;
        if (seen.has(id)) out.push(k);
        else seen.add(id);
      }
    },
  });
  return out;
}

/** How to load a fleet. */
export interface LoadOptions {
  /** Size limits (default: {@link loadLimits} of the environment). */
  readonly limits?: LoadLimits;
}

/** Loads and checks a fleet; throws an {@link InputError} listing every problem when it is unusable. */
export function loadFleet(path: string, opts: LoadOptions = {}): LoadedFleet {
  const result = tryLoadFleet(path, opts);
  if ('findings' in result) {
    throw new InputError(`the fleet at ${display(resolve(path))} has ${result.findings.length} problem(s)`, result.findings);
  }
  return result;
}

/** Like {@link loadFleet}, but returns the findings instead of throwing. */
export function tryLoadFleet(path: string, opts: LoadOptions = {}): LoadedFleet | { findings: Finding[]; sources?: SourceMap } {
  const { dir, files, findings } = readFleetFiles(path, display, opts.limits);
  const sources: SourceFile[] = [];
  for (const { path: file, text } of files) {
    // a file that does not start with `apiVersion:` is not the fleet's (a secrets file, a CI config):
    // skipped without being parsed, so its syntax errors never quote it (F-17)
    if (!looksLikeFleetFile(text)) continue;
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false, merge: false });
    const shown = display(file);
    for (const e of doc.errors) {
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      findings.push({
        code: 'MERIDIAN_E_YAML_SYNTAX',
        severity: 'error',
        message: `YAML syntax error: ${syntaxMessage(e.message)}`,
        location: { file: shown, line: pos.line, col: pos.col },
        fix: 'fix the YAML syntax at this position',
      });
    }
    if (doc.errors.length > 0) continue;
    const dups = duplicateKeys(doc);
    for (const k of dups) {
      const pos = lines.linePos(k.range?.[0] ?? 0);
      findings.push({
        code: 'MERIDIAN_E_DUPLICATE_KEY',
        severity: 'error',
        message: 'a key appears twice in the same map',
        location: { file: shown, line: pos.line, col: pos.col },
        fix: 'keep one of the two entries; names are unique within a map',
      });
    }
    if (dups.length === 0) sources.push({ display: shown, doc, lines });
  }
  if (sources.length === 0 && findings.length === 0) {
    throw new FleetNotFoundError(path);
  }
  const origins: Origins = new Map();
  const merged: Record<string, unknown> = {};
  const map = new SourceMap(sources, origins);
  sources.forEach((src, fileIndex) => {
    let value: unknown;
    try {
      value = src.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      findings.push(unconvertible(src, err));
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const prev = origins.get(key);
      if (!prev) {
        origins.set(key, { file: fileIndex, children: new Map() });
        merged[key] = NAMED.has(key) || SECTIONS.has(key) ? { ...(v as object) } : v;
        const o = origins.get(key);
        if (o && v && typeof v === 'object' && !Array.isArray(v)) for (const name of Object.keys(v)) o.children.set(name, fileIndex);
        continue;
      }
      if (NAMED.has(key) || SECTIONS.has(key)) {
        if (!v || typeof v !== 'object' || Array.isArray(v)) continue; // the schema reports the wrong type
        const target = merged[key] as Record<string, unknown>;
        for (const [name, entry] of Object.entries(v as Record<string, unknown>)) {
          const firstFile = prev.children.get(name);
          if (firstFile !== undefined) {
            const here = new SourceMap(sources, new Map([[key, { file: fileIndex, children: new Map([[name, fileIndex]]) }]]));
            const there = map.locate([key, name], { key: true });
            findings.push({
              code: 'MERIDIAN_E_DUPLICATE_NAME',
              severity: 'error',
              message: `${key}.${name} is defined twice: here and at ${there ? `${there.file}:${there.line}:${there.col}` : 'another file'}`,
              path: formatPath([key, name]),
              ...withLocation(here.locate([key, name], { key: true })),
              fix: `keep one definition of ${key}.${name}, or rename one of them`,
            });
            continue;
          }
          prev.children.set(name, fileIndex);
          target[name] = entry;
        }
      } else if (key === 'apiVersion' || key === 'fleet') {
        if (merged[key] !== v) {
          const here = new SourceMap(sources, new Map([[key, { file: fileIndex, children: new Map() }]]));
          findings.push({
            code: 'MERIDIAN_E_FLEET_MISMATCH',
            severity: 'error',
            message: `${key} is ${JSON.stringify(v)} here but ${JSON.stringify(merged[key])} in ${sources[prev.file]?.display ?? 'another file'}`,
            path: key,
            ...withLocation(here.locate([key])),
            fix: `every file of one fleet must have the same ${key}`,
          });
        }
      } else {
        findings.push({
          code: 'MERIDIAN_E_DUPLICATE_NAME',
          severity: 'error',
          message: `the top-level key ${key} is defined in two files`,
          path: key,
          ...withLocation(map.locate([key], { key: true })),
          fix: `define ${key} in one file only`,
        });
      }
    }
  });
  if (findings.length > 0) return { findings: findings.sort(compareFindings), sources: map };

  const parsed = Fleet.safeParse(merged);
  if (!parsed.success) {
    const schemaFindings = parsed.error.issues.flatMap((issue) => issueToFindings(issue, merged, map));
    return { findings: dedupe(schemaFindings).sort(compareFindings), sources: map };
  }
  const refFindings = checkReferences(parsed.data, map);
  if (refFindings.length > 0) return { findings: refFindings.sort(compareFindings), sources: map };
  return { fleet: parsed.data, dir, sources: map };
}

/** How many times a YAML alias may be expanded: a bound on "billion laughs" documents. */
const MAX_ALIAS_COUNT = 100;

/** The finding for a parsed document that cannot become data: its aliases expand past the bound, or it nests too deep. */
function unconvertible(src: SourceFile, err: unknown): Finding {
  const aliases = err instanceof ReferenceError && /alias/i.test(err.message);
  let at = 0;
  if (aliases)
    visit(src.doc, {
      Alias(_, node) {
        at = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
  const pos = src.lines.linePos(at);
  return {
    code: 'MERIDIAN_E_YAML_SYNTAX',
    severity: 'error',
    message: aliases
      ? `YAML aliases here expand past ${MAX_ALIAS_COUNT} copies (the shape of a "billion laughs" attack)`
      : `the YAML cannot be read as data: ${(err as Error).message.split('\n')[0]}`,
    location: { file: src.display, line: pos.line, col: pos.col },
    fix: aliases ? 'write the values out instead of nesting aliases of aliases' : 'simplify the YAML at this position',
  };
}

function withLocation(loc: Finding['location']): { location?: NonNullable<Finding['location']> } {
  return loc ? { location: loc } : {};
}

function dedupe(findings: Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.code}|${f.path ?? ''}|${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[String(seg)];
  }
  return v;
}

function describe(v: unknown, path: readonly PropertyKey[] = []): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string' && (path.includes('secrets') || looksLikeSecret(String(path[path.length - 1] ?? ''), v))) {
    return `a string (${maskSecret(v)})`;
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function issueToFindings(issue: z.core.$ZodIssue, input: unknown, map: SourceMap): Finding[] {
  const path = issue.path as PropertyKey[];
  if (issue.code === 'unrecognized_keys') {
    const allowed = keysAt(Fleet, path) ?? [];
    return issue.keys.map((key) => {
      const suggestion = closest(key, allowed);
      const full = [...path, key];
      return {
        code: 'MERIDIAN_E_UNKNOWN_KEY',
        severity: 'error',
        message: `unknown key ${JSON.stringify(key)}${path.length ? ` in ${formatPath(path)}` : ' at the top level'}`,
        path: formatPath(full),
        ...withLocation(map.locate(full, { key: true })),
        fix: suggestion
          ? `did you mean ${JSON.stringify(suggestion)}? Allowed keys: ${allowed.join(', ')}`
          : `remove it; allowed keys here: ${allowed.join(', ') || '(none)'}`,
      } satisfies Finding;
    });
  }
  const actual = valueAt(input, path);
  const missing = actual === undefined;
  const secretSlot = path.length >= 2 && path[path.length - 2] === 'secrets';
  if (secretSlot && typeof actual === 'string') {
    const name = String(path[path.length - 1]);
    return [
      {
        code: 'MERIDIAN_E_LITERAL_SECRET',
        severity: 'error',
        message: `${formatPath(path)} is a literal value (${maskSecret(actual)}); a secret is only ever a reference`,
        path: formatPath(path),
        ...withLocation(map.locate(path)),
        fix: `put the value in a secret store and reference it, e.g. ${name}: { ref: "file:secrets/\${cluster.name}.env#${name}" }; rotate it, since it was written down here`,
        rule: 'no-literal-secrets',
      },
    ];
  }
  let message: string;
  let fix: string;
  if (issue.code === 'invalid_type' && missing) {
    message = `${formatPath(path)} is required`;
    fix = `add ${String(path[path.length - 1])}: ${issue.expected === 'object' ? '{ … }' : `<${issue.expected}>`}`;
  } else if (issue.code === 'invalid_value') {
    const values = issue.values.map((v) => JSON.stringify(v)).join(', ');
    message = `${formatPath(path)} is ${describe(actual, path)}; expected one of ${values}`;
    const guess = typeof actual === 'string' ? closest(actual, issue.values.map(String)) : undefined;
    fix = guess ? `did you mean ${JSON.stringify(guess)}?` : `use one of ${values}`;
  } else if (issue.code === 'invalid_type') {
    message = `${formatPath(path) || 'the fleet'} is ${describe(actual, path)}; expected ${article(issue.expected)}`;
    fix = `change it to ${article(issue.expected)}`;
  } else {
    const custom = !/^(Invalid|Too (small|big)|Expected)/.test(issue.message);
    const want = custom ? issue.message : issue.message.replace(/^Invalid input: expected /, '').replace(/^Too (small|big): expected /, '');
    message = `${formatPath(path) || 'the fleet'} is ${describe(actual, path)}; expected ${want}`;
    fix = custom ? `write ${want}` : `change it so that it is ${want}`;
  }
  return [
    {
      code: missing ? 'MERIDIAN_E_MISSING_KEY' : 'MERIDIAN_E_SCHEMA',
      severity: 'error',
      message,
      path: formatPath(path),
      ...withLocation(map.locate(path)),
      fix,
    },
  ];
}

function article(type: string): string {
  if (type === 'object') return 'a map';
  if (type === 'array') return 'a list';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}
