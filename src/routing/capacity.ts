/**
 * Spill-over capped by declared capacity. Envoy's priority load assumes that every level can take the
 * whole traffic; a level's clusters declare what they can serve, so a level keeps at most its capacity's
 * share of the client region's expected traffic and the rest moves on.
 */

const EPS = 1e-12;

/**
 * Caps per-level traffic shares by capacity shares (both fractions of the client region's traffic):
 * 1. in priority order, a level keeps `min(its share + what spilled onto it, its cap)` and passes the
 *    rest to the next level;
 * 2. what is left after the last level goes back, in priority order, to levels with room under their cap;
 * 3. what is still left (demand beyond every cap) is spread in proportion to the caps — every level is
 *    overloaded by the same factor — and reported as `overflow`.
 * The result sums to 1 whenever the input does.
 */
export function capLoads(shares: readonly number[], caps: readonly number[]): { shares: number[]; overflow: number } {
  const n = shares.length;
  const out = new Array<number>(n).fill(0);
  let carry = 0;
  for (let i = 0; i < n; i++) {
    const want = (shares[i] ?? 0) + carry;
    const give = Math.min(want, Math.max(0, caps[i] ?? 0));
    out[i] = give;
    carry = want - give;
  }
  for (let i = 0; i < n && carry > EPS; i++) {
    const room = Math.max(0, caps[i] ?? 0) - (out[i] ?? 0);
    if (room <= 0) continue;
    const add = Math.min(room, carry);
    out[i] = (out[i] ?? 0) + add;
    carry -= add;
  }
  const overflow = carry > EPS ? carry : 0;
  if (overflow > 0) {
    const capSum = caps.reduce((a, c) => a + Math.max(0, c), 0);
    for (let i = 0; i < n; i++) {
      out[i] = (out[i] ?? 0) + (capSum > 0 ? (overflow * Math.max(0, caps[i] ?? 0)) / capSum : overflow * (shares[i] ?? 0));
    }
  }
  const total = out.reduce((a, b) => a + b, 0);
  return { shares: total > 0 ? out.map((x) => x / total) : out, overflow };
}
