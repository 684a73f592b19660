/**
 * `meridian rollout`: runs a plan against the fleet, wave by wave, as a persisted state machine
 * (`--resume` carries on after a crash); `rollout status`, and the operator's `pause`, `resume`,
 * `abort` and `promote`. Exit codes by outcome (src/cli/exit-codes.ts): promoted 0, rolled back 4,
 * paused 5, locked 6, rollback failed 7.
 */
import { Option, type Command } from 'commander';
import { PlanError, RolloutError, UsageError } from '../../errors.js';
import { baselineRevisionId, makePlan, verifyPlan, type Plan } from '../../plan/plan.js';
import { createRollout, type DriveResult, newRolloutId, requestControl, RolloutEngine, takeOver } from '../../rollout/engine.js';
import { describeEvent, eventJson } from '../../rollout/events.js';
import { holderFor, type Holder } from '../../rollout/lock.js';
import { type EngineClock, systemClock } from '../../rollout/ports.js';
import { asSpec, rolloutSpecFromPlan, type RolloutSpec } from '../../rollout/rollout-spec.js';
import { assertNoContractWithNewVersion, migrationRuns } from '../../rollout/data-migrations.js';
import { ProcessMigrationRunner } from '../../rollout/migration-runner.js';
import { rolloutView, statusText, summaryMarkdown } from '../../rollout/summary.js';
import type { ControlAction } from '../../rollout/state-machine.js';
import type { Actor, RolloutRecord, Store } from '../../store/store.js';
import {
  type ClusterWiring,
  clustersOf,
  connectFleet as connectClusters,
  type ControlEndpoint,
  type FleetConnection,
} from '../../fleet/connect.js';
import { parseDuration } from '../../units/duration.js';
import { startTracing } from '../../telemetry/tracing.js';
import { EXIT } from '../exit-codes.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';
import { clientShares } from '../../routing/traffic-table.js';
import { loadAndRender } from './render.js';
import { readUpInfo } from '../up-info.js';
import { writeNamedFile } from '../options.js';
import { readSavedPlan } from '../saved-plan.js';
import { driverActor } from '../server-actor.js';

/** Flags shared by the commands that drive a rollout. */
export interface DriveFlags {
  state?: string;
  actor?: string;
  server?: string;
  control?: string;
  wait?: boolean;
  output: 'text' | 'jsonl';
  summary?: string;
  healthTimeout: string;
  lockTtl: string;
  poll: string;
  otlp?: string;
  forceConflicts?: boolean;
}

/** Adds the flags of {@link DriveFlags} to a command. */
export function driveOptions(cmd: Command): Command {
  return cmd
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL); default .meridian/state.db or MERIDIAN_STATE')
    .option('--actor <id>', 'who acts (default: MERIDIAN_ACTOR, GITHUB_ACTOR or the user)')
    .option(
      '--server <url>',
      'who acts is the identity this control plane (`meridian serve`) gives the token in MERIDIAN_SERVER_TOKEN (an API token or a CI OIDC ID token; role deployer or admin)',
    )
    .option('--control <url>', "the fleet's control API (default: from .meridian/up.json; token from MERIDIAN_CONTROL_TOKEN)")
    .option('--wait', 'wait for approvals and for a paused rollout to be resumed, instead of exiting with 5')
    .addOption(
      new Option('-o, --output <format>', 'progress format: text on stderr, or one JSON object per event on stdout')
        .choices(['text', 'jsonl'])
        .default('text'),
    )
    .option('--summary <file>', 'append a Markdown summary to FILE (e.g. $GITHUB_STEP_SUMMARY)')
    .option('--health-timeout <duration>', 'how long a deploy, promotion or rollback may take to report healthy', '5m')
    .option('--lock-ttl <duration>', 'a driver whose heartbeat is older than this is dead and its lock is taken over', '30s')
    .option('--poll <duration>', 'between looks at status, controls and approvals', '200ms')
    .option('--force-conflicts', 'kubernetes clusters: take over fields that another field manager owns (server-side apply force)')
    .option(
      '--otlp <url>',
      'export the rollout’s trace over OTLP/HTTP to this collector (default: OTEL_EXPORTER_OTLP_ENDPOINT; off when unset)',
    );
}

function durationFlag(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new UsageError(`${flag} must be a duration like 30s, 5m or 250ms, not ${JSON.stringify(value)}`);
  return ms;
}

