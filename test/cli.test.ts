/** The `meridian` command end to end, as a user runs it: real processes, real files, real SQLite. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyPlan } from '../src/plan/plan.js';
import { runMeridian, type CliRun } from './support/cli-kit.js';

const root = join(import.meta.dirname, '..');
const shop = join(root, 'examples', 'shop');

function meridian(args: string[], cwd = root): CliRun {
  return runMeridian(args, { cwd, actor: 'ci-bot' });
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
});

describe('meridian validate', () => {
  it('passes the example fleet with exit 0, showing the waived finding', () => {
    const r = meridian(['validate', shop]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/0 errors, 0 warnings, 1 waived/);
  });

  it('exits 2 on unusable input and reports the code and location in every format', () => {
    const dir = join(root, 'testdata', 'unknown-key');
    const text = meridian(['validate', dir]);
    expect(text.code).toBe(2);
    expect(text.out).toMatch(/fleet\.yaml:\d+:\d+\s+MERIDIAN_E_UNKNOWN_KEY/);
    const json = JSON.parse(meridian(['validate', dir, '-o', 'json']).out) as { ok: boolean; findings: { code: string }[] };
    expect(json.ok).toBe(false);
    expect(json.findings[0]?.code).toBe('MERIDIAN_E_UNKNOWN_KEY');
    expect(meridian(['validate', dir, '-o', 'junit']).out).toMatch(/<testsuite[^>]+failures="1"/);
    expect(meridian(['validate', dir, '-o', 'github']).out).toMatch(
      /^::error file=.*fleet\.yaml,line=\d+,col=\d+,title=MERIDIAN_E_UNKNOWN_KEY::/m,
    );
  });

  it('exits 1 on findings, and writes a JUnit report beside the text with --report', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'meridian-cli-')), 'junit.xml');
    const r = meridian(['validate', join(root, 'testdata', 'image-unpinned'), '-o', 'junit', '--report', out, '--no-state']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/MERIDIAN_E_IMAGE_UNPINNED/);
    expect(readFileSync(out, 'utf8')).toMatch(/^<\?xml/);
  });

  it('says clearly when there is no fleet, and rejects a bad flag value with exit 2', () => {
    const none = meridian(['validate', '/nonexistent/fleet']);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/MERIDIAN_E_FLEET_NOT_FOUND: no fleet at \/nonexistent\/fleet/);
    expect(none.err).toMatch(/fix:/);
    const bad = meridian(['validate', shop, '-o', 'xml']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/Allowed choices are text, json, junit, github/);
  });
});

describe('meridian render', () => {
  it('is byte-identical across runs and explains a value down to file:line', () => {
    const a = meridian(['render', shop]);
    const b = meridian(['render', shop]);
    expect(a.code).toBe(0);
    expect(a.out.length).toBeGreaterThan(1000);
    expect(a.out).toBe(b.out);
    const e = meridian(['render', shop, '--cluster', 'us-east-1', '--explain', 'web.replicas']);
    expect(e.code).toBe(0);
    expect(e.out).toMatch(
      /^web\.replicas on us-east-1 = \d+\n {2}set by (service|override\[\d+\]) \(services\.web\..*\) at .*\.yaml:\d+:\d+/,
    );
  });
});

describe('meridian plan and audit', () => {
  it('records the revision once, saves a self-verifying plan, and audit verify names an edited entry', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'meridian-cli-'));
    const first = meridian(['plan', shop, '--out', 'plan.json'], cwd);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/recorded in .*state\.db/);
    expect(first.out).toMatch(/Blast radius/);
    const again = meridian(['plan', shop], cwd);
    expect(again.out).toMatch(/already recorded/);
    const plan = verifyPlan(JSON.parse(readFileSync(join(cwd, 'plan.json'), 'utf8')));
    expect(plan.waves.map((w) => w.name)).toEqual(['canary', 'europe', 'americas', 'rest']);

    const log = meridian(['audit', 'log'], cwd);
    expect(log.out.trim().split('\n')).toHaveLength(1);
    expect(log.out).toMatch(/^#1 .* ci-bot .*revision\.create/);
    const ok = meridian(['audit', 'verify'], cwd);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/ok: 1 entries/);

    // edit one byte of the entry in the database file itself, as an attacker with the file would
    const db = join(cwd, '.meridian', 'state.db');
    const bytes = readFileSync(db);
    const at = bytes.indexOf(Buffer.from('planned from'));
    expect(at).toBeGreaterThan(0);
    bytes[at] = 'P'.charCodeAt(0);
    writeFileSync(db, bytes);
    const broken = meridian(['audit', 'verify'], cwd);
    expect(broken.code).toBe(1);
    expect(broken.out).toMatch(/broken: entry #1 edited/);
  });
});

describe('meridian route simulate', () => {
  it('moves traffic away from a failed cluster and never sends locked EU traffic outside the EU', () => {
    const base = JSON.parse(meridian(['route', 'simulate', shop, '--service', 'web', '-o', 'json']).out) as {
      services: Record<string, Record<string, { clusters: Record<string, { stable: number }> }>>;
    };
    expect(Object.keys(base.services['web']?.['eu-west']?.clusters ?? {}).sort()).toEqual(['eu-west-1', 'eu-west-2']);
    const down = JSON.parse(
      meridian(['route', 'simulate', shop, '--service', 'web', '--drain', 'eu-west', '-o', 'json']).out,
    ) as typeof base;
    const euWest = down.services['web']?.['eu-west']?.clusters ?? {};
    expect(Object.keys(euWest)).toEqual(['eu-central-1']);
    const text = meridian(['route', 'simulate', shop, '--down', 'nope']);
    expect(text.code).toBe(2);
    expect(text.err).toMatch(/no cluster named nope/);
  });
});

describe('meridian schema', () => {
  it('prints the JSON Schema', () => {
    const r = meridian(['schema']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { title: string }).title).toBe('Meridian fleet description');
  });
});

describe('meridian command loading', () => {
  it('loads only the command it runs, lists every command in help, and suggests one for a typo', async () => {
    const { Command } = await import('commander');
    const { COMMAND_NAMES, registerCommands } = await import('../src/cli/commands/index.js');
    const { processIo } = await import('../src/cli/io.js');
    const names = async (argv: string[]): Promise<string[]> => {
      const program = new Command('meridian');
      await registerCommands(program, processIo(), { code: 0 }, argv);
      return program.commands.map((c) => c.name()).sort();
    };
    expect(await names(['--version'])).toEqual([]);
    expect(await names(['flag', 'get', 'x'])).toEqual(['flag']);
    expect(await names(['reject', 'r1'])).toEqual(['approve', 'reject']); // one module registers both
    expect(await names([])).toEqual([...COMMAND_NAMES].sort());
    expect(await names(['--help'])).toEqual([...COMMAND_NAMES].sort());
    expect(await names(['valdate'])).toEqual([...COMMAND_NAMES].sort());

    expect(meridian(['--version']).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = meridian(['--help']).out;
    for (const name of COMMAND_NAMES) expect(help).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
    const typo = meridian(['valdate', 'examples/shop']);
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/unknown command 'valdate'[\s\S]*Did you mean validate\?/);
    const sub = meridian(['reject', '--help']);
    expect(sub.code).toBe(0);
    expect(sub.out).toMatch(/Usage: meridian reject/);
    expect(meridian(['help', 'reject']).out).toBe(sub.out);
  });

  it('lists each command in --help as its own module describes it (from the build, without loading the modules)', async () => {
    const { Command } = await import('commander');
    const { registerCommands } = await import('../src/cli/commands/index.js');
    const { processIo } = await import('../src/cli/io.js');
    const program = new Command('meridian');
    await registerCommands(program, processIo(), { code: 0 }, [], { summaries: false });
    const help = program.createHelp();
    const flat = (t: string): string => t.replace(/\s+/g, ' ');
    const listed = flat(meridian(['--help']).out);
    expect(program.commands.length).toBeGreaterThan(15);
    for (const c of program.commands) expect(listed).toContain(flat(`  ${help.subcommandTerm(c)} ${help.subcommandDescription(c)}`));
    expect(listed).toContain(' help [command] display help for command');
  });
});
