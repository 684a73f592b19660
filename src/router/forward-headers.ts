/**
 * The forwarding policy for headers (pure, hot): which request headers are passed on to the upstream and
 * which response headers back to the client (hop-by-hop ones dropped, RFC 9110 §7.6.1), X-Forwarded-For,
 * W3C trace context and the sticky cookie. Used by the request path (`proxy.ts`).
 */
import { randomBytes } from 'node:crypto';

/** The header a trusted sender pins a request to one cluster with (never passed on). */
export const OVERRIDE_HEADER = 'x-meridian-cluster';
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** `00-` and the first 24 hex digits of every generated trace id (random per process). */
const TRACE_HEAD = `00-${randomBytes(12).toString('hex')}`;
/** Between the trace id and the span id, whose first 8 hex digits are random per process. */
const TRACE_MID = `-${randomBytes(4).toString('hex')}`;
let traceSeq = 0;

/** A W3C trace context header that may be forwarded as is. */
export function validTraceparent(v: string): boolean {
  const m = TRACEPARENT.exec(v);
  if (!m) return false;
  const [, version, trace, span, , rest] = m;
  if (version === 'ff' || trace === ZERO_TRACE || span === ZERO_SPAN) return false;
  return version !== '00' || rest === undefined;
}

/** A new trace context (not sampled): a per-process random prefix and a counter, so it costs no entropy per request. */
export function newTraceparent(): string {
  traceSeq = (traceSeq + 1) >>> 0;
  const n = traceSeq.toString(16).padStart(8, '0');
  return TRACE_HEAD + n + TRACE_MID + n + '-00';
}

/** The value of one cookie in a Cookie header, without allocating for the others. */
export function cookieValue(header: string, name: string): string | undefined {
  let i = 0;
  const n = name.length;
  while ((i = header.indexOf(name, i)) !== -1) {
    const before = i === 0 ? 59 : header.charCodeAt(i - 1);
    if ((before === 59 || before === 32 || before === 9) && header.charCodeAt(i + n) === 61) {
      const start = i + n + 1;
      let end = header.indexOf(';', start);
      if (end === -1) end = header.length;
      let v = header.slice(start, end).trim();
      if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
      return v.length > 0 ? v : undefined;
    }
    i += n;
  }
  return undefined;
}

/** The client address from X-Forwarded-For: the right-most entry that is not a trusted proxy. */
export function clientFromForwardedFor(xff: string, trusted: ((a: string) => boolean) | { has(a: string): boolean }): string | null {
  let end = xff.length;
  while (end > 0) {
    const comma = xff.lastIndexOf(',', end - 1);
    const a = xff.slice(comma + 1, end).trim();
    end = comma < 0 ? 0 : comma;
    if (a.length > 0 && !(typeof trusted === 'function' ? trusted(a) : trusted.has(a))) return a;
  }
  return null;
}

/**
 * The header names a request's `Connection` header lists (lower case; RFC 9110 §7.6.1), which are not
 * passed on; null for none (no header, or only `keep-alive` / `close`, the common case). `host` and
 * `x-forwarded-for` are never listed: a client cannot strip those.
 */
export function connectionListed(v: string | undefined): string[] | null {
  if (v === undefined || v === 'keep-alive' || v === 'close' || v === 'Keep-Alive' || v === 'Close') return null;
  const names: string[] = [];
  for (const t of v.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '' && name !== 'host' && name !== 'x-forwarded-for') names.push(name);
  }
  return names.length > 0 ? names : null;
}

