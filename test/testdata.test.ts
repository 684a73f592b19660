/**
 * Table-driven: every directory of testdata/ is a broken fleet (or `_valid`, a clean one) with an
 * expect.json naming exactly the findings it must produce — code, file (relative to the fixture),
 * line and column. A `previous/` fleet, when present, is what the clusters run now (for skew and surge).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { render } from '../src/render/render.js';
import { tryLoadFleet } from '../src/spec/load.js';
import { exitCodeFor } from '../src/validate/exit-code.js';
import type { Finding } from '../src/findings/finding.js';
import { preflight } from '../src/validate/preflight.js';
import { formatGithub, formatJson, formatJunit, formatText } from '../src/validate/report/index.js';

const ROOT = join(import.meta.dirname, '..', 'testdata');
const NOW = new Date('2026-06-01T12:00:00Z');

interface Expected {
  readonly description: string;
  readonly findings: readonly { code: string; file: string; line: number; col: number; waived?: boolean }[];
  readonly env?: Record<string, string>;
  readonly fixIncludes?: string;
  readonly mustNotContain?: readonly string[];
}

async function run(dir: string, env: Record<string, string>): Promise<{ findings: Finding[]; unusable: boolean }> {
  const loaded = tryLoadFleet(dir);
  if ('findings' in loaded) return { findings: loaded.findings, unusable: true };
  let recorded;
  if (existsSync(join(dir, 'previous'))) {
    const prev = tryLoadFleet(join(dir, 'previous'));
    if ('findings' in prev) throw new Error(`${dir}/previous does not load: ${JSON.stringify(prev.findings)}`);
    recorded = render(prev).revision.clusters;
  }
  const findings = await preflight({ loaded, rendered: render(loaded), now: NOW, env, ...(recorded ? { recorded } : {}) });
  return { findings, unusable: false };
}

const fixtures = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe('testdata', () => {
  it('has at least 30 broken fleets and one valid one', () => {
    expect(fixtures.filter((f) => f !== '_valid').length).toBeGreaterThanOrEqual(30);
    expect(fixtures).toContain('_valid');
  });

  it.each(fixtures)('%s', async (name) => {
    const dir = join(ROOT, name);
    const want = JSON.parse(readFileSync(join(dir, 'expect.json'), 'utf8')) as Expected;
    expect(want.description, 'expect.json says what the fixture breaks').toBeTruthy();
    const { findings, unusable } = await run(dir, want.env ?? {});
    const got = findings.map((f) => ({
      code: f.code,
      file: f.location ? relative(resolve(dir), resolve(f.location.file)) : '(none)',
      line: f.location?.line ?? 0,
      col: f.location?.col ?? 0,
      ...(f.waivedBy ? { waived: true } : {}),
    }));
    expect(got).toEqual(want.findings);

    // every finding says how to fix it, and where
    for (const f of findings) {
      expect(f.fix, `${f.code} has a fix`).toBeTruthy();
      expect(f.location, `${f.code} has a location`).toBeDefined();
    }
    if (want.fixIncludes) expect(findings.map((f) => f.fix).join('\n')).toContain(want.fixIncludes);

    // no reporter ever shows a secret value
    const outputs = [
      JSON.stringify(findings),
      formatText(findings),
      formatJson(findings),
      formatJunit(findings),
      formatGithub(findings),
    ].join('\n');
    for (const secret of want.mustNotContain ?? []) expect(outputs).not.toContain(secret);

    const code = exitCodeFor(findings, { unusable });
    if (name === '_valid' || want.findings.every((f) => f.waived || f.code.startsWith('MERIDIAN_W_'))) expect(code).toBe(0);
    else expect(code).toBe(unusable ? 2 : 1);
  });
});