/** The exit code of a drive's outcome. */
export function exitCodeOf(outcome: DriveResult['outcome']): number {
  switch (outcome) {
    case 'promoted':
      return EXIT.ok;
    case 'rolled-back':
      return EXIT.rolledBack;
    case 'paused':
    case 'awaiting-approval':
      return EXIT.paused;
    case 'failed':
      return EXIT.rollbackFailed;
  }
}

/**
 * Connects the fleet's clusters (src/fleet): local ones through the control API — `--control` (token from
 * MERIDIAN_CONTROL_TOKEN), else .meridian/up.json — and kubernetes ones through their API servers.
 */
export function connectFleet(
  io: Io,
  control: string | undefined,
  clusters: Readonly<Record<string, ClusterWiring>>,
  opts: { fleetDir?: string; forceConflicts?: boolean } = {},
): Promise<FleetConnection> {
  return connectClusters({
    clusters,
    control: () => controlEndpoint(io, control),
    fleetDir: opts.fleetDir ?? io.cwd,
    env: io.env,
    forceConflicts: opts.forceConflicts ?? false,
  });
}

function controlEndpoint(io: Io, control?: string): ControlEndpoint {
  if (control !== undefined) {
    const token = io.env['MERIDIAN_CONTROL_TOKEN'];
    if (!token)
      throw new UsageError(
        '--control needs the API token in MERIDIAN_CONTROL_TOKEN',
        'copy it from .meridian/up.json of the `meridian up` that serves it',
      );
    return { url: control, token };
  }
  const info = readUpInfo(io);
  if (!info || !info.control || !info.token) {
    throw new RolloutError(
      'MERIDIAN_E_ROLLOUT_NO_FLEET',
      `no local fleet with a control API is running here (${io.cwd}/.meridian/up.json)`,
      {
        hint: 'start it with `meridian up --detach` in this directory, or pass --control URL with MERIDIAN_CONTROL_TOKEN',
      },
    );
  }
  return { url: info.control, token: info.token };
}

/** Finds a rollout: by id, else the newest unfinished one (of `fleet` when given). */
export async function findRollout(
  store: Store,
  id: string | undefined,
  opts: { fleet?: string; activeOnly?: boolean } = {},
): Promise<RolloutRecord> {
  if (id !== undefined) {
    const r = await store.getRollout(id);
    if (!r)
      throw new RolloutError('MERIDIAN_E_ROLLOUT_UNKNOWN', `there is no rollout ${id} in ${store.location}`, {
        hint: 'list them with `meridian rollout status`',
      });
    return r;
  }
  const [active] = await store.listRollouts({ fleet: opts.fleet, active: true, limit: 1 });
  if (active) return active;
  if (!opts.activeOnly) {
    const [last] = await store.listRollouts({ fleet: opts.fleet, limit: 1 });
    if (last) return last;
  }
  throw new RolloutError('MERIDIAN_E_ROLLOUT_UNKNOWN', `there is no ${opts.activeOnly ? 'unfinished ' : ''}rollout in ${store.location}`, {
    hint: 'start one with `meridian rollout FLEET`, or name one with --rollout ID',
  });
}

