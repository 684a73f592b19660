/**
 * Attack suite, the fleet loader (security review F-4, F-13, F-17): what a pull request can commit into
 * a fleet directory. Symlinks out of the fleet, devices and FIFOs are refused without being read; files
 * and fleets over the size limits are refused; a map with 100,000 keys loads in linear time; a top-level
 * YAML file that is not a fleet file is skipped without its syntax errors quoting it.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tryLoadFleet } from '../src/spec/load.js';
import type { Finding } from '../src/findings/finding.js';
import { runMeridian } from './support/cli-kit.js';

const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-sec-input-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** A fresh copy of the shop fleet. */
function fleetCopy(): string {
  const dir = join(work, `fleet-${++n}`);
  cpSync(SHOP, dir, { recursive: true });
  return dir;
}

function findingsOf(dir: string, opts: Parameters<typeof tryLoadFleet>[1] = {}): Finding[] {
  const r = tryLoadFleet(dir, opts);
  return 'findings' in r ? r.findings : [];
}

const SECRET = 'AKIA-THIS-IS-THE-OUTSIDE-SECRET';

describe('F-4: the loader reads only regular files inside the fleet', () => {
  it('refuses a symlink out of the fleet without reading it', () => {
    const outside = join(work, 'aws-credentials');
    writeFileSync(outside, `[default]\naws_secret_access_key = ${SECRET}\n- list: after a map\n`);
    const dir = fleetCopy();
    symlinkSync(outside, join(dir, 'zz.yaml'));
    const f = findingsOf(dir);
    expect(f.map((x) => x.code)).toContain('MERIDIAN_E_FILE_REFUSED');
    expect(f.find((x) => x.code === 'MERIDIAN_E_FILE_REFUSED')?.message).toMatch(/zz\.yaml is a link out of the fleet directory/);
    expect(JSON.stringify(f)).not.toContain(SECRET);
  });

  it('follows a symlink to another file of the fleet; a link to nothing cannot be read', () => {
    const dir = fleetCopy();
    mkdirSync(join(dir, 'more'));
    writeFileSync(join(dir, 'more', 'extra.yaml'), 'apiVersion: meridian/v1\nfleet: shop\n');
    symlinkSync(join(dir, 'more', 'extra.yaml'), join(dir, 'extra.yaml'));
    expect(findingsOf(dir)).toEqual([]);
    symlinkSync(join(dir, 'gone.txt'), join(dir, 'zz.yaml'));
    expect(findingsOf(dir).map((x) => `${x.code} ${x.message}`)).toEqual([
      expect.stringMatching(/^MERIDIAN_E_FILE_UNREADABLE .*zz\.yaml is a symbolic link to nothing$/),
    ]);
  });

  it('answers at once for a link to /dev/zero, and does not hang on a FIFO', () => {
    const zero = fleetCopy();
    symlinkSync('/dev/zero', join(zero, 'zz.yaml'));
    const a = runMeridian(['validate', zero], { cwd: work, timeout: 60_000 });
    expect(a.code, a.err).toBe(2);
    expect(a.out + a.err).toContain('MERIDIAN_E_FILE_REFUSED');
    const fifo = fleetCopy();
    execFileSync('mkfifo', [join(fifo, 'zz.yaml')]);
    const b = runMeridian(['validate', fifo], { cwd: work, timeout: 60_000 });
    expect(b.code, 'killed by the timeout: the loader hung on the FIFO').toBe(2);
    expect(b.out + b.err).toMatch(/zz\.yaml is a FIFO/);
  });
});

describe('F-13: size limits, and a map with many keys', () => {
  it('refuses a file over the file limit and a fleet over the total limit', () => {
    const dir = fleetCopy();
    const big = findingsOf(dir, { limits: { maxFileBytes: 1000, maxTotalBytes: 1e9 } });
    expect(big.map((f) => f.code)).toContain('MERIDIAN_E_FILE_TOO_LARGE');
    const total = findingsOf(dir, { limits: { maxFileBytes: 1e6, maxTotalBytes: 3000 } });
    expect(total.find((f) => f.code === 'MERIDIAN_E_FILE_TOO_LARGE')?.message).toMatch(/limit for all its files together/);
  });

  it('the environment sets the limits', () => {
    const dir = fleetCopy();
    const r = runMeridian(['validate', dir], { cwd: work, env: { MERIDIAN_FLEET_MAX_FILE_SIZE: '1Ki' }, timeout: 60_000 });
    expect(r.code).toBe(2);
    expect(r.out).toContain('MERIDIAN_E_FILE_TOO_LARGE');
  });

  it('still finds a duplicate key, with its position', () => {
    const dir = fleetCopy();
    const text = readFileSync(join(dir, 'services.yaml'), 'utf8').replace(/^(\s+)image: (.*)$/m, '$1image: $2\n$1image: $2');
    writeFileSync(join(dir, 'services.yaml'), text);
    const f = findingsOf(dir);
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ code: 'MERIDIAN_E_DUPLICATE_KEY', location: { file: expect.stringContaining('services.yaml') } });
    expect(f[0]?.location?.line).toBeGreaterThan(1);
  });

  // 100,000 keys in one map: the review measured 114 s (quadratic duplicate check); now a few seconds
  it('loads a map of 100,000 keys', { timeout: 60_000 }, () => {
    const dir = fleetCopy();
    const keys = Array.from({ length: 100_000 }, (_, i) => `      K${i}: v${i}`).join('\n');
    const text = readFileSync(join(dir, 'services.yaml'), 'utf8').replace(/^( {4}env:\n)/m, `$1${keys}\n`);
    writeFileSync(join(dir, 'services.yaml'), text);
    const r = tryLoadFleet(dir);
    expect('findings' in r ? r.findings : []).toEqual([]);
    expect('fleet' in r && Object.keys(r.fleet.services['web']?.env ?? {}).length).toBeGreaterThanOrEqual(100_000);
  });
});

describe('F-17: non-fleet YAML files', () => {
  it('skips a top-level file that is not a fleet file, even with a syntax error, and never quotes it', () => {
    const dir = fleetCopy();
    writeFileSync(join(dir, 'local-secrets.yaml'), '- PSP_API_TOKEN=tok_ABCDEF123456\nCATALOG_DB_PASSWORD: hunter2-TOPSECRET\n');
    expect(findingsOf(dir)).toEqual([]);
  });

  it('reports a syntax error in a fleet file without quoting its text', () => {
    const dir = fleetCopy();
    writeFileSync(join(dir, 'zz.yaml'), 'apiVersion: meridian/v1\nfleet: shop\n] hunter2-TOPSECRET\n');
    const f = findingsOf(dir);
    expect(f.map((x) => x.code)).toContain('MERIDIAN_E_YAML_SYNTAX');
    expect(JSON.stringify(f)).not.toContain('hunter2');
  });
});
