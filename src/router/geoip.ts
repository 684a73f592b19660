/**
 * Client country from the client's IP address. The default database is the CC0 country database that
 * ships inside the npm package `@ip-location-db/geo-whois-asn-country-mmdb` (read from disk once, never
 * downloaded); any MaxMind-format (.mmdb) country database works, e.g. GeoLite2-Country.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Reader, type Response } from 'maxmind';
import { normalizeAddress } from './address-matcher.js';
import { RouterError } from './errors.js';

/** Looks up the ISO 3166-1 alpha-2 country of an IP address; null when unknown (private, loopback, unlisted). */
export interface GeoIp {
  country(ip: string): string | null;
}

/** The database shipped with the package. */
export function defaultGeoIpPath(): string {
  return createRequire(import.meta.url).resolve('@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb');
}

type CountryRecord = Response & { country_code?: string; country?: { iso_code?: string } };

/** A GeoIP database in MaxMind format, with a bounded cache of recent answers (a lookup walks the tree: ~1 µs). */
export class MmdbGeoIp implements GeoIp {
  readonly path: string;
  readonly #reader: Reader<CountryRecord>;
  readonly #cache = new Map<string, string | null>();
  readonly #cacheSize: number;

  /** @throws RouterError when the file cannot be read or is not an .mmdb database */
  constructor(path: string = defaultGeoIpPath(), opts: { cacheSize?: number } = {}) {
    this.path = path;
    this.#cacheSize = opts.cacheSize ?? 50_000;
    try {
      this.#reader = new Reader<CountryRecord>(readFileSync(path));
    } catch (cause) {
      throw new RouterError('MERIDIAN_E_ROUTER_GEOIP', `cannot open the GeoIP database ${path}`, {
        cause,
        hint: 'pass a MaxMind-format country database (.mmdb), or reinstall the package to restore the bundled one',
      });
    }
  }

  country(ip: string): string | null {
    const hit = this.#cache.get(ip);
    if (hit !== undefined) return hit;
    let code: string | null = null;
    try {
      const r = this.#reader.get(normalizeAddress(ip));
      code = r?.country_code ?? r?.country?.iso_code ?? null;
    } catch {
      code = null; // not an IP address
    }
    if (this.#cache.size >= this.#cacheSize) this.#cache.clear();
    this.#cache.set(ip, code);
    return code;
  }

  /** When the database was built (from its metadata). */
  get builtAt(): Date {
    return this.#reader.metadata.buildEpoch;
  }
}

/** No GeoIP: every client without a trusted country header has no home region. */
export const NO_GEOIP: GeoIp = { country: () => null };