/** Drives a rollout this process holds, printing progress, and returns the exit code. */
export async function driveAndReport(
  io: Io,
  store: Store,
  id: string,
  holder: Holder,
  flags: DriveFlags,
  opts: { clock?: EngineClock; fleetDir?: string } = {},
): Promise<number> {
  const crashAt = Number(io.env['MERIDIAN_TEST_CRASH_AT'] ?? '0');
  const s = io.errStyle;
  const first = await store.getRollout(id);
  if (!first) throw new RolloutError('MERIDIAN_E_ROLLOUT_UNKNOWN', `there is no rollout ${id}`);
  const spec = asSpec(first.spec);
  const revisions = await Promise.all([spec.revision, spec.previous].map((r) => (r ? store.getRevision(r) : undefined)));
  const fleet = await connectFleet(io, flags.control, clustersOf(...revisions.reverse()), {
    ...(opts.fleetDir !== undefined ? { fleetDir: opts.fleetDir } : {}),
    forceConflicts: flags.forceConflicts ?? false,
  });
  const tracing = await startTracing({ otlp: flags.otlp, serviceName: 'meridian', env: io.env });
  // loaded only when tracing is on, as the OpenTelemetry SDK is
  const traces = tracing ? (await import('../../rollout/rollout-tracing.js')).rolloutTracer(tracing) : null;
  const onEvent = (e: Parameters<typeof describeEvent>[0]): void => {
    traces?.observe(e, first);
    if (flags.output === 'jsonl') io.out.write(`${JSON.stringify(eventJson(e))}\n`);
    else io.err.write(`${s.dim(`${new Date(e.at).toISOString().slice(11, 19)} ${id}`)} ${describeEvent(e, spec)}\n`);
    if (crashAt > 0 && e.seq === crashAt) process.kill(process.pid, 'SIGKILL'); // the crash test's hook
  };
  // the events so far (the creation, or what a crashed driver left), so that a reader sees the whole log
  for (const e of await store.listRolloutEvents(id)) {
    traces?.observe(e, first, { replay: true }); // spans that ended before were exported by whoever saw them
    if (flags.output === 'jsonl') io.out.write(`${JSON.stringify(eventJson(e))}\n`);
    else io.err.write(`${s.dim(`${new Date(e.at).toISOString().slice(11, 19)} ${id}`)} ${describeEvent(e, spec)}\n`);
    if (crashAt > 0 && e.seq === crashAt && e.type === 'created') process.kill(process.pid, 'SIGKILL');
  }
  const engine = new RolloutEngine(
    {
      store,
      driver: fleet.target,
      traffic: fleet.traffic,
      analysis: fleet.analysis(spec),
      clock: opts.clock ?? systemClock,
      migrations: new ProcessMigrationRunner({ env: io.env }),
    },
    {
      wait: flags.wait ?? false,
      healthTimeoutMs: durationFlag('--health-timeout', flags.healthTimeout),
      lockTtlMs: durationFlag('--lock-ttl', flags.lockTtl),
      pollMs: durationFlag('--poll', flags.poll),
      onEvent,
    },
  );
  let result: DriveResult;
  try {
    result = await engine.drive(id, holder);
  } finally {
    await fleet.close();
    await tracing?.shutdown();
  }
  const code = exitCodeOf(result.outcome);
  const r = result.rollout;
  if (flags.summary !== undefined) {
    const view = rolloutView(r, spec, await store.listRolloutEvents(id), await store.listApprovals(spec.planHash), Date.now());
    writeNamedFile('--summary', flags.summary, summaryMarkdown(view, code), { append: true });
  }
  if (flags.output === 'jsonl') {
    io.out.write(
      `${JSON.stringify({ type: 'rollout.result', rollout: id, outcome: result.outcome, state: r.state, reason: result.reason, exitCode: code })}\n`,
    );
  } else {
    const st = io.style;
    const color =
      result.outcome === 'promoted' ? st.green : result.outcome === 'rolled-back' || result.outcome === 'failed' ? st.red : st.yellow;
    const label = spec.kind === 'rollback' && result.outcome === 'promoted' ? 'completed' : result.outcome;
    let text = `${spec.kind} ${id} ${color(label)}${result.reason ? `: ${result.reason}` : ''}\n`;
    if (result.outcome === 'awaiting-approval') {
      const wave = spec.config.waves[r.wave];
      text += `  approve it (someone other than ${spec.authors.join(', ')}): meridian approve --rollout ${id} --wave ${wave?.name ?? '?'} --role ${wave?.approvals?.roles[0] ?? 'ROLE'}\n`;
      text += `  then carry on: meridian rollout --resume ${id}\n`;
    } else if (result.outcome === 'paused') {
      text += `  resume: meridian rollout resume --rollout ${id}    abort (rolls back): meridian rollout abort --rollout ${id}\n`;
    }
    await write(io.out, text);
  }
  return code;
}

interface RolloutFlags extends DriveFlags {
  plan?: string;
  resume?: string | true;
  healthyChecks: string;
}

