/**
 * `meridian evacuate PLACE`, `meridian restore PLACE` and `meridian disaster declare|approve|end|status`:
 * moving traffic away from a region or a cluster under the fleet's safety rules (docs/recovery.md). A
 * refusal names each rule and its numbers (exit 1) and is audited; an evacuation is a drain in the audit
 * log, which every control plane (`meridian serve`, `meridian up`) follows within its store poll.
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { evacuate as evacuateIn, restore as restoreIn, verdictJson } from '../../recovery/evacuation.js';
import { disasterStanding, recoveryLedger, type Declaration, type RecoveryLedger } from '../../recovery/ledger.js';
import { disasterClasses, safetyPolicy } from '../../recovery/policy.js';
import { rampAt, rampJson, rampsInForce, restoreRamp, type RestoreRamp } from '../../recovery/ramp.js';
import type { Place, SafetyVerdict } from '../../recovery/safety.js';
import { render } from '../../render/render.js';
import { loadFleet } from '../../spec/load.js';
import type { Fleet } from '../../spec/schema.js';
import { resolveActor } from '../../store/actor.js';
import type { Store } from '../../store/store.js';
import { formatDuration } from '../../units/duration.js';
import { EXIT } from '../exit-codes.js';
import { type Io, write } from '../io.js';
import { storeFor } from '../state.js';
import type { Result } from './index.js';

interface Common {
  fleet: string;
  state?: string;
  actor?: string;
  output: 'text' | 'json';
}

interface EvacuateFlags extends Common {
  reason?: string;
  declareDown?: string[];
  automated?: boolean;
}

const collect = (v: string, prev: string[] = []): string[] => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

/** A region or cluster of the fleet by name (regions first: names are unique across both in practice). */
function placeOf(fleet: Fleet, name: string): Place {
  if (fleet.regions[name]) return { kind: 'region', name };
  if (fleet.clusters[name]) return { kind: 'cluster', name };
  throw new UsageError(
    `the fleet ${fleet.fleet} has no region or cluster ${JSON.stringify(name)}`,
    `regions: ${Object.keys(fleet.regions).join(', ')}; clusters: ${Object.keys(fleet.clusters).join(', ')}`,
  );
}

/** `10 %, 50 %, 100 % every 10s`. */
function rampText(ramp: RestoreRamp): string {
  return `${ramp.steps.map((p) => `${p} %`).join(', ')} every ${formatDuration(ramp.stepMs)}`;
}

async function ledgerOf(store: Store): Promise<RecoveryLedger> {
  return recoveryLedger(await store.listAudit());
}

function verdictLines(v: SafetyVerdict): string[] {
  const out: string[] = [];
  for (const x of v.violations) {
    const over = v.overridden.includes(x) ? ' (overridden by the declared disaster)' : '';
    out.push(`  ${x.rule}: ${x.message}${over}`);
    if (!over) out.push(`    fix: ${x.fix}`);
  }
  return out;
}

