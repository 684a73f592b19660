/**
 * `meridian approve` and `meridian reject`: a decision on one wave of a rollout, bound to its plan's hash,
 * by an identity from --actor or the environment, audited. The author of the change cannot decide.
 * Role membership is what the approver states with --role (one of the wave's roles); real role checks
 * come with the control plane's authentication.
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { DEFAULT_APPROVAL_TTL_MS, evaluateApprovals, gateOf, recordDecision } from '../../rollout/approvals.js';
import { asSpec } from '../../rollout/rollout-spec.js';
import { resolveActor } from '../../store/actor.js';
import { parseDuration } from '../../units/duration.js';
import { EXIT } from '../exit-codes.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';
import { findRollout } from './rollout.js';

interface DecisionFlags {
  rollout?: string;
  wave?: string;
  role?: string;
  reason?: string;
  expires: string;
  state?: string;
  actor?: string;
}

async function decide(decision: 'approve' | 'reject', flags: DecisionFlags, io: Io): Promise<number> {
  const actor = resolveActor(flags.actor, io.env);
  const ttlMs = parseDuration(flags.expires);
  if (ttlMs === undefined || ttlMs <= 0)
    throw new UsageError(`--expires must be a duration like 24h or 30m, not ${JSON.stringify(flags.expires)}`);
  if (decision === 'reject' && !flags.reason) throw new UsageError('a rejection needs a reason', 'add --reason "why not"');
  const store = await storeFor(flags.state, io);
  try {
    const rollout = await findRollout(store, flags.rollout, { activeOnly: true });
    const spec = asSpec(rollout.spec);
    const wave = flags.wave ?? spec.config.waves[rollout.wave]?.name;
    if (wave === undefined) throw new UsageError('name the wave with --wave');
    const a = await recordDecision(store, {
      rollout,
      spec,
      wave,
      actor,
      role: flags.role,
      decision,
      reason: flags.reason,
      now: Date.now(),
      ttlMs,
    });
    const index = spec.config.waves.findIndex((w) => w.name === wave);
    const gate = gateOf(spec, index, Date.now());
    const v = gate ? evaluateApprovals(await store.listApprovals(spec.planHash, wave), gate) : null;
    const tally = v ? `${v.approvers.length}/${v.needed} approvals${v.rejected ? `, rejected by ${v.rejected.actor}` : ''}` : '';
    await write(
      io.out,
      `${decision === 'approve' ? 'approved' : 'rejected'} wave ${wave} of rollout ${rollout.id} as ${a.actor} (${a.role}); bound to plan ${spec.planHash.slice(0, 12)}, expires ${a.expiresAt}\n` +
        `  wave ${wave}: ${tally}${v?.met ? ' — the gate is open; a waiting driver carries on (or: meridian rollout --resume)' : ''}\n`,
    );
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

export function registerApprove(program: Command, io: Io, result: Result): void {
  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(decision)
      .description(
        decision === 'approve' ? 'approve a wave of a rollout (never your own change)' : 'reject a wave of a rollout: it fails its gate',
      )
      .option('--rollout <id>', 'which rollout (default: the newest unfinished one)')
      .option('--wave <name>', 'which wave (default: the current one)')
      .option('--role <role>', "the role you act in; must be one of the wave's roles (stated, not yet checked: see docs/rollout.md)")
      .option('--reason <text>', decision === 'reject' ? 'why (required)' : 'why, for the audit log')
      .option('--expires <duration>', 'how long the decision counts', `${DEFAULT_APPROVAL_TTL_MS / 3_600_000}h`)
      .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
      .option('--actor <id>', 'who decides (default: MERIDIAN_ACTOR, GITHUB_ACTOR or the user)')
      .action(async (flags: DecisionFlags) => {
        result.code = await decide(decision, flags, io);
      });
  }
}