async function startRollout(dirArg: string | undefined, flags: RolloutFlags, io: Io): Promise<number> {
  const actor = await driverActor(flags, io);
  const store = await storeFor(flags.state, io);
  try {
    if (flags.resume !== undefined) {
      const r = await findRollout(store, flags.resume === true ? undefined : flags.resume, { activeOnly: true });
      const holder = holderFor(r.id, actor);
      await takeOver(store, r.id, holder, { now: Date.now(), lockTtlMs: durationFlag('--lock-ttl', flags.lockTtl) });
      return await driveAndReport(io, store, r.id, holder, flags);
    }
    const saved = flags.plan !== undefined ? readSavedPlan(flags.plan, dirArg) : undefined;
    const dir = saved?.dir ?? dirArg ?? '.';
    const { loaded, rendered } = loadAndRender(dir);
    const revision = rendered.revision;
    const states = await store.clusterStates();
    let plan: Plan;
    if (saved) {
      plan = verifyPlan(saved.plan, { fleet: loaded.fleet.fleet, revision: revision.id });
    } else {
      const baseline = baselineRevisionId(states);
      const previous = baseline ? await store.getRevision(baseline) : undefined;
      plan = makePlan({ fleet: loaded.fleet, revision, previous, recorded: states, shares: clientShares(revision), now: io.now() });
    }
    await store.putRevision(revision, actor, `rollout of ${dir}`);
    const changed = plan.summary.create + plan.summary.update;
    const current = Object.keys(revision.clusters).every((c) => states[c]?.revisionId === revision.id);
    const still = changed === 0 || current;
    // data migrations the ledger does not record as applied, in the regions this rollout moves (or all, when it moves none)
    const moving = still ? Object.keys(revision.clusters) : plan.waves.flatMap((w) => w.clusters);
    const runs = migrationRuns(loaded.fleet, revision, moving, await store.listDataMigrations(loaded.fleet.fleet));
    assertNoContractWithNewVersion(runs, revision, Object.fromEntries(Object.entries(states).map(([c, r]) => [c, r.state])));
    if (still && runs.length > 0) plan = { ...plan, waves: plan.waves.map((w) => ({ ...w, clusters: [] })) }; // migrations alone
    if (still && runs.length === 0) {
      await write(io.out, `nothing to roll out: every cluster already runs revision ${revision.id}\n`);
      return EXIT.ok;
    }
    const stale = Object.entries(plan.from).filter(([c, rev]) => (states[c]?.revisionId ?? null) !== rev);
    if (stale.length > 0) {
      const [c, rev] = stale[0] ?? ['', null];
      throw new PlanError(
        'MERIDIAN_E_PLAN_STALE',
        `the plan was made when cluster ${c} ran ${rev ?? 'nothing'}, but it now runs ${states[c]?.revisionId ?? 'nothing'} (${stale.length} cluster(s) changed since)`,
        'make the plan again with `meridian plan --out FILE` (approvals given for the old plan do not carry over)',
      );
    }
    const services = new Set<string>();
    for (const c of Object.values(revision.clusters)) for (const s of Object.keys(c.services)) services.add(s);
    for (const r of Object.values(states)) for (const s of Object.keys(r.state.services)) services.add(s);
    const recordedBy = (await store.listRevisions()).find((r) => r.id === revision.id)?.createdBy;
    const healthyChecks = Number.parseInt(flags.healthyChecks, 10);
    if (!Number.isInteger(healthyChecks) || healthyChecks < 1)
      throw new UsageError('--healthy-checks must be a whole number of at least 1');
    const spec: RolloutSpec = rolloutSpecFromPlan(plan, loaded.fleet, [...services], [actor.id, ...(recordedBy ? [recordedBy] : [])], {
      healthyChecks,
      ...(runs.length > 0 ? { migrations: { runs, revision, dir: loaded.dir } } : {}),
    });
    // fail before anything is recorded when a driver cannot be set up (no local fleet, a bad kubernetes target)
    const previousRevision = spec.previous ? await store.getRevision(spec.previous) : undefined;
    await (await connectFleet(io, flags.control, clustersOf(previousRevision, revision), { fleetDir: loaded.dir })).close();
    const id = newRolloutId(Date.now());
    const holder = holderFor(id, actor);
    await createRollout(store, spec, holder, { now: Date.now(), lockTtlMs: durationFlag('--lock-ttl', flags.lockTtl) });
    if (flags.output === 'text')
      io.err.write(
        `${io.errStyle.bold(`rollout ${id}`)}: ${spec.previous ?? '(nothing)'} → ${spec.revision}, plan ${spec.planHash.slice(0, 12)}\n`,
      );
    return await driveAndReport(io, store, id, holder, flags, { fleetDir: loaded.dir });
  } finally {
    await store.close();
  }
}