async function evacuate(name: string, flags: EvacuateFlags, io: Io): Promise<number> {
  if (!flags.reason?.trim())
    throw new UsageError('an evacuation needs a reason', 'add --reason "what happened", e.g. --reason "eu-west serves 30% errors"');
  const loaded = loadFleet(flags.fleet);
  const { fleet } = loaded;
  const place = placeOf(fleet, name);
  const declaredDown = flags.declareDown ?? [];
  const jurisdictions = [...new Set(Object.values(fleet.regions).map((r) => r.jurisdiction))];
  for (const j of declaredDown) {
    if (!jurisdictions.includes(j))
      throw new UsageError(`--declare-down ${j}: the fleet has no jurisdiction ${j}`, `its jurisdictions are: ${jurisdictions.join(', ')}`);
  }
  const actor = resolveActor(flags.actor, io.env);
  const revision = render(loaded).revision;
  const store = await storeFor(flags.state, io);
  try {
    const order = { place, reason: flags.reason, declaredDown, automated: flags.automated === true, actor };
    const outcome = await evacuateIn(store, fleet.recovery, revision, order);
    if (outcome.kind === 'already') {
      await write(io.out, `${place.kind} ${name} is evacuated already; nothing to do\n`);
      return EXIT.ok;
    }
    const { verdict } = outcome;
    if (flags.output === 'json') {
      const json = {
        place,
        evacuated: outcome.kind === 'evacuated',
        disaster: outcome.disaster?.id ?? null,
        verdict: verdictJson(verdict),
      };
      await write(io.out, `${JSON.stringify(json, null, 2)}\n`);
      return outcome.kind === 'evacuated' ? EXIT.ok : EXIT.findings;
    }
    if (outcome.kind === 'refused') {
      await write(
        io.out,
        [`refused: evacuating ${place.kind} ${name} breaks the safety rules (audited)`, ...verdictLines(verdict), ''].join('\n'),
      );
      return EXIT.findings;
    }
    const lines = [
      `evacuated ${place.kind} ${name}: ${verdict.removedClusters.join(', ')} take no new traffic (audited as routing.drain by ${actor.id})`,
      ...verdict.effects.map(
        (e) =>
          `  ${e.service}: ${e.servableAfterRps} of ${e.demandRps} rps expected stays servable${e.lockedOut.length ? `; ${e.lockedOut.join(', ')} clients declared down get 503` : ''}`,
      ),
      ...(verdict.overridden.length ? ['  overridden by the declared disaster:', ...verdictLines(verdict)] : []),
      'every control plane following this store applies it within its poll (250 ms); `meridian restore` brings it back',
      '',
    ];
    await write(io.out, lines.join('\n'));
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

async function restore(name: string, flags: Common & { reason?: string }, io: Io): Promise<number> {
  const loaded = loadFleet(flags.fleet);
  const place = placeOf(loaded.fleet, name);
  const actor = resolveActor(flags.actor, io.env);
  const store = await storeFor(flags.state, io);
  try {
    const ramp = restoreRamp(loaded.fleet.recovery);
    const done = await restoreIn(store, place, actor, flags.reason, ramp);
    if (!done) {
      await write(io.out, `${place.kind} ${name} is not evacuated; nothing to restore\n`);
      return EXIT.ok;
    }
    const hold = safetyPolicy(loaded.fleet.recovery).holdDownMs;
    const first = ramp ? rampAt(ramp, done.at, done.at) : null;
    const pos = first?.nextAt === null ? null : first; // a ramp of [100] is none
    if (flags.output === 'json') {
      const json = {
        place,
        restored: true,
        holdDownMs: hold,
        ramp: rampJson(ramp),
        fullAt: pos ? new Date(pos.endsAt).toISOString() : null,
      };
      await write(io.out, `${JSON.stringify(json, null, 2)}\n`);
    } else
      await write(
        io.out,
        `restored ${place.kind} ${name}: ${ramp && pos ? `it takes back its traffic in steps of ${rampText(ramp)} (all of it at ${new Date(pos.endsAt).toISOString()})` : 'it takes all its traffic again'} (audited by ${actor.id}); it may not be evacuated again for ${formatDuration(hold)} (hold-down) unless a disaster is declared\n`,
      );
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

async function declare(flags: Common & { incident?: string; reason?: string }, io: Io): Promise<number> {
  const { fleet } = loadFleet(flags.fleet);
  const classes = disasterClasses(fleet.recovery);
  if (!flags.incident || !classes.includes(flags.incident)) {
    throw new UsageError(
      flags.incident ? `${flags.incident} is not a disaster class of the fleet ${fleet.fleet}` : 'name the incident class with --incident',
      classes.length
        ? `the disaster classes are: ${classes.join(', ')} (recovery.incidents with disaster: true)`
        : 'the fleet declares no disaster class under recovery.incidents',
    );
  }
  if (!flags.reason?.trim()) throw new UsageError('a declaration needs a reason', 'add --reason "what happened"');
  const actor = resolveActor(flags.actor, io.env);
  const store = await storeFor(flags.state, io);
  try {
    const e = await store.appendAudit({ actor, action: 'disaster.declare', subject: flags.incident, reason: flags.reason });
    const gate = fleet.recovery?.disaster?.approvals;
    await write(
      io.out,
      flags.output === 'json'
        ? `${JSON.stringify({ id: e.seq, incident: flags.incident, declaredBy: actor.id, needs: gate ?? null }, null, 2)}\n`
        : `disaster ${e.seq} (${flags.incident}) declared by ${actor.id}; it stands once ${gate?.count ?? '?'} other approver(s) of ${gate?.roles.join(', ') ?? '?'} approve: meridian disaster approve ${e.seq} --role ${gate?.roles[0] ?? 'ROLE'}\n`,
    );
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

async function decide(action: 'approve' | 'end', id: string, flags: Common & { role?: string; reason?: string }, io: Io): Promise<number> {
  const { fleet } = loadFleet(flags.fleet);
  const gate = fleet.recovery?.disaster?.approvals;
  if (!gate)
    throw new UsageError(`the fleet ${fleet.fleet} says nobody may declare a disaster`, 'add recovery.disaster.approvals to the fleet');
  const actor = resolveActor(flags.actor, io.env);
  const store = await storeFor(flags.state, io);
  try {
    const ledger = await ledgerOf(store);
    const d = ledger.declarations.find((x) => String(x.id) === id);
    if (!d) {
      throw new UsageError(
        `there is no disaster declaration ${id}`,
        `declarations: ${ledger.declarations.map((x) => x.id).join(', ') || '(none)'}; see meridian disaster status`,
      );
    }
    if (d.ended)
      throw new UsageError(`disaster ${id} was ended by ${d.ended.by.id} at ${d.ended.at}`, 'declare a new one if the incident goes on');
    if (action === 'end') {
      await store.appendAudit({ actor, action: 'disaster.end', subject: id, reason: flags.reason });
      await write(io.out, `disaster ${id} ended by ${actor.id}; evacuations are judged by every safety rule again\n`);
      return EXIT.ok;
    }
    const role = flags.role ?? (gate.roles.length === 1 ? gate.roles[0] : undefined);
    if (role === undefined || !gate.roles.includes(role)) {
      throw new UsageError(`--role must be one of ${gate.roles.join(', ')}${role ? `, not ${role}` : ''}`, 'say the role you approve in');
    }
    if (actor.id === d.declaredBy.id) {
      await store.appendAudit({
        actor,
        action: 'recovery.refused',
        subject: id,
        reason: 'the declarer approved their own disaster',
        data: { role },
      });
      await write(
        io.out,
        `refused: ${actor.id} declared disaster ${id} and cannot approve it; another approver of ${gate.roles.join(', ')} must (audited)\n`,
      );
      return EXIT.findings;
    }
    await store.appendAudit({ actor, action: 'disaster.approve', subject: id, reason: flags.reason, data: { role } });
    const after = recoveryLedger(await store.listAudit()).declarations.find((x) => x.id === d.id) as Declaration;
    const standing = disasterStanding(after, gate);
    await write(
      io.out,
      standing.declared
        ? `disaster ${id} (${d.incident}) stands: approved by ${standing.approvers.join(', ')}; the capacity floor and the hold-down give way to evacuations until it is ended\n`
        : `approval recorded; disaster ${id} needs ${gate.count - standing.approvers.length} more approver(s) of ${gate.roles.join(', ')}\n`,
    );
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

async function status(flags: Common, io: Io): Promise<number> {
  const { fleet } = loadFleet(flags.fleet);
  const gate = fleet.recovery?.disaster?.approvals ?? { count: 1, roles: [] };
  const store = await storeFor(flags.state, io, { readonly: true });
  try {
    const ledger = await ledgerOf(store);
    const rows = ledger.declarations.map((d) => ({ ...d, ...disasterStanding(d, gate) }));
    const ramps = rampsInForce(ledger.restores, restoreRamp(fleet.recovery), Date.now()).map((r) => ({
      place: r.place,
      percent: r.percent,
      step: r.step + 1,
      steps: r.steps,
      nextStepAt: r.nextAt === null ? null : new Date(r.nextAt).toISOString(),
      fullAt: new Date(r.endsAt).toISOString(),
      restore: r.restore,
    }));
    if (flags.output === 'json') {
      await write(io.out, `${JSON.stringify({ evacuated: ledger.evacuated, restoring: ramps, declarations: rows }, null, 2)}\n`);
      return EXIT.ok;
    }
    const lines = [
      `evacuated: ${ledger.evacuated.map((p) => `${p.kind} ${p.name}`).join(', ') || '(nothing)'}`,
      ...ramps.map(
        (r) =>
          `restoring: ${r.place.kind} ${r.place.name} takes ${r.percent} % of its traffic (step ${r.step} of ${r.steps}; next step at ${r.nextStepAt}, all of it at ${r.fullAt})`,
      ),
      ...rows.map(
        (d) =>
          `disaster ${d.id} ${d.incident} by ${d.declaredBy.id} at ${d.at}: ${d.ended ? `ended by ${d.ended.by.id}` : d.declared ? `stands (approved by ${d.approvers.join(', ')})` : `waiting for ${gate.count - d.approvers.length} approver(s)`}`,
      ),
      '',
    ];
    await write(io.out, lines.join('\n'));
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

export function registerEvacuate(program: Command, io: Io, result: Result): void {
  const common = (c: Command): Command =>
    c
      .option('-f, --fleet <dir>', 'the fleet directory', '.')
      .option('--state <store>', 'the state store (default: MERIDIAN_STATE or .meridian/state.db)')
      .option('--actor <id>', 'who is acting (default: MERIDIAN_ACTOR, GITHUB_ACTOR, USER)')
      .option('-o, --output <format>', 'text or json', 'text');
  common(
    program
      .command('evacuate <place>')
      .description("move all traffic away from a region or cluster, checked against the fleet's safety rules (docs/recovery.md)")
      .option('--reason <text>', 'why (required; audited)')
      .option('--declare-down <jurisdiction>', 'a jurisdiction whose locked clients may go unserved (503) instead of refusing', collect)
      .option('--automated', 'started by automation, not a person (the master switch applies)'),
  ).action(async (place: string, flags: EvacuateFlags) => {
    result.code = await evacuate(place, flags, io);
  });
  common(
    program
      .command('restore <place>')
      .description('bring an evacuated region or cluster back into service')
      .option('--reason <text>', 'why (audited)'),
  ).action(async (place: string, flags: Common & { reason?: string }) => {
    result.code = await restore(place, flags, io);
  });
  const disaster = program.command('disaster').description('declare a disaster, approve or end it (recovery.disaster in the fleet)');
  common(
    disaster
      .command('declare')
      .description('declare a disaster of an incident class')
      .option('--incident <class>', 'the incident class')
      .option('--reason <text>', 'what happened'),
  ).action(async (flags: Common & { incident?: string; reason?: string }) => {
    result.code = await declare(flags, io);
  });
  common(
    disaster
      .command('approve <id>')
      .description('approve a declared disaster (never your own)')
      .option('--role <role>', 'the role you approve in')
      .option('--reason <text>', 'why'),
  ).action(async (id: string, flags: Common & { role?: string; reason?: string }) => {
    result.code = await decide('approve', id, flags, io);
  });
  common(disaster.command('end <id>').description('end a declared disaster').option('--reason <text>', 'why')).action(
    async (id: string, flags: Common & { reason?: string }) => {
      result.code = await decide('end', id, flags, io);
    },
  );
  common(disaster.command('status').description('what is evacuated or ramping back, and the disasters declared')).action(
    async (flags: Common) => {
      result.code = await status(flags, io);
    },
  );
}
