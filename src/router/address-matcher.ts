/**
 * Matching client addresses against the trusted sources (`routing.trustedSources`): IPv4 and IPv6
 * addresses and CIDR blocks, with IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) seen as IPv4.
 */
import { BlockList, isIP } from 'node:net';
import { RouterError } from './errors.js';

/** Loopback only: the default trusted sources. */
export const LOOPBACK_SOURCES: readonly string[] = ['127.0.0.0/8', '::1/128'];

const MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The address as the matcher sees it: IPv4-mapped IPv6 becomes plain IPv4. */
export function normalizeAddress(address: string): string {
  const m = MAPPED.exec(address);
  return m ? (m[1] as string) : address;
}

/** Answers "is this address in the list?", with a bounded cache in front of the block list. */
export class AddressMatcher {
  readonly sources: readonly string[];
  readonly #list = new BlockList();
  readonly #cache = new Map<string, boolean>();

  /** @throws RouterError when an entry is neither an address nor a CIDR block */
  constructor(sources: readonly string[]) {
    this.sources = sources;
    for (const s of sources) {
      const [addr = '', bits] = s.split('/');
      const a = normalizeAddress(addr.trim());
      const family = isIP(a);
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new RouterError(
          'MERIDIAN_E_ROUTER_TRUSTED_SOURCE',
          `trustedSources: ${JSON.stringify(s)} is not an IP address or CIDR block`,
          {
            hint: 'write addresses like 10.0.0.7 or blocks like 10.0.0.0/8 and fd00::/8',
          },
        );
      }
      this.#list.addSubnet(a, prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  /** True when the address is in one of the sources. An unknown address (a closed socket) is never trusted. */
  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const hit = this.#cache.get(address);
    if (hit !== undefined) return hit;
    const a = normalizeAddress(address);
    const family = isIP(a);
    const ok = family !== 0 && this.#list.check(a, family === 4 ? 'ipv4' : 'ipv6');
    if (this.#cache.size >= 4096) this.#cache.clear();
    this.#cache.set(address, ok);
    return ok;
  }
}
