/**
 * Attack suite, F-7 of the security review: `file:` secret references are confined to the fleet
 * directory. Before, `validate` answered "present" for a key of any file the runner could read (a
 * presence oracle), and `meridian up` resolved any file into a service's environment.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileSecretStore } from '../src/secrets/file.js';
import { parseSecretRef } from '../src/secrets/ref.js';
import { runMeridian } from './support/cli-kit.js';

const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-sec-secrets-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const outside = join(work, 'aws-credentials');
writeFileSync(outside, 'aws_secret_access_key=AKIA-OUTSIDE\n');

describe('F-7: file: references stay inside the fleet', () => {
  it.each(['../aws-credentials', '/etc/passwd', 'secrets/../../aws-credentials', '/proc/self/environ'])(
    'refuses the path %s as written',
    (path) => {
      expect(parseSecretRef(`file:${path}#KEY`)).toMatchObject({ error: expect.stringMatching(/inside the fleet directory/) });
    },
  );

  it('does not look into a file a symlink inside the fleet points out to', async () => {
    const dir = mkdtempSync(join(work, 'fleet-'));
    symlinkSync(outside, join(dir, 'creds.env'));
    const answer = await new FileSecretStore().has('creds.env', 'aws_secret_access_key', dir);
    expect(answer).toMatchObject({ error: expect.stringMatching(/outside the fleet directory/) });
  });

  it('validate says so, and is no presence oracle', () => {
    const dir = join(work, 'fleet-validate');
    cpSync(SHOP, dir, { recursive: true });
    const services = join(dir, 'services.yaml');
    writeFileSync(
      services,
      readFileSync(services, 'utf8').replace(
        'file:secrets/${cluster.name}.env#CATALOG_DB_PASSWORD',
        `file:${outside}#aws_secret_access_key`,
      ),
    );
    const r = runMeridian(['validate', dir, '-o', 'json'], { cwd: work, timeout: 60_000 });
    expect(r.code, 'validate fails').toBe(1);
    expect(r.out).toContain('MERIDIAN_E_SECRET_REF_INVALID');
    expect(r.out).not.toContain('AKIA-OUTSIDE');
  });
});
