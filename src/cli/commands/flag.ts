/**
 * `meridian flag set|reset|get|list`: per-region feature flags. The fleet file's `flags:` are the defaults;
 * what operators set here is kept in the state store, audited with the actor, and served over OFREP
 * (docs/flags.md), which the router follows for its flag gates.
 */
import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import {
  describeGate,
  evaluateFlag,
  flagState,
  formatPercent,
  isFailure,
  unknownFlag,
  unknownRegion,
  type FlagState,
  type FlagView,
  type RegionGate,
} from '../../flags/index.js';
import { loadFleet } from '../../spec/load.js';
import { resolveStoreSpec } from '../../store/open-store.js';
import { resolveActor } from '../../store/actor.js';
import type { Fleet } from '../../spec/schema.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';

interface CommonFlags {
  fleet: string;
  state?: string;
  output: 'text' | 'json';
}

interface SetFlags extends CommonFlags {
  region?: string;
  percent?: string;
  on?: boolean;
  off?: boolean;
  reason?: string;
  actor?: string;
}

/** Reads the fleet's flag definitions and the store's settings into the effective state. */
async function currentState(fleet: Fleet, opts: CommonFlags, io: Io): Promise<FlagState> {
  const where = resolveStoreSpec(opts.state, { cwd: io.cwd, env: io.env });
  if (where.kind === 'sqlite' && !existsSync(where.path)) return flagState(fleet); // nothing set yet: create nothing
  const store = await storeFor(opts.state, io, { readonly: true });
  try {
    return flagState(fleet, await store.listFlagSettings(fleet.fleet));
  } finally {
    await store.close();
  }
}

function flagOf(fleet: Fleet, name: string): void {
  if (!Object.hasOwn(fleet.flags, name)) throw unknownFlag(name, fleet.fleet, Object.keys(fleet.flags));
}

/** The regions named by `--region` (a name or a comma-separated list), checked against the fleet. */
function regionsOf(fleet: Fleet, given: string | undefined): string[] {
  if (given === undefined || given.trim() === '') {
    throw new UsageError('name the region with --region', `the fleet's regions are: ${Object.keys(fleet.regions).join(', ')}`);
  }
  const names = [...new Set(given.split(',').map((r) => r.trim()))].filter((r) => r !== '');
  for (const r of names) if (!Object.hasOwn(fleet.regions, r)) throw unknownRegion(r, fleet.fleet, Object.keys(fleet.regions));
  return names;
}

function percentOf(given: string | undefined): number | undefined {
  if (given === undefined) return undefined;
  const p = Number(given.trim().replace(/%$/, ''));
  if (given.trim() === '' || !Number.isFinite(p) || p < 0 || p > 100) {
    throw new UsageError(
      `--percent must be a number from 0 to 100, not ${JSON.stringify(given)}`,
      'e.g. --percent 20 turns the flag on for 20% of users',
    );
  }
  return p;
}

function sourceText(g: RegionGate): string {
  if (g.source === 'operator') return `set by ${g.updatedBy ?? '?'} at ${g.updatedAt ?? '?'}`;
  return g.source === 'fleet' ? 'from the fleet file' : "the flag's default";
}

function gateJson(g: RegionGate): Record<string, unknown> {
  return { enabled: g.enabled, percent: g.percent, source: g.source, updatedBy: g.updatedBy ?? null, updatedAt: g.updatedAt ?? null };
}

function flagJson(f: FlagView): Record<string, unknown> {
  return {
    name: f.name,
    default: f.default,
    description: f.description,
    regions: Object.fromEntries(Object.entries(f.regions).map(([r, g]) => [r, gateJson(g)])),
  };
}

