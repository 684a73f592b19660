/** Every finding code the loader, render and preflight can produce is documented in docs/findings.md. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FINDING_CODES } from '../src/findings/codes.js';

const ROOT = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

describe('docs/findings.md', () => {
  it('documents every finding code', () => {
    const files = [
      ...sources('src/validate'),
      ...sources('src/secrets'),
      join(ROOT, 'src/spec/load.ts'),
      join(ROOT, 'src/spec/fleet-files.ts'),
      join(ROOT, 'src/spec/references.ts'),
      join(ROOT, 'src/render/render.ts'),
    ];
    const codes = new Set<string>();
    for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(/'(MERIDIAN_[EW]_[A-Z0-9_]+)'/g)) codes.add(m[1] as string);
    expect(codes.size).toBeGreaterThan(30);
    const doc = readFileSync(join(ROOT, 'docs/findings.md'), 'utf8');
    const missing = [...codes].filter((c) => !doc.includes(`\`${c}\``));
    expect(missing).toEqual([]);
    // the catalogue is exactly the codes the code can produce
    expect([...FINDING_CODES].sort()).toEqual([...codes].sort());
  });
});
