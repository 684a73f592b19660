/** `meridian flag` as a user runs it: the built CLI, the example fleet, a real SQLite store in a temp dir. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const shop = join(root, 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-flag-cli-'));

function meridian(args: string[], env: Record<string, string> = {}): CliRun {
  return runMeridian(args, { cwd: work, actor: 'ci-bot', env });
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('meridian flag', () => {
  it('lists the fleet file’s flags without creating a store', () => {
    const r = meridian(['flag', 'list', '-f', shop]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^new-checkout\s+off\s+off\s+off\s+20%\s+50%\s+50%$/m);
    expect(r.out).toMatch(/^recommendations\s+on\s+on\s+off\s+on\s+on\s+on$/m);
    expect(existsSync(join(work, '.meridian', 'state.db'))).toBe(false);
  });

  it('sets a flag per region with the actor, shows it in list and get, and audits it', () => {
    const off = meridian([
      'flag',
      'set',
      'new-checkout',
      '--region',
      'eu-west',
      '--off',
      '-f',
      shop,
      '--actor',
      'alice',
      '--reason',
      'checkout errors',
    ]);
    expect(off.code, off.err).toBe(0);
    expect(off.out).toContain('new-checkout in eu-west: off (was on for 20% of users, from the fleet file)');
    const pct = meridian(['flag', 'set', 'new-checkout', '--region', 'us-east,us-west', '--percent', '5', '-f', shop]);
    expect(pct.code, pct.err).toBe(0);
    expect(pct.out).toContain('new-checkout in us-west: on for 5% of users (was on for 50% of users, from the fleet file)');

    expect(meridian(['flag', 'list', '-f', shop]).out).toMatch(/^new-checkout\s+off\s+off\s+off\s+off\*\s+5%\*\s+5%\*$/m);
    const json = JSON.parse(meridian(['flag', 'list', '-f', shop, '-o', 'json']).out) as {
      flags: { name: string; regions: Record<string, { enabled: boolean; percent: number; source: string; updatedBy: string | null }> }[];
    };
    expect(json.flags[0]?.regions['eu-west']).toMatchObject({ enabled: false, source: 'operator', updatedBy: 'alice' });
    expect(json.flags[0]?.regions['us-east']).toMatchObject({ enabled: true, percent: 5, source: 'operator', updatedBy: 'ci-bot' });

    const get = meridian(['flag', 'get', 'new-checkout', '-f', shop, '--region', 'us-east', '--user', 'u-42']);
    expect(get.out).toMatch(/^eu-west\s+off\s+set by alice at /m);
    expect(get.out).toMatch(/evaluation in us-east for u-42: (on|off) \(SPLIT, bucket \d+\)/);

    const log = JSON.parse(meridian(['audit', 'log', '-o', 'json']).out) as {
      action: string;
      subject: string;
      actor: { id: string };
      reason: string | null;
    }[];
    expect(log.map((e) => [e.action, e.subject, e.actor.id])).toEqual([
      ['flag.set', 'shop/new-checkout/eu-west', 'alice'],
      ['flag.set', 'shop/new-checkout/us-east', 'ci-bot'],
      ['flag.set', 'shop/new-checkout/us-west', 'ci-bot'],
    ]);
    expect(log[0]?.reason).toBe('checkout errors');
    expect(meridian(['audit', 'verify']).code).toBe(0);
  });

  it('resets a region to the fleet file', () => {
    const r = meridian(['flag', 'reset', 'new-checkout', '--region', 'eu-west', '-f', shop]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('new-checkout in eu-west: back to on for 20% of users (from the fleet file)');
    expect(JSON.parse(meridian(['audit', 'log', '-o', 'json', '-n', '1']).out)).toMatchObject([{ action: 'flag.reset' }]);
  });

  it('refuses bad names, regions and values with a did-you-mean and exit 2, changing nothing', () => {
    const before = meridian(['audit', 'log', '-o', 'json']).out;
    const name = meridian(['flag', 'set', 'new-chekout', '--region', 'eu-west', '--off', '-f', shop]);
    expect(name.code).toBe(2);
    expect(name.err).toContain('MERIDIAN_E_FLAG_UNKNOWN: the fleet shop has no flag "new-chekout"');
    expect(name.err).toContain('did you mean "new-checkout"?');
    const region = meridian(['flag', 'set', 'new-checkout', '--region', 'eu-west,eu-wst', '--off', '-f', shop]);
    expect(region.code).toBe(2);
    expect(region.err).toContain('MERIDIAN_E_FLAG_UNKNOWN_REGION: the fleet shop has no region "eu-wst"');
    expect(region.err).toContain('did you mean "eu-west"?');
    expect(meridian(['flag', 'get', 'recomendations', '-f', shop]).err).toContain('did you mean "recommendations"?');
    const pct = meridian(['flag', 'set', 'new-checkout', '--region', 'eu-west', '--percent', '150', '-f', shop]);
    expect(pct.code).toBe(2);
    expect(pct.err).toContain('--percent must be a number from 0 to 100');
    const nothing = meridian(['flag', 'set', 'new-checkout', '--region', 'eu-west', '-f', shop]);
    expect(nothing.code).toBe(2);
    expect(nothing.err).toContain('--on, --off, or --percent P');
    expect(meridian(['flag', 'set', 'new-checkout', '--on', '-f', shop]).err).toContain('name the region with --region');
    expect(meridian(['audit', 'log', '-o', 'json']).out).toBe(before);
  });
});
