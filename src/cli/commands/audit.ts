/** `meridian audit log` and `meridian audit verify`: read the hash-chained audit log, and prove it unbroken. */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import {
  anchoredEntry,
  type AnchorCheck,
  checkAnchor,
  type ExternalAnchor,
  isHeadHash,
  makeCheckpoint,
  readCheckpoint,
} from '../../store/audit-anchor.js';
import type { AuditEntry, Store } from '../../store/store.js';
import { terminalSafe } from '../terminal-safe.js';
import { type Io, write } from '../io.js';
import { storeFor } from '../state.js';
import { EXIT } from '../exit-codes.js';
import type { Result } from './index.js';
import { wholeNumber } from '../options.js';

function line(e: AuditEntry): string {
  const who = e.actor.via ? `${e.actor.id} (${e.actor.via})` : e.actor.id;
  const text = `${who}  ${e.action}  ${e.subject}${e.reason ? `  — ${e.reason}` : ''}`;
  return `#${e.seq}  ${e.at}  ${terminalSafe(text)}`;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

interface VerifyFlags {
  state?: string;
  output: 'text' | 'json';
  head?: string;
  count?: string;
  checkpoint?: string;
  verifyKey?: string;
}

/** The external anchor the flags name (`--head`/`--count`, or `--checkpoint` with `--verify-key`), if any. */
function anchorOf(flags: VerifyFlags): ExternalAnchor | null {
  if (flags.checkpoint !== undefined) {
    if (flags.head !== undefined || flags.count !== undefined) throw new UsageError('--checkpoint and --head/--count exclude each other');
    const key = flags.verifyKey === undefined ? undefined : readText(flags.verifyKey, 'the verification key');
    const cp = readCheckpoint(readText(flags.checkpoint, 'the checkpoint'), flags.checkpoint, key);
    return { head: cp.head, count: cp.count };
  }
  if (flags.verifyKey !== undefined) throw new UsageError('--verify-key checks the signature of a --checkpoint FILE');
  if (flags.head === undefined) {
    if (flags.count !== undefined) throw new UsageError('--count needs --head HASH (the head hash printed with that count)');
    return null;
  }
  const head = flags.head.trim().toLowerCase();
  if (!isHeadHash(head)) {
    throw new UsageError(
      `--head must be a head hash as \`meridian audit verify\` prints it (64 hex digits), not ${JSON.stringify(flags.head)}`,
    );
  }
  if (flags.count === undefined) return { head };
  const count = Number(flags.count);
  if (!/^\d+$/.test(flags.count.trim()) || !Number.isSafeInteger(count)) {
    throw new UsageError(`--count must be a whole number of entries, not ${JSON.stringify(flags.count)}`);
  }
  return { head, count };
}

async function checkAgainst(store: Store, anchor: ExternalAnchor, logCount: number): Promise<AnchorCheck> {
  return checkAnchor(anchor, logCount, await anchoredEntry(store, anchor));
}

export function registerAudit(program: Command, io: Io, result: Result): void {
  const audit = program.command('audit').description('the audit log: every change, decision and approval, hash-chained');
  audit
    .command('log')
    .description('list audit entries, oldest first')
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .option('-n, --limit <n>', 'only the newest N entries', wholeNumber('--limit', 1))
    .option('--after <seq>', 'only entries after this sequence number', wholeNumber('--after', 0))
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
    .description(
      'walk the chain and name the first edited, inserted or deleted entry; prints the head hash to anchor elsewhere, and checks the log against such an anchor (--head/--count, --checkpoint)',
    )
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .option('--head <hash>', 'a head hash printed earlier (kept outside the store, e.g. by CI): that entry must still be in the log')
    .option('--count <n>', 'with --head: how many entries the log had then (the entry with that number must have that hash)')
    .option('--checkpoint <file>', 'a checkpoint written by `meridian audit checkpoint` (instead of --head/--count)')
    .option('--verify-key <pem>', 'with --checkpoint: the public key whose private half signed it; the signature must verify')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: VerifyFlags) => {
      const anchor = anchorOf(opts);
      const store = await storeFor(opts.state, io, { readonly: true });
      try {
        const v = await store.verifyAudit();
        const a = anchor ? await checkAgainst(store, anchor, v.ok ? v.count : Math.max(v.count, v.seq - 1)) : null;
        const s = io.style;
        if (opts.output === 'json')
          await write(io.out, `${JSON.stringify({ location: store.location, ...v, ...(a ? { anchor: a } : {}) }, null, 2)}\n`);
        else {
          const chain = v.ok
            ? `${s.green('ok')}: ${v.count} entries, chain unbroken\nhead ${v.headHash}\n`
            : `${s.red('broken')}: entry #${v.seq} ${v.problem}: ${v.message}\n` +
              `  the ${v.count} entries before it verify; the last good head is ${v.headHash}\n` +
              `  fix: restore the store from a backup; entry #${v.seq} and everything after it cannot be trusted\n`;
          const anchored = a
            ? a.ok
              ? `anchor: ${a.message}\n`
              : `${s.red('anchor broken')}: ${a.message}\n  fix: restore the store from a backup taken at or after the anchor; the log in this store is not the one that was anchored\n`
            : '';
          await write(io.out, chain + anchored);
        }
        result.code = v.ok && (a?.ok ?? true) ? EXIT.ok : EXIT.findings;
      } finally {
        await store.close();
      }
    });
  audit
    .command('checkpoint')
    .description(
      'print a checkpoint of the verified log (entry count and head hash, signed with --sign-key) for CI to keep and `audit verify --checkpoint` to check later',
    )
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL)')
    .option(
      '--sign-key <pem>',
      'a PEM private key (Ed25519 recommended) to sign with; default MERIDIAN_AUDIT_SIGN_KEY (the PEM text), else unsigned',
    )
    .action(async (opts: { state?: string; signKey?: string }) => {
      const key = opts.signKey !== undefined ? readText(opts.signKey, 'the signing key') : io.env['MERIDIAN_AUDIT_SIGN_KEY'] || undefined;
      const store = await storeFor(opts.state, io, { readonly: true });
      try {
        const v = await store.verifyAudit();
        if (!v.ok) {
          await write(
            io.err,
            `${io.errStyle.red('broken')}: entry #${v.seq} ${v.problem}: ${v.message}\n  no checkpoint of a broken log was written\n`,
          );
          result.code = EXIT.findings;
          return;
        }
        await write(io.out, `${JSON.stringify(makeCheckpoint(v.count, v.headHash, new Date(), key), null, 2)}\n`);
        result.code = EXIT.ok;
      } finally {
        await store.close();
      }
    });
}
