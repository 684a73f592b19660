/**
 * The audit chain, independent of the backend: how an entry is hashed, and the walk that finds the first
 * edited, inserted, reordered or deleted entry. Pure.
 */
import { createHash } from 'node:crypto';
import { AuditChainError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import type { AuditEntry, AuditProblem, AuditVerification } from './store.js';

/** The `prevHash` of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** The hashed fields of an entry: everything except `prevHash` and `hash`. */
export type AuditBody = Omit<AuditEntry, 'prevHash' | 'hash'>;

/** sha256(prevHash + canonicalJson(body)), as hex. */
export function entryHash(prevHash: string, body: AuditBody): string {
  const { seq, at, actor, action, subject, reason, data } = body;
  const actorJson = actor.via === undefined ? { id: actor.id } : { id: actor.id, via: actor.via };
  return createHash('sha256')
    .update(prevHash)
    .update(canonicalJson({ seq, at, actor: actorJson, action, subject, reason, data }))
    .digest('hex');
}

/** The head anchor: how many entries there are and the hash of the newest. Updated with every append. */
export interface AuditAnchor {
  readonly count: number;
  readonly hash: string;
}

/**
 * Walks entries in `seq` order and checks each against the one before; {@link finish} checks the end of
 * the chain against the anchor. Feed it page by page, so that a long log needs no memory.
 */
export class ChainWalker {
  private count: number;
  private prev: string;
  private failure: AuditVerification | undefined;

  /** `start`: a head verified before (the walk goes on after it); default the genesis. */
  constructor(start?: AuditAnchor) {
    this.count = start?.count ?? 0;
    this.prev = start?.hash ?? GENESIS_HASH;
  }

  /** Checks the next entry; returns false once the chain is broken (later entries are not looked at). */
  push(e: AuditEntry): boolean {
    if (this.failure) return false;
    const expected = this.count + 1;
    if (e.seq !== expected) {
      if (e.seq > expected) {
        const missing = e.seq - expected === 1 ? `entry ${expected} is missing` : `entries ${expected}..${e.seq - 1} are missing`;
        return this.reject(
          expected,
          'deleted',
          `${missing}: the log goes from ${this.count === 0 ? 'the start' : `entry ${this.count}`} to entry ${e.seq}`,
        );
      }
      return this.reject(e.seq, 'inserted', `entry ${e.seq} appears after entry ${this.count}: it was inserted or renumbered`);
    }
    if (e.prevHash !== this.prev) {
      return this.reject(
        e.seq,
        'inserted',
        `entry ${e.seq} does not follow ${this.count === 0 ? 'the genesis' : `entry ${this.count}`}: it names ${short(e.prevHash)} as the hash before it, ` +
          `but that is ${short(this.prev)} — it was inserted or moved, or the entry before it was rewritten and rehashed`,
      );
    }
    const actual = entryHash(e.prevHash, e);
    if (actual !== e.hash) {
      return this.reject(
        e.seq,
        'edited',
        `entry ${e.seq} (${e.action} ${e.subject}) was edited: its content hashes to ${short(actual)}, not the recorded ${short(e.hash)}`,
      );
    }
    this.count = e.seq;
    this.prev = e.hash;
    return true;
  }

  /** The verdict, after every entry was pushed; `anchor` undefined means the anchor row is gone. */
  finish(anchor: AuditAnchor | undefined): AuditVerification {
    if (this.failure) return this.failure;
    if (!anchor) {
      return this.fail(
        this.count,
        'anchor',
        `the audit head anchor is missing (the log has ${this.count} entries); it was deleted outside Meridian`,
      );
    }
    if (anchor.count > this.count) {
      const first = this.count + 1;
      const what = anchor.count === first ? `entry ${first} was deleted` : `entries ${first}..${anchor.count} were deleted`;
      return this.fail(first, 'deleted', `${what}: the head anchor counts ${anchor.count} entries, the log ends at ${this.count}`);
    }
    if (anchor.count < this.count) {
      const first = anchor.count + 1;
      return this.fail(
        first,
        'inserted',
        `entry ${first} was added outside Meridian: the head anchor counts ${anchor.count} entries, the log has ${this.count}`,
      );
    }
    if (anchor.hash !== this.prev) {
      return this.fail(
        this.count,
        'anchor',
        `the head anchor names ${short(anchor.hash)} as the newest hash but entry ${this.count} hashes to ${short(this.prev)}: ` +
          `the newest entry was rewritten and rehashed, or the anchor was changed`,
      );
    }
    return { ok: true, count: this.count, headHash: this.prev };
  }

  private reject(seq: number, problem: AuditProblem, message: string): false {
    this.fail(seq, problem, message);
    return false;
  }

  private fail(seq: number, problem: AuditProblem, message: string): AuditVerification {
    this.failure = { ok: false, count: this.count, headHash: this.prev, seq, problem, message };
    return this.failure;
  }
}

/** Verifies a whole chain held in memory (the backends stream through {@link ChainWalker} instead). */
export function verifyChain(entries: Iterable<AuditEntry>, anchor: AuditAnchor | undefined): AuditVerification {
  const walker = new ChainWalker();
  for (const e of entries) if (!walker.push(e)) break;
  return walker.finish(anchor);
}

/** The error to raise for a failed verification (the CLI prints it and exits non-zero). */
export function auditChainError(v: Exclude<AuditVerification, { ok: true }>): AuditChainError {
  return new AuditChainError(`the audit log is broken at entry ${v.seq} (${v.problem}): ${v.message}`, v.seq);
}

function short(hash: string): string {
  return hash.slice(0, 12);
}
