/**
 * Which routed service a request is for, from `routing.<svc>.match`: the host (exact, or a wildcard
 * like `*.shop.example` for any subdomain), then the longest `pathPrefix`. As in Envoy's virtual hosts,
 * the most specific host group is chosen first (exact, then the longest wildcard, then services that
 * name no host) and a path is matched inside it only.
 */
import type { Routing } from '../spec/schema.js';

interface Entry<T> {
  readonly prefix: string;
  readonly value: T;
}

function byPrefix<T>(a: Entry<T>, b: Entry<T>): number {
  return b.prefix.length - a.prefix.length || (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0);
}

/** The host part of a Host header, lower-case, without port or trailing dot. */
export function normalizeHost(host: string | undefined): string {
  if (!host) return '';
  let h = host;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    h = end > 0 ? h.slice(0, end + 1) : h;
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

export class ServiceMatcher<T> {
  readonly #exact = new Map<string, Entry<T>[]>();
  readonly #wild: { suffix: string; entries: Entry<T>[] }[] = [];
  readonly #any: Entry<T>[] = [];
  readonly #cache = new Map<string, readonly Entry<T>[] | null>();

  /**
   * @param services routed services in a stable order, with their `match` and the value to return. A
   *   service with no `match` takes any host and path (only meaningful when it is the one routed service).
   */
  constructor(services: readonly { readonly match: Routing['match'] | undefined; readonly value: T }[]) {
    const wild = new Map<string, Entry<T>[]>();
    for (const { match, value } of services) {
      const prefix = match?.pathPrefix ?? '/';
      const hosts = match?.hosts ?? [];
      if (hosts.length === 0) this.#any.push({ prefix, value });
      for (const raw of hosts) {
        const host = raw.toLowerCase();
        if (host === '*') this.#any.push({ prefix, value });
        else if (host.startsWith('*.')) {
          const suffix = host.slice(1); // ".shop.example"
          wild.set(suffix, [...(wild.get(suffix) ?? []), { prefix, value }]);
        } else this.#exact.set(host, [...(this.#exact.get(host) ?? []), { prefix, value }]);
      }
    }
    for (const list of this.#exact.values()) list.sort(byPrefix);
    for (const [suffix, entries] of wild) this.#wild.push({ suffix, entries: entries.sort(byPrefix) });
    this.#wild.sort((a, b) => b.suffix.length - a.suffix.length);
    this.#any.sort(byPrefix);
  }

  /** The service for a request, or undefined when none matches. */
  match(hostHeader: string | undefined, path: string): T | undefined {
    const key = hostHeader ?? '';
    let group = this.#cache.get(key);
    if (group === undefined) {
      group = this.#group(normalizeHost(hostHeader));
      if (this.#cache.size >= 1024) this.#cache.clear();
      this.#cache.set(key, group);
    }
    if (group === null) return undefined;
    for (let i = 0; i < group.length; i++) {
      const e = group[i] as Entry<T>;
      if (path.startsWith(e.prefix)) return e.value;
    }
    return undefined;
  }

  #group(host: string): readonly Entry<T>[] | null {
    const exact = this.#exact.get(host);
    if (exact) return exact;
    for (const w of this.#wild) if (host.length > w.suffix.length && host.endsWith(w.suffix)) return w.entries;
    return this.#any.length > 0 ? this.#any : null;
  }
}
