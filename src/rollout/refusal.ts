/** A refused action is audited in a transaction of its own (the refused one is rolled back), then refused. */
import type { MeridianError } from '../errors.js';
import type { AuditInput, Store } from '../store/store.js';

/**
 * Appends `entry` to the audit log and throws `err`. The refusal stands even when the write fails
 * (callers and exit codes depend on its code): the failed write rides along as its `cause`.
 */
export async function refuseAudited(store: Store, entry: AuditInput, err: MeridianError): Promise<never> {
  try {
    await store.appendAudit(entry);
  } catch (auditErr) {
    Object.defineProperty(err, 'cause', { value: auditErr, configurable: true, writable: true });
  }
  throw err;
}
