/** `meridian audit log` and `meridian audit verify`: read the hash-chained audit log, and prove it unbroken. */
import { Option, type Command } from 'commander';
import type { AuditEntry } from '../../store/store.js';
import { terminalSafe } from '../terminal-safe.js';
import { type Io, write } from '../io.js';
import { storeFor } from '../state.js';
import { EXIT } from '../exit-codes.js';
import type { Result } from './index.js';

function line(e: AuditEntry): string {
  const who = e.actor.via ? `${e.actor.id} (${e.actor.via})` : e.actor.id;
  const text = `${who}  ${e.action}  ${e.subject}${e.reason ? `  — ${e.reason}` : ''}`;
  return `#${e.seq}  ${e.at}  ${terminalSafe(text)}`;
}

export function registerAudit(program: Command, io: Io, result: Result): void {
  const audit = program.command('audit').description('the audit log: every change, decision and approval, hash-chained');
  audit
    .command('log')
    .description('list audit entries, oldest first')
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .option('-n, --limit <n>', 'only the newest N entries', (v) => Number.parseInt(v, 10))
    .option('--after <seq>', 'only entries after this sequence number', (v) => Number.parseInt(v, 10))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { state?: string; limit?: number; after?: number; output: 'text' | 'json' }) => {
      const store = await storeFor(opts.state, io, { readonly: true });
      try {
        let entries = await store.listAudit({ limit: opts.limit, afterSeq: opts.after, newestFirst: opts.limit !== undefined });
        if (opts.limit !== undefined) entries = entries.reverse();
        if (opts.output === 'json') await write(io.out, `${JSON.stringify(entries, null, 2)}\n`);
        else await write(io.out, entries.length ? `${entries.map(line).join('\n')}\n` : 'the audit log is empty\n');
      } finally {
        await store.close();
      }
    });
  audit
    .command('verify')
    .description('walk the chain and name the first edited, inserted or deleted entry; prints the head hash to anchor elsewhere')
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { state?: string; output: 'text' | 'json' }) => {
      const store = await storeFor(opts.state, io, { readonly: true });
      try {
        const v = await store.verifyAudit();
        const s = io.style;
        if (opts.output === 'json') await write(io.out, `${JSON.stringify({ location: store.location, ...v }, null, 2)}\n`);
        else if (v.ok) await write(io.out, `${s.green('ok')}: ${v.count} entries, chain unbroken\nhead ${v.headHash}\n`);
        else
          await write(
            io.out,
            `${s.red('broken')}: entry #${v.seq} ${v.problem}: ${v.message}\n` +
              `  the ${v.count} entries before it verify; the last good head is ${v.headHash}\n` +
              `  fix: restore the store from a backup; entry #${v.seq} and everything after it cannot be trusted\n`,
          );
        result.code = v.ok ? EXIT.ok : EXIT.findings;
      } finally {
        await store.close();
      }
    });
}
