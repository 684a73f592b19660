/**
 * The third-party files the dashboard's pictures use, served from the installed packages (nothing from a
 * CDN): d3-array and d3-geo (ISC) project the map, topojson-client (ISC) reads world-atlas's Natural Earth
 * countries (ISC; the data is public domain), uPlot (MIT) draws the time series. `/assets/vendor/LICENSES.txt`
 * serves their licences.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** URL name under /assets/vendor/ → package and file in it. */
export const VENDOR_ASSETS: Readonly<Record<string, { readonly pkg: string; readonly file: string }>> = {
  'd3-array.js': { pkg: 'd3-array', file: 'dist/d3-array.min.js' },
  'd3-geo.js': { pkg: 'd3-geo', file: 'dist/d3-geo.min.js' },
  'topojson-client.js': { pkg: 'topojson-client', file: 'dist/topojson-client.min.js' },
  'countries-110m.json': { pkg: 'world-atlas', file: 'countries-110m.json' },
  'uPlot.js': { pkg: 'uplot', file: 'dist/uPlot.iife.min.js' },
  'uPlot.css': { pkg: 'uplot', file: 'dist/uPlot.min.css' },
};

const require = createRequire(import.meta.url);

/** The installed directory of a package (found along Node's module paths, without loading it). */
function packageDir(pkg: string): string | undefined {
  for (const base of require.resolve.paths(pkg) ?? []) {
    const dir = join(base, pkg);
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  return undefined;
}

/** The file on disk for a vendor asset's URL name, or undefined. */
export function vendorFile(name: string): string | undefined {
  const a = VENDOR_ASSETS[name];
  if (!a) return undefined;
  const dir = packageDir(a.pkg);
  const file = dir && join(dir, a.file);
  return file && existsSync(file) ? file : undefined;
}

/** Every vendored package's name, version and licence text, for /assets/vendor/LICENSES.txt. */
export function vendorLicences(): string {
  const pkgs = [...new Set(Object.values(VENDOR_ASSETS).map((a) => a.pkg))];
  return pkgs
    .map((pkg) => {
      const dir = packageDir(pkg);
      if (!dir) return `${pkg}: not installed\n`;
      const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string; license?: string };
      const lic = ['LICENSE', 'LICENSE.md', 'LICENSE.txt'].map((f) => join(dir, f)).find((f) => existsSync(f));
      return `${pkg} ${meta.version ?? ''} (${meta.license ?? 'see below'})\n\n${lic ? readFileSync(lic, 'utf8') : ''}\n`;
    })
    .join(`\n${'-'.repeat(72)}\n\n`);
}
