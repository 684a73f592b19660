/**
 * DNS rebinding: a web page can make a browser send requests to 127.0.0.1 under the page's own host name
 * (`attacker.example` resolving to 127.0.0.1), and read the answers. A control plane bound to loopback
 * therefore answers only requests whose `Host` is a loopback name or address, or a name the operator
 * allowed (as webpack-dev-server and Vite do). Bound beyond loopback, any `Host` is answered unless names
 * are configured. Pure.
 */
import { isIP } from 'node:net';

/** True for a loopback address (a peer's, or a bind address): 127.0.0.0/8, ::1, and 127.x mapped into IPv6. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  return a === '::1' || (isIP(a) === 4 && a.startsWith('127.'));
}

/** True for a host name or address only this machine reaches: `localhost`, `*.localhost`, loopback addresses. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h.endsWith('.localhost') || isLoopbackAddress(h);
}

/** The host name of a `Host` header value (without the port and brackets), lower case; null when malformed. */
export function hostName(header: string): string | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim());
  return m?.[1] ? m[1].toLowerCase().replace(/^\[(.*)\]$/, '$1') : null;
}

/**
 * Whether a request with this `Host` may be answered by a server bound to `bindHost`. No `Host` (HTTP/1.0)
 * is answered: browsers always send one.
 */
export function hostAllowed(header: string | undefined, bindHost: string, allowed: readonly string[] = []): boolean {
  if (header === undefined) return true;
  const name = hostName(header);
  if (name === null) return false;
  if (allowed.some((a) => a.toLowerCase() === name)) return true;
  if (isLoopbackHost(bindHost) || allowed.length > 0) return isLoopbackHost(name);
  return true;
}
