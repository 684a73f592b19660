/**
 * Deterministic trace and span ids, and the context of a remote parent: what a follower of persisted events
 * needs to continue one trace across processes. Light: only the OpenTelemetry API, never the SDK.
 */
import { createHash } from 'node:crypto';
import { ROOT_CONTEXT, trace, TraceFlags, type Context } from '@opentelemetry/api';

/** Hex digest of `parts`, cut to `hexDigits` (never all zeros, which W3C forbids). */
export function derivedId(hexDigits: 16 | 32, ...parts: readonly (string | number)[]): string {
  const id = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, hexDigits);
  return /^0+$/.test(id) ? `${id.slice(0, -1)}1` : id;
}

/** A context whose parent is the (remote, sampled) span `spanId` of trace `traceId`. */
export function parentContext(traceId: string, spanId: string): Context {
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
}