async function control(action: ControlAction, flags: DriveFlags & { rollout?: string; reason?: string }, io: Io): Promise<number> {
  const actor: Actor = await driverActor(flags, io);
  const store = await storeFor(flags.state, io);
  try {
    const r = await findRollout(store, flags.rollout, { activeOnly: true });
    await requestControl(store, r.id, { action, actor, reason: flags.reason, now: Date.now() });
    const locks = (await store.listLocks()).filter((l) => l.rolloutId === r.id);
    const driven = locks.some((l) => l.pid !== null);
    if (driven) {
      const l = locks.find((x) => x.pid !== null);
      await write(
        io.out,
        `${action} of rollout ${r.id} recorded; its driver (pid ${l?.pid} on ${l?.host}) carries it out at its next look\n`,
      );
      return EXIT.ok;
    }
    // no process drives it: carry it out here
    const holder = holderFor(r.id, actor);
    await takeOver(store, r.id, holder, { now: Date.now(), lockTtlMs: durationFlag('--lock-ttl', flags.lockTtl) });
    return await driveAndReport(io, store, r.id, holder, flags);
  } finally {
    await store.close();
  }
}

export function registerRollout(program: Command, io: Io, result: Result): void {
  const rollout = driveOptions(
    program
      .command('rollout')
      .description('roll the fleet out wave by wave (canary steps, analysis, approvals), or carry on with --resume')
      .argument('[fleet]', 'fleet directory or file (default: with --plan, the fleet the plan was made from; else .)')
      .option('--plan <file>', 'roll out this saved plan (`meridian plan --out FILE`); it must match the fleet')
      .option('--resume [id]', 'carry on with an unfinished rollout (the newest one, or ID) after a crash, a pause or approvals')
      .option('--healthy-checks <n>', 'consecutive healthy checks at the new revision before a wave completes', '2'),
  )
    // `rollout status -o json`: the subcommands' options are theirs, not the parent's
    .enablePositionalOptions()
    .action(async (dir: string | undefined, flags: RolloutFlags) => {
      result.code = await startRollout(dir, flags, io);
    });

  rollout
    .command('status')
    .description("a rollout's waves, current step, canary weights, and each gate's verdict with its numbers")
    .option('--rollout <id>', 'which rollout (default: the newest unfinished one, else the newest)')
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'markdown']).default('text'))
    .action(async (flags: { rollout?: string; state?: string; output: 'text' | 'json' | 'markdown' }) => {
      const store = await storeFor(flags.state, io, { readonly: true });
      try {
        const r = await findRollout(store, flags.rollout);
        const spec = asSpec(r.spec);
        const view = rolloutView(r, spec, await store.listRolloutEvents(r.id), await store.listApprovals(spec.planHash), Date.now());
        const locks = (await store.listLocks()).filter((l) => l.rolloutId === r.id);
        if (flags.output === 'json') await write(io.out, `${JSON.stringify({ ...view, locks }, null, 2)}\n`);
        else if (flags.output === 'markdown') await write(io.out, summaryMarkdown(view));
        else {
          const l = locks.find((x) => x.pid !== null);
          const driver =
            locks.length === 0
              ? ''
              : l
                ? `  driven by pid ${l.pid} on ${l.host} (heartbeat ${l.heartbeatAt})\n`
                : '  no process drives it now\n';
          await write(io.out, statusText(view) + driver);
        }
        result.code = EXIT.ok;
      } finally {
        await store.close();
      }
    });

  const controls: [ControlAction, string][] = [
    ['pause', 'pause a running rollout at its next step (it keeps its locks)'],
    ['resume', 'resume a paused rollout (drives it here when no process does)'],
    ['abort', 'stop a rollout and roll back every cluster it touched'],
    ['promote', 'skip the remaining steps of the current wave (an override, recorded with --reason)'],
  ];
  for (const [action, description] of controls) {
    driveOptions(
      rollout
        .command(action)
        .description(description)
        .option('--rollout <id>', 'which rollout (default: the newest unfinished one)')
        .option('--reason <text>', action === 'promote' ? 'why the remaining steps are skipped (required)' : 'why, for the audit log'),
    ).action(async (flags: DriveFlags & { rollout?: string; reason?: string }) => {
      result.code = await control(action, flags, io);
    });
  }
}
