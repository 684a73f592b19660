/** The audit chain's format and walk, without a database (the stores run the same walk in test/store.contract.ts). */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AuditChainError } from '../src/errors.js';
import { auditChainError, entryHash, GENESIS_HASH, verifyChain } from '../src/store/audit-chain.js';
import type { AuditEntry } from '../src/store/store.js';

function chain(n: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const body = {
      seq,
      at: `2026-01-01T00:00:0${seq}.000Z`,
      actor: { id: 'alice', via: 'flag' },
      action: 'revision.create',
      subject: `r${seq}`,
      reason: null,
      data: { n: seq },
    };
    const hash = entryHash(prev, body);
    out.push({ ...body, prevHash: prev, hash });
    prev = hash;
  }
  return out;
}

describe('audit chain', () => {
  it('hashes sha256(prevHash + canonical JSON of the other fields, keys sorted), as docs/state.md says', () => {
    const [e] = chain(1);
    if (!e) throw new Error('chain');
    const canonical =
      '{"action":"revision.create","actor":{"id":"alice","via":"flag"},"at":"2026-01-01T00:00:01.000Z","data":{"n":1},"reason":null,"seq":1,"subject":"r1"}';
    expect(e.hash).toBe(
      createHash('sha256')
        .update(GENESIS_HASH + canonical)
        .digest('hex'),
    );
    expect(GENESIS_HASH).toBe('0'.repeat(64));
  });

  it('accepts an intact chain whose anchor matches, and reports its head', () => {
    const c = chain(3);
    expect(verifyChain(c, { count: 3, hash: c[2]?.hash ?? '' })).toEqual({ ok: true, count: 3, headHash: c[2]?.hash });
    expect(verifyChain([], { count: 0, hash: GENESIS_HASH })).toEqual({ ok: true, count: 0, headHash: GENESIS_HASH });
  });

  it('names the first bad entry, and stops there', () => {
    const c = chain(4);
    const anchor = { count: 4, hash: c[3]?.hash ?? '' };
    const edited = c.map((e) => (e.seq === 2 ? { ...e, subject: 'other' } : e));
    expect(verifyChain(edited, anchor)).toMatchObject({ ok: false, seq: 2, problem: 'edited', count: 1, headHash: c[0]?.hash });
    const gap = c.filter((e) => e.seq !== 3);
    expect(verifyChain(gap, anchor)).toMatchObject({ ok: false, seq: 3, problem: 'deleted' });
    expect(verifyChain(c.slice(0, 3), anchor)).toMatchObject({ ok: false, seq: 4, problem: 'deleted' });
    expect(verifyChain(c, { count: 3, hash: c[2]?.hash ?? '' })).toMatchObject({ ok: false, seq: 4, problem: 'inserted' });
    expect(verifyChain(c, undefined)).toMatchObject({ ok: false, seq: 4, problem: 'anchor' });
  });

  it('turns a failed verification into an AuditChainError that names the entry', () => {
    const c = chain(2);
    const v = verifyChain(c.slice(1), { count: 2, hash: c[1]?.hash ?? '' });
    if (v.ok) throw new Error('expected a broken chain');
    const err = auditChainError(v);
    expect(err).toBeInstanceOf(AuditChainError);
    expect(err.code).toBe('MERIDIAN_E_AUDIT_CHAIN_BROKEN');
    expect(err.seq).toBe(1);
    expect(err.message).toMatch(/broken at entry 1 \(deleted\)/);
  });
});
