/**
 * The audit chain's verdict for `GET /api/v1/audit`, without re-hashing the whole log on every read: the
 * chain is walked whole once, then only past the head verified last time (the store checks that entry is
 * still there with that hash, else walks it all). A whole walk is redone every `fullEveryMs` as well, so
 * that an edit deep in the log is found by the API too; `meridian audit verify` always walks it all.
 */
import type { AuditVerification, Store } from '../store/store.js';

/** Default time between whole walks: 10 minutes. */
export const FULL_VERIFY_MS = 10 * 60_000;

/** Verifies the audit chain incrementally. */
export class AuditVerifier {
  #verified: { count: number; hash: string; at: number } | null = null;

  constructor(
    private readonly store: Pick<Store, 'verifyAudit'>,
    private readonly fullEveryMs = FULL_VERIFY_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The chain's verdict now. */
  async verify(): Promise<AuditVerification> {
    const last = this.#verified;
    const fresh = last !== null && this.now() - last.at < this.fullEveryMs;
    const v = fresh ? await this.store.verifyAudit({ from: { count: last.count, hash: last.hash } }) : await this.store.verifyAudit();
    this.#verified = v.ok ? { count: v.count, hash: v.headHash, at: fresh ? last.at : this.now() } : null;
    return v;
  }
}
