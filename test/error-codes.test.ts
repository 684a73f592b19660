/**
 * The runtime error catalogue (src/error-codes.ts) against the source: every `MERIDIAN_E_…` code written
 * anywhere in src/ is catalogued (or is a finding or measurement code, which have their own catalogues),
 * every catalogued code is used, each is raised by its catalogued class, no code is matched by prefix,
 * and docs/errors.md shows the catalogue as it is (UPDATE_GOLDEN=1 rewrites its generated part).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import type { Io } from '../src/cli/io.js';
import { main } from '../src/cli/main.js';
import { styleFor } from '../src/cli/style.js';
import { ERROR_CODES, type ErrorSpec } from '../src/error-codes.js';
import { RolloutError, StoreError, UsageError } from '../src/errors.js';
import { errorBody, statusOf } from '../src/server/api-error.js';
import { TargetError } from '../src/targets/errors.js';
import { SAMPLE_ERROR_CODES } from '../src/rollout/analysis/observation.js';
import { FINDING_CODES } from '../src/findings/codes.js';

const ROOT = join(import.meta.dirname, '..');
const CATALOGUE = 'src/error-codes.ts';
const DOC = join(ROOT, 'docs', 'errors.md');
const BEGIN = '<!-- generated from src/error-codes.ts by test/error-codes.test.ts (UPDATE_GOLDEN=1); do not edit by hand -->';
const END = '<!-- end of generated part -->';

/** A whole code (not a prefix such as `MERIDIAN_E_API_${string}` or `MERIDIAN_E_…`). */
const CODE = /MERIDIAN_[EW]_[A-Z0-9]+(?:_[A-Z0-9]+)*(?![A-Z0-9_$…])/g;

/** Ways of matching a code by its prefix: `startsWith('MERIDIAN_E_STORE_')`, `/^MERIDIAN_E_…/`, `'MERIDIAN_E_'`. */
const PREFIX_MATCH = [/(startsWith|match|test)\(\s*['"`/^]*MERIDIAN_/, /\/\^MERIDIAN_/, /['"`]MERIDIAN_[EW]_['"`]/];

interface Use {
  readonly code: string;
  readonly at: string;
  /** The class when the code is written as `new Class('CODE'` or as `super('CODE'` inside `class Class`. */
  readonly raisedBy: string | undefined;
}

function sources(): string[] {
  return readdirSync(join(ROOT, 'src'), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|js)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/** Every code written in src/ (outside the catalogue itself), where, and by which class when that shows. */
function uses(): Use[] {
  const out: Use[] = [];
  for (const file of sources()) {
    const rel = relative(ROOT, file);
    if (rel === CATALOGUE) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(CODE)) {
      const before = text.slice(Math.max(0, m.index - 200), m.index);
      const line = text.slice(0, m.index).split('\n').length;
      const ctor = /new (\w+)\(\s*['"`]$/.exec(before)?.[1];
      const sup = /super\(\s*['"`]$/.test(before) ? [...text.slice(0, m.index).matchAll(/class (\w+)/g)].at(-1)?.[1] : undefined;
      out.push({ code: m[0], at: `${rel}:${line}`, raisedBy: ctor ?? sup });
    }
  }
  return out;
}

const catalogued = new Map<string, ErrorSpec>(Object.entries(ERROR_CODES));
const otherCatalogues = new Set<string>([...FINDING_CODES, ...Object.values(SAMPLE_ERROR_CODES)]);

describe('the runtime error catalogue (src/error-codes.ts)', () => {
  const all = uses();

  it('holds every MERIDIAN_E_ code written in src/', () => {
    const missing = new Map<string, Use[]>();
    for (const u of all) {
      if (catalogued.has(u.code) || otherCatalogues.has(u.code)) continue;
      missing.set(u.code, [...(missing.get(u.code) ?? []), u]);
    }
    const advice = [...missing].map(([code, us]) => {
      const cls = us.find((u) => u.raisedBy !== undefined)?.raisedBy ?? 'MeridianError';
      return (
        `${code} (used at ${us.map((u) => u.at).join(', ')}) is not catalogued. Add to ERROR_CODES in ${CATALOGUE}:\n` +
        `  ${code}: { class: '${cls}', exit: 'input' | 'unavailable' | 'locked' | 'internal', status: <HTTP status>, summary: '<what it means>', hint: '<how to fix it>' },\n` +
        `then regenerate docs/errors.md: UPDATE_GOLDEN=1 npx vitest run test/error-codes.test.ts`
      );
    });
    expect(advice.join('\n\n'), advice.join('\n\n')).toBe('');
    expect(all.length).toBeGreaterThan(100); // the scan sees the source
  });

  it('holds no code that src/ never uses', () => {
    const used = new Set(all.map((u) => u.code));
    const unused = [...catalogued.keys()].filter((c) => !used.has(c));
    expect(unused, `remove these entries from ERROR_CODES in ${CATALOGUE} (or use them)`).toEqual([]);
  });

  it('shares no code with the finding or measurement catalogues (a code means one thing)', () => {
    expect([...catalogued.keys()].filter((c) => otherCatalogues.has(c))).toEqual([]);
  });

  it('names the class that raises each code', () => {
    const wrong = all
      .filter((u) => u.raisedBy !== undefined && catalogued.has(u.code))
      .filter((u) => catalogued.get(u.code)?.class !== u.raisedBy)
      .map((u) => `${u.at}: ${u.code} is raised by ${u.raisedBy ?? '?'}, but ${CATALOGUE} says ${catalogued.get(u.code)?.class ?? 'null'}`);
    expect(wrong).toEqual([]);
  });

  it('gives every code a summary, a hint, an HTTP error status and an exit code that is an error', () => {
    for (const [code, spec] of catalogued) {
      expect(spec.summary.length, code).toBeGreaterThan(10);
      expect(spec.hint.length, code).toBeGreaterThan(10);
      expect(spec.status >= 400 && spec.status <= 599, code).toBe(true);
      expect(EXIT[spec.exit], code).toBeGreaterThan(1);
      // an internal error (a bug) is a 500, and only a bug is
      expect(spec.exit === 'internal', code).toBe(spec.status === 500);
    }
  });

  it('is the only mapping from a code to an exit code or a status: nothing in src/ matches codes by prefix', () => {
    const prefixMatches = sources()
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ at: `${relative(ROOT, f)}:${i + 1}`, line })),
      )
      .filter(({ line }) => PREFIX_MATCH.some((re) => re.test(line)))
      .map(({ at, line }) => `${at}: ${line.trim()}`);
    expect(prefixMatches).toEqual([]);
  });
});