async function set(name: string, opts: SetFlags, io: Io): Promise<number> {
  const { fleet } = loadFleet(opts.fleet);
  flagOf(fleet, name);
  const regions = regionsOf(fleet, opts.region);
  if (opts.on && opts.off) throw new UsageError('--on and --off contradict each other', 'give one of them');
  const percent = percentOf(opts.percent);
  if (!opts.on && !opts.off && percent === undefined) {
    throw new UsageError(
      `say what to set for ${name}: --on, --off, or --percent P`,
      `e.g. meridian flag set ${name} --region ${regions[0] ?? 'REGION'} --off`,
    );
  }
  const actor = resolveActor(opts.actor, io.env);
  const store = await storeFor(opts.state, io);
  let before: FlagState;
  let after: FlagState;
  try {
    before = flagState(fleet, await store.listFlagSettings(fleet.fleet));
    const view = before.flags[name] as FlagView;
    await store.withTransaction(async (tx) => {
      for (const region of regions) {
        const was = view.regions[region] as RegionGate;
        // --percent alone turns the flag on at that share; --on keeps the region's share (100% if it had none)
        const enabled = !opts.off;
        const p = percent ?? (was.source === 'default' ? 100 : was.percent);
        await tx.setFlag(
          {
            fleet: fleet.fleet,
            flag: name,
            region,
            enabled,
            percent: p,
            was: { enabled: was.enabled, percent: was.percent, source: was.source },
          },
          actor,
          opts.reason,
        );
      }
    });
    after = flagState(fleet, await store.listFlagSettings(fleet.fleet));
  } finally {
    await store.close();
  }
  const changes = regions.map((region) => ({
    region,
    was: (before.flags[name] as FlagView).regions[region] as RegionGate,
    now: (after.flags[name] as FlagView).regions[region] as RegionGate,
  }));
  if (opts.output === 'json') {
    await write(
      io.out,
      `${JSON.stringify({ flag: name, fleet: fleet.fleet, actor: actor.id, changes: changes.map((c) => ({ region: c.region, was: gateJson(c.was), now: gateJson(c.now) })) }, null, 2)}\n`,
    );
    return 0;
  }
  const lines = changes.map((c) => `${name} in ${c.region}: ${describeGate(c.now)} (was ${describeGate(c.was)}, ${sourceText(c.was)})`);
  await write(
    io.out,
    `${lines.join('\n')}\nset by ${actor.id}; audited. Routers following the flags endpoint apply it within their polling interval (250 ms by default).\n`,
  );
  return 0;
}

