/**
 * Attack suite for finding F-11 of the security review: bad input that used to escape the typed-error
 * paths and end in HTTP 500 or exit 70 "internal error" with a stack trace. Each case is the review's
 * reproduction; each must end in a typed `MERIDIAN_E_…` error with its documented status or exit code
 * and no stack. The CLI cases run the built command (`npm run build` first), as a user would.
 */
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMeridian, type CliRun } from './support/cli-kit.js';
import { api, codeOf, serverWorld, type ServerWorld } from './support/server-kit.js';

const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-f11-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A stack frame as Node prints it (`    at fn (file:line:col)`). */
const STACK_FRAME = /^\s+at .+[:(]/m;

function meridian(args: readonly string[]): CliRun {
  return runMeridian(args, { cwd: work, actor: 'tester', timeout: 60_000 });
}

/** A run that ended in a typed user error: its code in the output, the given exit code, no stack, no "internal error". */
function expectTyped(r: CliRun, code: string, exit: number): void {
  const all = `${r.out}\n${r.err}`;
  expect(all, all).toContain(code);
  expect(all).not.toMatch(STACK_FRAME);
  expect(all).not.toContain('internal error');
  expect(r.code, all).toBe(exit);
}

/** A copy of the shop fleet to plant bad files in. */
function fleetCopy(name: string): string {
  const dir = join(work, name);
  cpSync(EXAMPLE, dir, { recursive: true });
  return dir;
}

describe('F-11: bad fleet files end in findings (exit 2), not a stack', () => {
  it('a YAML alias bomb (billion laughs) is a MERIDIAN_E_YAML_SYNTAX finding at its file', () => {
    const dir = fleetCopy('bomb');
    const row = (name: string, of: string): string => `${name}: &${name} [${Array(9).fill(of).join(', ')}]`;
    const lines = ['apiVersion: meridian/v1', 'fleet: shop', row('a', '"lol"')];
    for (const [name, prev] of [
      ['b', 'a'],
      ['c', 'b'],
      ['d', 'c'],
      ['e', 'd'],
      ['f', 'e'],
      ['g', 'f'],
      ['h', 'g'],
      ['i', 'h'],
    ] as const)
      lines.push(row(name, `*${prev}`));
    writeFileSync(join(dir, 'bomb.yaml'), `${lines.join('\n')}\n`);
    const r = meridian(['validate', dir]);
    expectTyped(r, 'MERIDIAN_E_YAML_SYNTAX', 2);
    expect(r.out + r.err).toContain('bomb.yaml');
  });

  it('a directory named zz.yaml is a MERIDIAN_E_FILE_UNREADABLE finding', () => {
    const dir = fleetCopy('dir');
    mkdirSync(join(dir, 'zz.yaml'));
    const r = meridian(['validate', dir]);
    expectTyped(r, 'MERIDIAN_E_FILE_UNREADABLE', 2);
    expect(r.out + r.err).toContain('zz.yaml');
  });

  it('a dangling symlink zz.yaml is a MERIDIAN_E_FILE_UNREADABLE finding', () => {
    const dir = fleetCopy('dangling');
    symlinkSync(join(work, 'does-not-exist.yaml'), join(dir, 'zz.yaml'));
    const r = meridian(['validate', dir]);
    expectTyped(r, 'MERIDIAN_E_FILE_UNREADABLE', 2);
    expect(r.out + r.err).toContain('zz.yaml');
  });

  it('an unreadable zz.yaml is a MERIDIAN_E_FILE_UNREADABLE finding (skipped as root, who reads every file)', (ctx) => {
    if (process.getuid?.() === 0) ctx.skip();
    const dir = fleetCopy('unreadable');
    writeFileSync(join(dir, 'zz.yaml'), 'apiVersion: meridian/v1\nfleet: shop\n');
    chmodSync(join(dir, 'zz.yaml'), 0o000);
    expectTyped(meridian(['validate', dir]), 'MERIDIAN_E_FILE_UNREADABLE', 2);
  });
});

describe('F-11: token lifetimes out of range are refused', () => {
  it('`token create --expires 99999999999h` is a usage error (exit 2), not a RangeError', () => {
    const r = meridian([
      'token',
      'create',
      '--role',
      'viewer',
      '--name',
      'x',
      '--expires',
      '99999999999h',
      '--state',
      join(work, 'tok.db'),
    ]);
    expectTyped(r, 'MERIDIAN_E_USAGE', 2);
    expect(r.err).toContain('--expires');
  });
});

// found beside the review's reproductions: the same escape through option parsing and output files
describe('bad option values and unwritable output files are usage errors (exit 2), not a stack', () => {
  it.each([
    ['audit log --limit abc', ['audit', 'log', '--limit', 'abc'], '--limit'],
    ['audit log --after -1', ['audit', 'log', '--after', '-1'], '--after'],
    ['up --port abc', ['up', EXAMPLE, '--port', 'abc'], '--port'],
    ['traffic --users 0', ['traffic', '--users', '0'], '--users'],
    [
      'validate --report in a directory that does not exist',
      ['validate', EXAMPLE, '--no-state', '--report', join(work, 'no', 'r.xml')],
      '--report',
    ],
    ['validate --report naming a directory', ['validate', EXAMPLE, '--no-state', '--report', work], '--report'],
  ])('%s', (_name, args, flag) => {
    const r = meridian(args);
    expectTyped(r, 'MERIDIAN_E_USAGE', 2);
    expect(r.err).toContain(flag);
  });
});

describe('F-11: a store missing one of its tables', () => {
  it('`audit verify` after `DROP TABLE audit_log` is MERIDIAN_E_STORE_CORRUPT (exit 3), not a SqliteError', () => {
    const state = join(work, 'dropped.db');
    expect(meridian(['plan', EXAMPLE, '--state', state]).code).toBe(0);
    const db = new Database(state);
    db.exec('DROP TABLE audit_log');
    db.close();
    expectTyped(meridian(['audit', 'verify', '--state', state]), 'MERIDIAN_E_STORE_CORRUPT', 3);
  });
});

describe('F-11: the API answers bad requests with 4xx, not 500', () => {
  let s: ServerWorld;
  const logged: string[] = [];
  beforeAll(async () => {
    s = await serverWorld({ log: (_level, message) => void logged.push(message) });
  });
  afterAll(() => s.close());

  it.each(['/api/v1/rollouts/%E0%A4%A', '/api/v1/rollouts/%ZZ', '/api/v1/revisions/%'])(
    'a malformed percent-encoding in %s is 400 MERIDIAN_E_API_BAD_REQUEST, with no stack in the log',
    async (path) => {
      logged.length = 0;
      const a = await api(s.url, 'GET', path, { token: s.tokens.viewer });
      expect(a.status, JSON.stringify(a.body)).toBe(400);
      expect(codeOf(a)).toBe('MERIDIAN_E_API_BAD_REQUEST');
      expect(logged.join('\n')).not.toMatch(STACK_FRAME);
    },
  );

  it.each([1e12, 87_601, Number.MAX_VALUE])('POST /api/v1/tokens with expiresInHours %s is 422 MERIDIAN_E_API_INVALID', async (hours) => {
    const a = await api(s.url, 'POST', '/api/v1/tokens', {
      token: s.tokens.admin,
      body: { name: 'x', role: 'viewer', expiresInHours: hours },
    });
    expect(a.status, JSON.stringify(a.body)).toBe(422);
    expect(codeOf(a)).toBe('MERIDIAN_E_API_INVALID');
  });

  it('a token of ten years is still accepted', async () => {
    const a = await api(s.url, 'POST', '/api/v1/tokens', {
      token: s.tokens.admin,
      body: { name: 'y', role: 'viewer', expiresInHours: 87_600 },
    });
    expect(a.status, JSON.stringify(a.body)).toBe(201);
  });
});
