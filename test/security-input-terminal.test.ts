/**
 * Attack suite, F-9 of the security review: control characters in values users chose (a token's name,
 * an audit reason) are printed as visible escapes, so they can neither drive the terminal (clear it,
 * recolour it, set its title) nor forge a line of `token list` or `audit log`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { terminalSafe } from '../src/cli/terminal-safe.js';
import { runMeridian } from './support/cli-kit.js';

const work = mkdtempSync(join(tmpdir(), 'meridian-sec-term-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const EVIL = 'evil\u001b[2J\u001b[31mRED\r\n#99  2026-12-01T00:00:00Z  alice (local)  rollout.approve  forged\u001b]0;pwned\u0007';

describe('F-9: control characters in terminal output', () => {
  it('token list and audit log print a hostile name on one line, without escapes', () => {
    const state = join(work, 'state.db');
    const made = runMeridian(['token', 'create', '--role', 'viewer', '--name', EVIL, '--state', state], { cwd: work, timeout: 60_000 });
    expect(made.code, made.err).toBe(0);
    for (const args of [
      ['token', 'list', '--state', state],
      ['audit', 'log', '--state', state],
    ]) {
      const r = runMeridian(args, { cwd: work, timeout: 60_000 });
      expect(r.code, r.err).toBe(0);
      // eslint-disable-next-line no-control-regex
      expect(r.out, args.join(' ')).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
      if (args[0] === 'token') expect(r.out.split('\n').filter((l) => l.includes('forged'))).toHaveLength(1);
      expect(r.out.split('\n').some((l) => l.startsWith('#99'))).toBe(false);
    }
  });

  it('escapes every control character visibly', () => {
    expect(terminalSafe('a\nb\u001b[2Jc\u009b\u2028')).toBe('a\\nb\\u001b[2Jc\\u009b\\u2028');
    expect(terminalSafe('plain — text ✓')).toBe('plain — text ✓');
  });
});