/** Whether a header name as received (any case) is `name` (lower case, of the same length). */
function isNamedStr(raw: string, name: string): boolean {
  for (let i = 0; i < name.length; i++) if ((raw.charCodeAt(i) | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

/** What {@link forwardHeaders} changes in a request's headers. */
export interface ForwardOptions {
  /** The country header, not passed on: its sender is not a trusted source (null: none to drop). */
  readonly untrustedCountry: string | null;
  /** The sender is a trusted source (else its `X-Forwarded-Proto` is dropped). */
  readonly trusted: boolean;
  /** Names the `Connection` header lists (see {@link connectionListed}). */
  readonly listed: readonly string[] | null;
  /** The `X-Forwarded-For` to send (the client's, with the sender appended). */
  readonly xff: string;
  /** The received `traceparent` and `tracestate` are replaced by the two below. */
  readonly replaceTrace: boolean;
  readonly traceparent: string | null;
  readonly tracestate: string | string[] | undefined;
}

/**
 * The request headers passed on, as undici's flat `[name, value, …]` list, from the raw ones as the
 * client sent them (names compared length first, without lower-casing): hop-by-hop headers (RFC 9110
 * §7.6.1, plus `proxy-connection` and `proxy-authorization`) and `x-meridian-cluster` dropped, a second
 * `Host` or `Content-Length` dropped (Node keeps the first), X-Forwarded-For and trace context replaced.
 */
export function forwardHeaders(raw: readonly string[], o: ForwardOptions): string[] {
  const out: string[] = [];
  let host = false;
  let length = false;
  const country = o.untrustedCountry;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    switch (name.length) {
      case 2:
        if (isNamedStr(name, 'te')) continue;
        break;
      case 4:
        if (isNamedStr(name, 'host')) {
          if (host) continue;
          host = true;
        }
        break;
      case 7:
        if (isNamedStr(name, 'upgrade') || isNamedStr(name, 'trailer')) continue;
        break;
      case 10:
        if (isNamedStr(name, 'connection') || isNamedStr(name, 'keep-alive')) continue;
        if (o.replaceTrace && isNamedStr(name, 'tracestate')) continue;
        break;
      case 11:
        if (o.replaceTrace && isNamedStr(name, 'traceparent')) continue;
        break;
      case 14:
        if (isNamedStr(name, 'content-length')) {
          if (length) continue;
          length = true;
        }
        break;
      case 15:
        if (isNamedStr(name, 'x-forwarded-for')) continue;
        break;
      case 16:
        if (isNamedStr(name, 'proxy-connection')) continue;
        break;
      case 17:
        if (isNamedStr(name, 'transfer-encoding')) continue;
        if (!o.trusted && isNamedStr(name, 'x-forwarded-proto')) continue; // only a trusted proxy says how the client came
        break;
      case 18:
        if (isNamedStr(name, OVERRIDE_HEADER)) continue;
        break;
      case 19:
        if (isNamedStr(name, 'proxy-authorization')) continue;
        break;
    }
    if (country !== null && name.length === country.length && isNamedStr(name, country)) continue; // never pass on a claim nobody vouched for
    if (o.listed !== null && o.listed.includes(name.toLowerCase())) continue;
    out.push(name, raw[i + 1] as string);
  }
  out.push('x-forwarded-for', o.xff);
  if (o.traceparent !== null) out.push('traceparent', o.traceparent);
  const ts = o.tracestate;
  if (ts !== undefined) out.push('tracestate', typeof ts === 'string' ? ts : ts.join(','));
  return out;
}

/** Whether a raw header name (any case) is `name` (lower-case, of the same length). */
function isNamed(raw: Buffer, name: string): boolean {
  // `| 0x20` lower-cases ASCII letters and keeps `-`; a header name has no control characters
  for (let i = 0; i < name.length; i++) if (((raw[i] as number) | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

/** A response header about one connection (RFC 9110 §7.6.1), never passed on; matched on the raw name. */
export function isHopByHopResponse(raw: Buffer): boolean {
  switch (raw.length) {
    case 2:
      return isNamed(raw, 'te');
    case 7:
      return isNamed(raw, 'upgrade') || isNamed(raw, 'trailer');
    case 10:
      return isNamed(raw, 'connection') || isNamed(raw, 'keep-alive');
    case 16:
      return isNamed(raw, 'proxy-connection');
    case 17:
      return isNamed(raw, 'transfer-encoding');
    default:
      return false;
  }
}

/**
 * The names the upstream's `Connection` headers list (RFC 9110 §7.6.1: about its connection to us,
 * never passed on), lower case; null for none (the common case: none, `keep-alive` or `close`).
 */
export function responseConnectionListed(raw: Buffer[]): string[] | null {
  let listed: string[] | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as RawBuffer;
    if (name.length !== 10 || !isNamed(name, 'connection')) continue;
    const v = raw[i + 1] as RawBuffer;
    const more = connectionListed(v.latin1Slice(0, v.length));
    if (more !== null) (listed ??= []).push(...more);
  }
  return listed;
}

/** Response header names most upstreams send, by length: passed on as these constants instead of a new string each. */
const COMMON_RESPONSE_HEADERS: readonly (readonly string[] | undefined)[] = (() => {
  const byLength: string[][] = [];
  for (const n of [
    'date',
    'etag',
    'vary',
    'server',
    'expires',
    'location',
    'set-cookie',
    'content-type',
    'accept-ranges',
    'cache-control',
    'last-modified',
    'content-length',
    'content-encoding',
  ]) {
    (byLength[n.length] ??= []).push(n);
  }
  return byLength;
})();

/** A raw response header name as a string: a shared constant when it is a common one (in lower case), else as sent. */
export function headerName(raw: RawBuffer): string {
  const common = COMMON_RESPONSE_HEADERS[raw.length];
  if (common !== undefined) for (let k = 0; k < common.length; k++) if (isNamed(raw, common[k] as string)) return common[k] as string;
  return raw.latin1Slice(0, raw.length);
}

/** Node's `Buffer#latin1Slice`: the bytes as a one-byte string, without `toString`'s encoding lookup. */
export type RawBuffer = Buffer & { latin1Slice(start: number, end: number): string };
