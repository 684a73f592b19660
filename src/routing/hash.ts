/**
 * Stable, allocation-free hashing of user keys for sticky routing: 32-bit FNV-1a over the UTF-8 bytes
 * of a string, finished with murmur3's fmix32 so that every output bit depends on every input bit.
 *
 * The exact definitions (so that an exporter or another data plane can reproduce the same buckets):
 * - `H = fnv1a32(utf8(prefix) ‖ 0x00 ‖ utf8(userKey))`, where `prefix` is the service name (canary
 *   bucket and cluster choice) or the flag name (flag bucket);
 * - `bucket = fmix32(H) mod 10000` (as unsigned), in 0..9999;
 * - `unit = fmix32(H xor 0x9e3779b9) / 2^32` (as unsigned), in [0, 1): the sticky cluster choice.
 */

/** FNV-1a 32-bit offset basis. */
export const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
/** XOR-ed into the hash before finishing it for the cluster choice, so the choice is independent of the bucket. */
const UNIT_SALT = 0x9e3779b9 | 0;
/** Buckets per user: canary and flag percentages apply at a granularity of 0.01%. */
export const BUCKETS = 10_000;

/** One FNV-1a round over one byte. Returns a signed 32-bit integer (a V8 small integer: no allocation). */
export function fnv1aByte(h: number, byte: number): number {
  return Math.imul(h ^ byte, FNV_PRIME) | 0;
}

/**
 * Continues an FNV-1a hash over the UTF-8 encoding of `s`, without allocating: the string is encoded
 * on the fly (lone surrogates become U+FFFD, as `TextEncoder` does).
 */
export function fnv1aString(h: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), FNV_PRIME);
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate
    h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h | 0;
}

/** murmur3's 32-bit finaliser: a bijection with full avalanche. Signed 32-bit result. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** The hash state after `utf8(prefix) ‖ 0x00`: precomputed per service and per flag. */
export function hashSeed(prefix: string): number {
  return fnv1aByte(fnv1aString(FNV_OFFSET, prefix), 0);
}

/** The user's hash under a seed from {@link hashSeed}. */
export function userHash(seed: number, userKey: string): number {
  return fnv1aString(seed, userKey);
}

/** The bucket (0..9999) of a user hash: canary when `bucket < weight% × 100`. */
export function bucketOf(h: number): number {
  return (fmix32(h) >>> 0) % BUCKETS;
}

/** The sticky cluster-choice number in [0, 1) of a user hash, independent of its bucket. */
export function unitOf(h: number): number {
  return (fmix32(h ^ UNIT_SALT) >>> 0) / 4294967296;
}

/** The canary bucket of a user for a service (0..9999). Allocates nothing but is not meant for the hot path's inner loop. */
export function userBucket(service: string, userKey: string): number {
  return bucketOf(userHash(hashSeed(service), userKey));
}
