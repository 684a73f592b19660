/**
 * `meridian token create|list|revoke`: API tokens of the control plane. A token is printed once; the
 * store keeps only its SHA-256. Tokens are made directly in the store, so the first admin token needs
 * no running server.
 */
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { isRole, ROLES } from '../../server/auth/roles.js';
import { MAX_TOKEN_LIFETIME_HOURS, newApiToken } from '../../server/auth/tokens.js';
import { resolveActor } from '../../store/actor.js';
import { parseDuration } from '../../units/duration.js';
import { terminalSafe } from '../terminal-safe.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';

interface CommonFlags {
  state?: string;
  actor?: string;
  output: 'text' | 'json';
}

function common(cmd: Command): Command {
  return cmd
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL); default .meridian/state.db or MERIDIAN_STATE')
    .option('--actor <id>', 'who acts, for the audit log (default: MERIDIAN_ACTOR or the user)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'));
}

export function registerToken(program: Command, io: Io, result: Result): void {
  const token = program.command('token').description('API tokens of the control plane (`meridian serve`): create, list, revoke');

  common(
    token
      .command('create')
      .description('create an API token and print it once (only its hash is kept)')
      .requiredOption('--name <name>', 'who or what holds it (the identity in the audit log), e.g. alice or ci-deploy')
      .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
      .option('--expires <duration>', 'it stops working after this long, e.g. 720h'),
  ).action(async (flags: CommonFlags & { name: string; role: string; expires?: string }) => {
    if (!isRole(flags.role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}, not ${JSON.stringify(flags.role)}`);
    const name = flags.name.trim();
    if (name === '' || name.length > 100) throw new UsageError('--name must be 1 to 100 characters');
    let expiresAt: string | null = null;
    if (flags.expires !== undefined) {
      const ms = parseDuration(flags.expires);
      if (ms === undefined || ms <= 0)
        throw new UsageError(`--expires must be a duration like 720h or 30m, not ${JSON.stringify(flags.expires)}`);
      if (ms > MAX_TOKEN_LIFETIME_HOURS * 3_600_000)
        throw new UsageError(`--expires must be at most ${MAX_TOKEN_LIFETIME_HOURS}h (ten years), not ${JSON.stringify(flags.expires)}`);
      expiresAt = new Date(io.now().getTime() + ms).toISOString();
    }
    const actor = resolveActor(flags.actor, io.env);
    const store = await storeFor(flags.state, io);
    try {
      const { token: secret, record } = newApiToken(name, flags.role, actor, { now: io.now(), expiresAt });
      await store.createApiToken(record, actor);
      if (flags.output === 'json') {
        await write(io.out, `${JSON.stringify({ token: secret, id: record.id, name, role: record.role, expiresAt }, null, 2)}\n`);
      } else {
        await write(io.out, `${secret}\n`);
        await write(
          io.err,
          `created token ${record.id} for ${name} (role ${record.role}${expiresAt ? `, expires ${expiresAt}` : ''}); it is shown only this once\n` +
            `  use it as: Authorization: Bearer <token>, or open the dashboard at http://HOST:PORT/#token=<token>\n`,
        );
      }
      result.code = 0;
    } finally {
      await store.close();
    }
  });

  common(token.command('list').description('list API tokens (never the tokens themselves)')).action(async (flags: CommonFlags) => {
    const store = await storeFor(flags.state, io, { readonly: true });
    try {
      const list = (await store.listApiTokens()).map(({ hash: _hash, ...t }) => t);
      if (flags.output === 'json') await write(io.out, `${JSON.stringify(list, null, 2)}\n`);
      else if (list.length === 0) await write(io.out, 'no API tokens; create one with `meridian token create --role viewer --name NAME`\n');
      else {
        const rows = list.map((t) => [
          t.id,
          terminalSafe(t.name),
          t.role,
          t.createdAt.slice(0, 19),
          t.revokedAt ? `revoked ${t.revokedAt.slice(0, 19)}` : t.expiresAt ? `expires ${t.expiresAt.slice(0, 19)}` : 'active',
        ]);
        const header = ['id', 'name', 'role', 'created', 'state'];
        const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
        const line = (cells: readonly string[]): string =>
          cells
            .map((c, i) => c.padEnd(widths[i] ?? 0))
            .join('  ')
            .trimEnd();
        await write(io.out, `${[line(header), ...rows.map(line)].join('\n')}\n`);
      }
      result.code = 0;
    } finally {
      await store.close();
    }
  });

  common(token.command('revoke').description('revoke an API token by its id').argument('<id>', 'the id `token list` shows')).action(
    async (id: string, flags: CommonFlags) => {
      const store = await storeFor(flags.state, io);
      try {
        const ok = await store.revokeApiToken(id, resolveActor(flags.actor, io.env));
        if (!ok) throw new UsageError(`there is no unrevoked API token ${id}`, 'list them with `meridian token list`');
        await write(io.out, flags.output === 'json' ? `${JSON.stringify({ id, revoked: true })}\n` : `revoked token ${id}\n`);
        result.code = 0;
      } finally {
        await store.close();
      }
    },
  );
}
