/**
 * Geography for routing: great-circle distance between region locations, Route 53-style bias, and the
 * lookup from a client's country to its home region.
 */

/** A point on the earth in degrees. */
export interface LatLon {
  readonly lat: number;
  readonly lon: number;
}

/** The mean earth radius (IUGG), in kilometres. */
export const EARTH_RADIUS_KM = 6371.0088;

const RAD = Math.PI / 180;

/** Great-circle distance between two points in kilometres (haversine formula). */
export function haversineKm(a: LatLon, b: LatLon): number {
  const dLat = (b.lat - a.lat) * RAD;
  const dLon = (b.lon - a.lon) * RAD;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(s)));
}

/**
 * The distance as Route 53's geoproximity routing sees it with a bias on the target (-99..99):
 * a positive bias shrinks it, `d × (1 − bias/100)`; a negative bias grows it, `d / (1 + bias/100)`
 * (Route 53 developer guide, "How Amazon Route 53 uses bias to route traffic"). With these two
 * formulas a bias of −b exactly undoes +b: +50 halves the distance, −50 doubles it.
 */
export function biasedDistance(distanceKm: number, bias: number): number {
  const b = Math.max(-99, Math.min(99, bias));
  return b >= 0 ? distanceKm * (1 - b / 100) : distanceKm / (1 + b / 100);
}

/**
 * Country code → home region name. Regions are visited in name order and the first region that lists
 * a country wins (a country listed twice is a fleet error that preflight reports; routing stays
 * deterministic meanwhile).
 */
export function countryRegions(regions: Readonly<Record<string, { readonly countries: readonly string[] }>>): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of Object.keys(regions).sort()) {
    for (const c of regions[name]?.countries ?? []) if (!out.has(c)) out.set(c, name);
  }
  return out;
}
