/** The audit log as the API and its `audit` event show it. */
import type { AuditEntry } from '../store/store.js';

/** An audit entry as the API shows it. */
export function auditJson(e: AuditEntry): Record<string, unknown> {
  return {
    seq: e.seq,
    at: e.at,
    actor: e.actor.id,
    via: e.actor.via ?? null,
    action: e.action,
    subject: e.subject,
    reason: e.reason,
    detail: e.data,
    hash: e.hash,
  };
}
