/**
 * The package's scripts as a newcomer's `npm install` runs them: `prepare` compiles dist/ without the type
 * check (it emits the same JavaScript, in half the time: what `npm install` waits for), while `build` and
 * `npm test` still type-check, so a type error is still caught before anything is merged.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const scripts = (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> })
  .scripts;

describe('package scripts', () => {
  it('prepare builds what build builds, skipping only the type check; build and test still check', () => {
    const prepare = scripts['prepare'] ?? '';
    const build = scripts['build'] ?? '';
    expect(prepare).toContain('--noCheck');
    expect(prepare.replace(' --noCheck', '')).toBe(build);
    expect(build).not.toContain('--noCheck');
    expect(scripts['test']).toMatch(/npm run build && npm run typecheck/);
    expect(scripts['typecheck']).not.toContain('--noCheck');
  });
});
