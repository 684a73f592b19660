/**
 * Attack suite, property-based: the fleet loader on random and hostile YAML. Three kinds of input: the
 * shop example with its files mutated (lines dropped, doubled, swapped, re-indented, hostile tokens
 * spliced in), fleet files built from hostile YAML pieces (anchors and aliases, merge keys, tags,
 * directives, prototype names, deep nesting, control characters), and random text behind an
 * `apiVersion:` line. Whatever the input, `tryLoadFleet` returns a valid fleet or findings, each with a
 * catalogued code, a file and a line, and no stack trace; or it throws a typed MeridianError. Never
 * anything else, and never slowly: each load is bounded (the property fails on one over 5 s). Bounded in
 * runs and in time; a failure prints its seed (FUZZ_SEED=… reruns it).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { MeridianError } from '../src/errors.js';
import { FINDING_CODES } from '../src/findings/codes.js';
import { tryLoadFleet } from '../src/spec/load.js';

const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');
const SHOP_FILES = readdirSync(SHOP)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((name) => ({ name, lines: readFileSync(join(SHOP, name), 'utf8').split('\n') }));
const work = mkdtempSync(join(tmpdir(), 'meridian-fleet-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const CODES = new Set<string>(FINDING_CODES);
/** A stack frame as Node prints it. */
const STACK_FRAME = /^\s+at .+[:(]/m;
/** One load may take this long before the property fails (a hang or a blow-up, not load on the machine). */
const SLOW_MS = 5_000;

/** Pieces of YAML that have broken parsers and loaders elsewhere. */
const HOSTILE = fc.constantFrom(
  '&a',
  '*a',
  '*nowhere',
  '<<: *a',
  '<<: [*a, *a]',
  '!!binary AAAA',
  '!!python/object:os.system',
  '!custom',
  '? [a, b]',
  '? { x: 1 }',
  '%YAML 1.1',
  '%TAG ! tag:x,2000:',
  '---',
  '...',
  '|',
  '>-',
  '[',
  ']',
  '{',
  '}',
  ':',
  '- ',
  '#',
  '"',
  "'",
  '\t',
  '\u0000',
  '\ufeff',
  '\u001b[2J',
  '\u2028',
  '__proto__:',
  'constructor:',
  'prototype:',
  'toString:',
  'hasOwnProperty: 1',
  '__proto__: { polluted: true }',
  'apiVersion: meridian/v2',
  'fleet: other',
  'replicas: -1',
  'replicas: 1e309',
  'replicas: 0x7fffffffffffffff',
  'port: 99999999999999999999',
  'image: ""',
  'weight: .nan',
  'weight: .inf',
  'countries: [ZZ, ZZ]',
  'region: nowhere',
  'ref: "file:../../etc/passwd#root"',
  'ref: "file:/etc/shadow"',
  '${cluster.name}',
  '${nope}',
  '2026-13-45',
  'yes',
  'null',
  '~',
  'x'.repeat(300),
);

/** A line of the example with something done to it. */
const lineEdit = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const) }),
  fc.record({ kind: fc.constant('double' as const) }),
  fc.record({ kind: fc.constant('swap' as const) }),
  fc.record({ kind: fc.constant('indent' as const), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({ kind: fc.constant('splice' as const), piece: fc.oneof(HOSTILE, fc.string({ maxLength: 12 })), at: fc.nat() }),
);
type LineEdit = typeof lineEdit extends fc.Arbitrary<infer T> ? T : never;

function applyEdit(lines: string[], at: number, e: LineEdit): string[] {
  const out = [...lines];
  const i = at % Math.max(1, out.length);
  const line = out[i] ?? '';
  if (e.kind === 'drop') out.splice(i, 1);
  else if (e.kind === 'double') out.splice(i, 0, line);
  else if (e.kind === 'swap' && i + 1 < out.length) [out[i], out[i + 1]] = [out[i + 1] ?? '', line];
  else if (e.kind === 'indent') out[i] = e.by >= 0 ? `${' '.repeat(e.by)}${line}` : line.slice(-e.by);
  else if (e.kind === 'splice') {
    const p = e.at % (line.length + 1);
    out[i] = `${line.slice(0, p)}${e.piece}${line.slice(p)}`;
  }
  return out;
}

/** The shop example with up to six edits in its files. */
const mutatedShop = fc.array(fc.record({ file: fc.nat(), at: fc.nat(), edit: lineEdit }), { minLength: 1, maxLength: 6 }).map((edits) => {
  const files = SHOP_FILES.map((f) => ({ name: f.name, lines: f.lines }));
  for (const { file, at, edit } of edits) {
    const f = files[file % files.length] as { name: string; lines: string[] };
    f.lines = applyEdit(f.lines, at, edit);
  }
  return files.map((f) => ({ name: f.name, text: f.lines.join('\n') }));
});

/** A fleet file made of hostile pieces, nested by indentation. */
const hostileFile = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.oneof(HOSTILE, fc.string({ maxLength: 20 })), fc.boolean()), { maxLength: 40 })
  .map((rows) => {
    const body = rows.map(([indent, piece, key]) => `${' '.repeat(indent)}${key ? `k${indent}: ` : ''}${piece}`).join('\n');
    return [{ name: 'fleet.yaml', text: `apiVersion: meridian/v1\nfleet: shop\n${body}\n` }];
  });

