/**
 * The dashboard's files as shipped: every module the page imports exists, the page keeps to its content
 * security policy (no inline scripts or styles, no HTML from strings), and the npm package carries the
 * files where the server looks for them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { vendorFile } from '../src/server/vendor-assets.js';
import { describe, expect, it } from 'vitest';
import { dashboardDir } from '../src/server/static.js';

const root = join(import.meta.dirname, '..');
const dir = join(root, 'src', 'server', 'dashboard');

function walk(d: string): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
}

const scripts = walk(join(dir, 'assets')).filter((f) => f.endsWith('.js'));

describe('dashboard assets', () => {
  it('is where the server looks for it', () => {
    expect(resolve(dashboardDir())).toBe(resolve(dir));
    expect(existsSync(join(dashboardDir(), 'index.html'))).toBe(true);
  });

  it('references only files that exist, from the page and from every module', () => {
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] ?? '');
    expect(refs).toContain('/assets/app.js');
    for (const r of refs) {
      // third-party files are served from the installed packages (src/server/vendor-assets.ts)
      if (r.startsWith('/assets/vendor/')) expect(vendorFile(r.slice('/assets/vendor/'.length)), r).toBeDefined();
      else expect(existsSync(join(dir, r)), r).toBe(true);
    }
    for (const file of scripts) {
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)) {
        const spec = m[1] ?? '';
        expect(
          spec.startsWith('./') || spec.startsWith('../'),
          `${relative(root, file)} imports ${spec}: only relative modules, no bundler`,
        ).toBe(true);
        expect(existsSync(resolve(dirname(file), spec)), `${relative(root, file)} imports ${spec}`).toBe(true);
      }
    }
  });

  it('keeps to a strict content security policy: no inline script or style, no markup from strings', () => {
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i);
    for (const file of scripts) {
      const src = readFileSync(file, 'utf8');
      expect(src, relative(root, file)).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
      expect(src, relative(root, file)).not.toMatch(/setAttribute\(\s*['"]style['"]/);
    }
  });

  it('ships in the npm package', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
    expect(files).toContain('src/server/dashboard/index.html');
    for (const f of scripts) expect(files).toContain(relative(root, f));
  });
});
