/**
 * The layering rule (eslint.config.js, run by `npm run lint`) can fail: an import up the floors and an
 * import cycle, planted in memory beside the real files, are both reported; and every room of src/ has
 * a floor, so a new room cannot slip past the rule.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const { LAYERS } = (await import(pathToFileURL(join(ROOT, 'eslint.config.js')).href)) as { LAYERS: readonly (readonly string[])[] };

/** Lints `code` as if it were the file `path` (relative to the repository); the other files are read from disk. */
async function lintAs(path: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('the layering rule', () => {
  it('puts every room of src/ on a floor', () => {
    const rooms = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
      .map((e) => (e.isDirectory() ? e.name : e.name.endsWith('.ts') ? e.name : null))
      .filter((r): r is string => r !== null);
    const placed = LAYERS.flat();
    expect(rooms.filter((r) => !placed.includes(r))).toEqual([]);
    expect(placed.filter((r) => !rooms.includes(r))).toEqual([]); // and no floor names a room that is gone
  });

  it('fails on an import up the floors', async () => {
    // render (pure, low) reaching up into plan
    const messages = await lintAs('src/render/planted.ts', "import type { Plan } from '../plan/plan.js';\nexport type Planted = Plan;\n");
    expect(messages).toEqual([
      expect.stringMatching(
        /^import-x\/no-restricted-paths: Unexpected path "\.\.\/plan\/plan\.js" imported in restricted zone\. src\/render is on floor \d+ of \d+/,
      ),
    ]);
  }, 60_000);

  it('fails on an import cycle', async () => {
    // spec/load.ts imports errors.ts (InputError); errors.ts importing the loader back closes a circle (and climbs)
    const errors = readFileSync(join(ROOT, 'src/errors.ts'), 'utf8');
    const messages = await lintAs(
      'src/errors.ts',
      `${errors}\nimport { loadFleet } from './spec/load.js';\nexport const planted = loadFleet;\n`,
    );
    expect(messages).toContain('import-x/no-cycle: Dependency cycle detected');
    expect(messages.some((m) => m.startsWith('import-x/no-restricted-paths:') && m.includes('src/errors.ts is on floor 2'))).toBe(true);
  }, 60_000);

  it('passes the files as they are', async () => {
    const finding = readFileSync(join(ROOT, 'src/findings/finding.ts'), 'utf8');
    expect(await lintAs('src/findings/finding.ts', finding)).toEqual([]);
  }, 60_000);
});