/** Nesting as deep as a parser's stack allows, in flow or block style. */
const deepFile = fc.tuple(fc.integer({ min: 50, max: 1500 }), fc.constantFrom('[', '{a: ', '- ')).map(([depth, open]) => {
  const close = open === '[' ? ']' : open === '{a: ' ? '}' : '';
  const body =
    open === '- '
      ? Array.from({ length: depth }, (_, i) => `${'  '.repeat(i)}- `).join('\n')
      : `${open.repeat(depth)}1${close.repeat(depth)}`;
  return [{ name: 'fleet.yaml', text: `apiVersion: meridian/v1\nfleet: shop\nregions: ${body}\n` }];
});

/** Random text (any code points) behind a fleet header. */
const randomFile = fc
  .string({ unit: 'binary', maxLength: 400 })
  .map((text) => [{ name: 'fleet.yaml', text: `apiVersion: meridian/v1\n${text}` }]);

const fleetInput = fc.oneof(
  { weight: 6, arbitrary: mutatedShop },
  { weight: 3, arbitrary: hostileFile },
  { weight: 1, arbitrary: deepFile },
  { weight: 2, arbitrary: randomFile },
);

/** How the runs ended, to show that the inputs reach past the parser. */
const outcomes = { fleets: 0, findings: 0, threw: 0 };
let run = 0;
/** Writes the files into a fresh directory. */
function writeFleet(files: readonly { name: string; text: string }[]): string {
  const dir = join(work, `f${++run}`);
  mkdirSync(dir);
  for (const f of files) writeFileSync(join(dir, f.name), f.text);
  return dir;
}

/** What a load may end in; the reason when it is none of them. */
function verdict(dir: string): string | null {
  const started = performance.now();
  let result: ReturnType<typeof tryLoadFleet>;
  try {
    result = tryLoadFleet(dir);
  } catch (err) {
    outcomes.threw++;
    if (err instanceof MeridianError && !STACK_FRAME.test(err.message)) return null;
    return `threw ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`;
  }
  const ms = performance.now() - started;
  if (ms > SLOW_MS) return `took ${Math.round(ms)} ms`;
  if ('fleet' in result) {
    outcomes.fleets++;
    return null;
  }
  outcomes.findings++;
  if (result.findings.length === 0) return 'neither a fleet nor a finding';
  for (const f of result.findings) {
    if (!CODES.has(f.code)) return `uncatalogued code ${f.code}: ${f.message}`;
    if (!f.location?.file || !(f.location.line >= 1)) return `${f.code} without a file and line: ${f.message} (${f.path ?? 'no path'})`;
    if (STACK_FRAME.test(f.message) || STACK_FRAME.test(f.fix ?? '')) return `a stack trace in ${f.code}: ${f.message}`;
  }
  return null;
}

describe('the fleet loader on random and hostile YAML (property-based)', () => {
  it('ends in a valid fleet or findings with a code, a file and a line; never a throw or a hang', () => {
    fc.assert(
      fc.property(fleetInput, (files) => {
        const dir = writeFleet(files);
        const why = verdict(dir);
        rmSync(dir, { recursive: true, force: true });
        expect(why, JSON.stringify(files).slice(0, 2000)).toBeNull();
      }),
      { numRuns: 300, interruptAfterTimeLimit: 15_000, seed: SEED },
    );
    console.log(`[fleet fuzz] seed ${SEED}: ${run} runs, ${JSON.stringify(outcomes)}`);
    expect(outcomes.fleets + outcomes.findings).toBeGreaterThan(0);
  }, 60_000);
});
