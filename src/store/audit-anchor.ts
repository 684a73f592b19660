/**
 * The audit chain's anchor outside the database. The head anchor row (`audit_head`) lives beside the log,
 * so whoever can write the store can cut the tail and move the anchor with it. An anchor kept elsewhere —
 * the count and head hash a CI job printed, or a checkpoint it signed and stored — pins the log: the entry
 * it names must still be in the log, at its place, with its hash. Pure, but for the key handling of
 * node:crypto.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { MeridianError } from '../errors.js';
import { canonicalJson } from '../render/canonical.js';
import { GENESIS_HASH } from './audit-chain.js';
import type { AuditEntry, Store } from './store.js';

/** What a checkpoint file says. `signature` is base64 over {@link checkpointPayload}. */
export interface AuditCheckpoint {
  readonly format: typeof CHECKPOINT_FORMAT;
  /** Entries in the log when it was taken. */
  readonly count: number;
  /** The hash of entry `count` (the genesis hash for an empty log). */
  readonly head: string;
  /** When it was taken (ISO). */
  readonly at: string;
  readonly signature?: string | undefined;
}

/** The format name a checkpoint carries. */
export const CHECKPOINT_FORMAT = 'meridian-audit-checkpoint/v1';

/** An anchor to check the log against: a head hash, and (when known) how many entries it ended. */
export interface ExternalAnchor {
  readonly head: string;
  readonly count?: number | undefined;
}

/** The verdict of an anchor check. */
export type AnchorCheck = { readonly ok: true; readonly message: string } | { readonly ok: false; readonly message: string };

/** A checkpoint file that cannot be read, or whose signature does not verify. Exit 2. */
export class AuditCheckpointError extends MeridianError {
  constructor(message: string, hint?: string) {
    super('MERIDIAN_E_AUDIT_CHECKPOINT', message, hint === undefined ? {} : { hint });
  }
}

const HASH = /^[0-9a-f]{64}$/;

/** True for a head hash as `audit verify` prints it (64 lowercase hex digits). */
export function isHeadHash(s: string): boolean {
  return HASH.test(s);
}

/** The bytes a checkpoint's signature covers: its fields but the signature, in canonical JSON. */
export function checkpointPayload(cp: Omit<AuditCheckpoint, 'signature'>): Buffer {
  return Buffer.from(canonicalJson({ format: cp.format, count: cp.count, head: cp.head, at: cp.at }), 'utf8');
}

function algorithmOf(key: KeyObject): string | null {
  const t = key.asymmetricKeyType;
  return t === 'ed25519' || t === 'ed448' ? null : 'sha256';
}

/** A checkpoint of (count, head), signed with a PEM private key when one is given (Ed25519 recommended). */
export function makeCheckpoint(count: number, head: string, at: Date, privateKeyPem?: string): AuditCheckpoint {
  const base = { format: CHECKPOINT_FORMAT, count, head, at: at.toISOString() } as const;
  if (privateKeyPem === undefined) return base;
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (err) {
    throw new AuditCheckpointError(
      `the signing key is not a PEM private key: ${(err as Error).message}`,
      'make one with `openssl genpkey -algorithm ed25519 -out audit.key` and keep it outside the store (a CI secret)',
    );
  }
  return { ...base, signature: sign(algorithmOf(key), checkpointPayload(base), key).toString('base64') };
}

/** Reads a checkpoint document; with a public key, its signature must verify. */
export function readCheckpoint(text: string, where: string, publicKeyPem?: string): AuditCheckpoint {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AuditCheckpointError(`the checkpoint ${where} is not JSON: ${(err as Error).message}`);
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  const { count, head, at, signature } = o;
  if (
    o['format'] !== CHECKPOINT_FORMAT ||
    typeof count !== 'number' ||
    !Number.isInteger(count) ||
    count < 0 ||
    typeof head !== 'string' ||
    !isHeadHash(head) ||
    typeof at !== 'string' ||
    (signature !== undefined && typeof signature !== 'string')
  ) {
    throw new AuditCheckpointError(
      `the checkpoint ${where} is not a ${CHECKPOINT_FORMAT} document`,
      'write it with `meridian audit checkpoint --sign-key KEY > FILE`',
    );
  }
  const cp: AuditCheckpoint = { format: CHECKPOINT_FORMAT, count, head, at, signature };
  if (publicKeyPem === undefined) return cp;
  let key: KeyObject;
  try {
    key = createPublicKey(publicKeyPem);
  } catch (err) {
    throw new AuditCheckpointError(`the verification key is not a PEM public key: ${(err as Error).message}`);
  }
  const ok = signature !== undefined && verify(algorithmOf(key), checkpointPayload(cp), key, Buffer.from(signature, 'base64'));
  if (!ok) {
    throw new AuditCheckpointError(
      `the checkpoint ${where} has ${signature === undefined ? 'no signature' : 'a signature that does not verify'} with the given key: it was altered or signed by another key`,
      'use the checkpoint CI stored, and the public key that matches the key it signs with',
    );
  }
  return cp;
}

/**
 * Checks the log against an external anchor. `entryAt` is entry `anchor.count` (or, without a count,
 * the entry whose hash is the anchor's head), `logCount` how many entries the log has now.
 */
export function checkAnchor(anchor: ExternalAnchor, logCount: number, entryAt: AuditEntry | undefined): AnchorCheck {
  const head = anchor.head;
  if (anchor.count === 0 || (anchor.count === undefined && head === GENESIS_HASH)) {
    return head === GENESIS_HASH
      ? { ok: true, message: 'the anchor is the empty log' }
      : { ok: false, message: `an anchor of 0 entries must name the genesis hash, not ${head.slice(0, 12)}` };
  }
  if (anchor.count !== undefined && logCount < anchor.count) {
    const first = logCount + 1;
    const what = first === anchor.count ? `entry ${first} was deleted` : `entries ${first}..${anchor.count} were deleted`;
    return { ok: false, message: `${what} (the log was truncated): the anchor counts ${anchor.count} entries, the log has ${logCount}` };
  }
  if (!entryAt) {
    return {
      ok: false,
      message: `no entry of the log hashes to the anchor's head ${head.slice(0, 12)}: the log was rewritten (or truncated) at or before the anchored entry`,
    };
  }
  if (entryAt.hash !== head) {
    return {
      ok: false,
      message: `entry ${entryAt.seq} hashes to ${entryAt.hash.slice(0, 12)}, the anchor says ${head.slice(0, 12)}: the log was rewritten at or before entry ${entryAt.seq}`,
    };
  }
  return {
    ok: true,
    message: `entry ${entryAt.seq} is ${head.slice(0, 12)} as expected; ${logCount - entryAt.seq} entries were added since`,
  };
}

/** The entry an anchor names: entry `count`, or (without a count) the one whose hash is the head. */
export async function anchoredEntry(store: Pick<Store, 'listAudit'>, anchor: ExternalAnchor): Promise<AuditEntry | undefined> {
  if (anchor.count !== undefined) return (await store.listAudit({ afterSeq: anchor.count - 1, limit: 1 }))[0];
  const page = 1000;
  for (let after = 0; ;) {
    const entries = await store.listAudit({ afterSeq: after, limit: page });
    const hit = entries.find((e) => e.hash === anchor.head);
    if (hit || entries.length < page) return hit;
    after = entries[entries.length - 1]?.seq ?? after;
  }
}