/** Runs the CLI's top level in-process with one command, `boom`, that throws `err`. */
async function cliThrowing(err: unknown): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const errs = new PassThrough();
  let outText = '';
  let errText = '';
  out.on('data', (b: Buffer) => (outText += b.toString()));
  errs.on('data', (b: Buffer) => (errText += b.toString()));
  const io: Io = { out, err: errs, env: {}, cwd: ROOT, now: () => new Date(), style: styleFor({}, {}), errStyle: styleFor({}, {}) };
  const code = await main(['boom'], io, (program: Command) => {
    program.command('boom').action(() => {
      throw err;
    });
  });
  return { code, out: outText, err: errText };
}

const STACK_FRAME = /^\s+at .+[:(]/m;

describe('the edges read the catalogue', () => {
  it('the CLI prints a user error with its code, message and fix, no stack, and exits with its exit code', async () => {
    const usage = await cliThrowing(new UsageError('--limit must be a number'));
    expect(usage.code).toBe(EXIT.input);
    expect(usage.err).toContain('MERIDIAN_E_USAGE: --limit must be a number');
    expect(usage.err).toContain(`fix: ${ERROR_CODES.MERIDIAN_E_USAGE.hint}`); // the catalogue's hint when the error has none
    expect(usage.err).not.toMatch(STACK_FRAME);
    expect(usage.err).not.toContain('internal error');

    expect((await cliThrowing(new StoreError('MERIDIAN_E_STORE_BUSY', 'busy'))).code).toBe(EXIT.unavailable);
    expect((await cliThrowing(new RolloutError('MERIDIAN_E_ROLLOUT_LOCKED', 'held by ro-1'))).code).toBe(EXIT.locked);
  });

  it('the CLI prints an internal error with its stack and asks for a report, exit 70', async () => {
    for (const bug of [
      new TypeError("Cannot read properties of undefined (reading 'x')"),
      new TargetError('MERIDIAN_E_TARGET_CLOSED', 'closed'),
    ]) {
      const r = await cliThrowing(bug);
      expect(r.code).toBe(EXIT.internal);
      expect(r.err).toContain('internal error');
      expect(r.err).toMatch(STACK_FRAME);
      expect(r.err).toContain('Please report it');
    }
  });

  it('the API answers with the status in the catalogue and hides the message of an internal error', () => {
    expect(statusOf(new StoreError('MERIDIAN_E_STORE_BUSY', 'busy'))).toBe(503);
    expect(statusOf(new StoreError('MERIDIAN_E_STORE_UNKNOWN_ROLLOUT', 'none'))).toBe(404);
    expect(statusOf(new UsageError('bad'))).toBe(400);
    expect(statusOf(new RangeError('Invalid time value'))).toBe(500);
    const closed = new TargetError('MERIDIAN_E_TARGET_CLOSED', 'the local driver is closed');
    expect(statusOf(closed)).toBe(500);
    expect(errorBody(closed).error.code).toBe('MERIDIAN_E_API_INTERNAL');
    expect(JSON.stringify(errorBody(new RangeError('secret detail')))).not.toContain('secret detail');
  });
});

describe('docs/errors.md', () => {
  it('shows the catalogue as it is', () => {
    const doc = readFileSync(DOC, 'utf8');
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(start, `docs/errors.md keeps the line ${BEGIN}`).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const want = `${doc.slice(0, start)}${BEGIN}\n\n${renderCatalogue()}\n${doc.slice(end)}`;
    if (process.env['UPDATE_GOLDEN'] && want !== doc) writeFileSync(DOC, want);
    expect(readFileSync(DOC, 'utf8'), 'docs/errors.md is stale: UPDATE_GOLDEN=1 npx vitest run test/error-codes.test.ts').toBe(want);
  });
});

/** The catalogue as Markdown: one table per class, in the catalogue's order. */
function renderCatalogue(): string {
  const byClass = new Map<string, [string, ErrorSpec][]>();
  for (const [code, spec] of catalogued) {
    const cls = spec.class ?? '';
    byClass.set(cls, [...(byClass.get(cls) ?? []), [code, spec]]);
  }
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  const parts: string[] = [];
  for (const [cls, rows] of byClass) {
    parts.push(cls === '' ? '### Answers to unexpected errors (no class)' : `### ${cls}`, '');
    parts.push('| code | exit | HTTP | what it means | how to fix it |', '| --- | --- | --- | --- | --- |');
    for (const [code, s] of rows)
      parts.push(`| \`${code}\` | ${EXIT[s.exit]} (${s.exit}) | ${s.status} | ${cell(s.summary)} | ${cell(s.hint)} |`);
    parts.push('');
  }
  return parts.join('\n');
}
