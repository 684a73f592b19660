/**
 * A tiny MaxMind DB writer for tests: a GeoIP2-Country-shaped IPv4 database (`country.iso_code` per
 * network) in the MaxMind DB 2.0 binary format, so BIND's `geoip country XX` ACLs can be tested on
 * loopback networks (127.x.y.z mapped to countries) without the real, licensed database.
 * Format: https://maxmind.github.io/MaxMind-DB/ (24-bit records, IPv4 tree of depth 32).
 */

/** A uint32 (a plain number is written as uint16 when it fits: libmaxminddb checks metadata types). */
class Uint32 {
  constructor(readonly n: number) {}
}

type Value = string | number | bigint | Uint32 | readonly Value[] | { readonly [k: string]: Value };

/** A control byte (and extended type byte) for a type and size < 29. */
function control(type: number, size: number): number[] {
  if (size >= 29) throw new Error(`mmdb-kit: size ${size} too large`);
  return type <= 7 ? [(type << 5) | size] : [size, type - 7];
}

function uintBytes(n: bigint): number[] {
  const out: number[] = [];
  while (n > 0n) {
    out.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  return out;
}

/** Encodes a value: strings, unsigned integers (uint16/uint32 by size, bigint as uint64), arrays, maps. */
function encode(v: Value): number[] {
  if (typeof v === 'string') {
    const b = [...Buffer.from(v, 'utf8')];
    return [...control(2, b.length), ...b];
  }
  if (typeof v === 'bigint') {
    const b = uintBytes(v);
    return [...control(9, b.length), ...b];
  }
  if (v instanceof Uint32) {
    const b = uintBytes(BigInt(v.n));
    return [...control(6, b.length), ...b];
  }
  if (typeof v === 'number') {
    const b = uintBytes(BigInt(v));
    return [...control(v < 0x10000 ? 5 : 6, b.length), ...b];
  }
  if (Array.isArray(v)) return [...control(11, v.length), ...(v as Value[]).flatMap(encode)];
  const entries = Object.entries(v as Record<string, Value>);
  return [...control(7, entries.length), ...entries.flatMap(([k, x]) => [...encode(k), ...encode(x)])];
}

/** IPv4 CIDR → its 32 bits and prefix length. */
function parseNet(cidr: string): { bits: number; len: number } {
  const [ip, len] = cidr.split('/');
  const parts = (ip ?? '').split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`mmdb-kit: not an IPv4 CIDR: ${cidr}`);
  return { bits: parts.reduce((a, p) => a * 256 + p, 0), len: Number(len ?? 32) };
}

/** A GeoIP2-Country-shaped MaxMind DB: each IPv4 network (CIDR) to its ISO country code. */
export function countryMmdb(nets: Readonly<Record<string, string>>): Buffer {
  // the data section: one record per country
  const data: number[] = [];
  const offsets = new Map<string, number>();
  for (const cc of new Set(Object.values(nets))) {
    offsets.set(cc, data.length);
    data.push(...encode({ country: { iso_code: cc } }));
  }
  // the search tree: records are a node index, EMPTY, or { data: offset }
  type Rec = number | 'empty' | { data: number };
  const nodes: [Rec, Rec][] = [['empty', 'empty']];
  for (const [cidr, cc] of Object.entries(nets)) {
    const { bits, len } = parseNet(cidr);
    let node = 0;
    for (let i = 0; i < len; i++) {
      const bit = Math.floor(bits / 2 ** (31 - i)) % 2;
      const n = nodes[node] as [Rec, Rec];
      if (i === len - 1) n[bit] = { data: offsets.get(cc) ?? 0 };
      else {
        if (typeof n[bit] !== 'number') {
          nodes.push(['empty', 'empty']);
          n[bit] = nodes.length - 1;
        }
        node = n[bit] as number;
      }
    }
  }
  const count = nodes.length;
  const tree = Buffer.alloc(count * 6);
  const value = (r: Rec): number => (r === 'empty' ? count : typeof r === 'number' ? r : count + 16 + r.data);
  nodes.forEach(([l, r], i) => {
    tree.writeUIntBE(value(l), i * 6, 3);
    tree.writeUIntBE(value(r), i * 6 + 3, 3);
  });
  const metadata = encode({
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1_765_000_000n,
    database_type: 'GeoIP2-Country',
    description: { en: 'Meridian test countries' },
    ip_version: 4,
    languages: ['en'],
    node_count: new Uint32(count),
    record_size: 24,
  });
  return Buffer.concat([
    tree,
    Buffer.alloc(16),
    Buffer.from(data),
    Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com')]),
    Buffer.from(metadata),
  ]);
}