async function reset(name: string, opts: SetFlags, io: Io): Promise<number> {
  const { fleet } = loadFleet(opts.fleet);
  flagOf(fleet, name);
  const regions = regionsOf(fleet, opts.region);
  const actor = resolveActor(opts.actor, io.env);
  const store = await storeFor(opts.state, io);
  let removed: string[] = [];
  let after: FlagState;
  try {
    removed = await store.withTransaction(async (tx) => {
      const out: string[] = [];
      for (const region of regions) if (await tx.resetFlag(fleet.fleet, name, region, actor, opts.reason)) out.push(region);
      return out;
    });
    after = flagState(fleet, await store.listFlagSettings(fleet.fleet));
  } finally {
    await store.close();
  }
  const view = after.flags[name] as FlagView;
  if (opts.output === 'json') {
    await write(io.out, `${JSON.stringify({ flag: name, reset: removed, now: flagJson(view) }, null, 2)}\n`);
    return 0;
  }
  const lines = regions.map((r) => {
    const g = view.regions[r] as RegionGate;
    return removed.includes(r)
      ? `${name} in ${r}: back to ${describeGate(g)} (${sourceText(g)})`
      : `${name} in ${r}: no operator setting to reset; it is ${describeGate(g)} (${sourceText(g)})`;
  });
  await write(io.out, `${lines.join('\n')}\n`);
  return 0;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

function gateCell(g: RegionGate): string {
  const text = g.enabled ? (g.percent >= 100 ? 'on' : formatPercent(g.percent)) : 'off';
  return g.source === 'operator' ? `${text}*` : text;
}

export function registerFlag(program: Command, io: Io, result: Result): void {
  const flag = program
    .command('flag')
    .description('per-region feature flags: set, reset, get, list (served over OFREP; see docs/flags.md)');
  const common = (c: Command): Command =>
    c
      .option('-f, --fleet <dir>', 'fleet directory or file', '.')
      .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'));

  common(
    flag
      .command('set')
      .description('turn a flag on or off, or set its percentage, in one or more regions (audited)')
      .argument('<name>', 'the flag, as declared under `flags:`')
      .option('-r, --region <names>', 'the region (or several, comma-separated)')
      .option('--percent <p>', 'on for this share of users, 0..100 (sticky per user)')
      .option('--on', 'turn it on (at its current percentage, or 100%)')
      .option('--off', 'turn it off: the kill switch')
      .option('--reason <text>', 'why, for the audit log')
      .option('--actor <id>', 'who changes it (default: MERIDIAN_ACTOR, GITHUB_ACTOR or the user)'),
  ).action(async (name: string, opts: SetFlags) => {
    result.code = await set(name, opts, io);
  });

  common(
    flag
      .command('reset')
      .description("remove operators' settings of a flag in one or more regions: back to the fleet file (audited)")
      .argument('<name>', 'the flag')
      .option('-r, --region <names>', 'the region (or several, comma-separated)')
      .option('--reason <text>', 'why, for the audit log')
      .option('--actor <id>', 'who changes it'),
  ).action(async (name: string, opts: SetFlags) => {
    result.code = await reset(name, opts, io);
  });

  common(
    flag
      .command('get')
      .description('a flag in every region; with --region (and --user), evaluate it as OFREP would')
      .argument('<name>', 'the flag')
      .option('-r, --region <name>', 'evaluate for this region')
      .option('-u, --user <key>', 'evaluate for this user (the targetingKey; the router uses the sticky id)'),
  ).action(async (name: string, opts: CommonFlags & { region?: string; user?: string }) => {
    const { fleet } = loadFleet(opts.fleet);
    flagOf(fleet, name);
    if (opts.region !== undefined && !Object.hasOwn(fleet.regions, opts.region))
      throw unknownRegion(opts.region, fleet.fleet, Object.keys(fleet.regions));
    const state = await currentState(fleet, opts, io);
    const view = state.flags[name] as FlagView;
    const evaluation =
      opts.region !== undefined
        ? evaluateFlag(state, name, { region: opts.region, ...(opts.user !== undefined ? { targetingKey: opts.user } : {}) })
        : null;
    if (opts.output === 'json') {
      await write(io.out, `${JSON.stringify({ ...flagJson(view), ...(evaluation ? { evaluation } : {}) }, null, 2)}\n`);
      result.code = 0;
      return;
    }
    const rows = [['region', 'state', 'source'], ...Object.entries(view.regions).map(([r, g]) => [r, describeGate(g), sourceText(g)])];
    let text = `${name}${view.description ? ` — ${view.description}` : ''} (default ${view.default ? 'on' : 'off'})\n${table(rows)}\n`;
    if (evaluation) {
      text += isFailure(evaluation)
        ? `evaluation in ${opts.region}: ${evaluation.errorCode}: ${evaluation.errorDetails}\n`
        : `evaluation in ${opts.region}${opts.user !== undefined ? ` for ${opts.user}` : ''}: ${evaluation.variant} (${evaluation.reason}${
            typeof evaluation.metadata['bucket'] === 'number' ? `, bucket ${evaluation.metadata['bucket']}` : ''
          })\n`;
    }
    await write(io.out, text);
    result.code = 0;
  });

  common(flag.command('list').description('every flag in every region')).action(async (opts: CommonFlags) => {
    const { fleet } = loadFleet(opts.fleet);
    const state = await currentState(fleet, opts, io);
    const views = Object.values(state.flags);
    if (opts.output === 'json') {
      await write(io.out, `${JSON.stringify({ fleet: state.fleet, regions: state.regions, flags: views.map(flagJson) }, null, 2)}\n`);
      result.code = 0;
      return;
    }
    if (views.length === 0) {
      await write(io.out, `the fleet ${state.fleet} declares no flags (add them under \`flags:\`)\n`);
      result.code = 0;
      return;
    }
    const rows = [
      ['flag', ...state.regions],
      ...views.map((f) => [f.name, ...state.regions.map((r) => gateCell(f.regions[r] as RegionGate))]),
    ];
    await write(io.out, `${table(rows)}\n* set by an operator (meridian flag get NAME shows who and when)\n`);
    result.code = 0;
  });
}
