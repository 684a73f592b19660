/**
 * The statistics the judge needs, in plain TypeScript: exact binomial tails, Fisher's exact test, the
 * Farrington–Manning score test for a difference of proportions with a margin, and Mann–Whitney U with
 * ties. Pure functions of numbers; p-values are one-sided.
 */

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7; about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** ln C(n, k). */
export function logChoose(n: number, k: number): number {
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

const EPS = 1e-15;
const TINY = 1e-300;

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Series of the lower incomplete gamma function P(a, x). */
function gammaSeries(a: number, x: number): number {
  let sum = 1 / a;
  let del = sum;
  let ap = a;
  for (let n = 0; n < 10_000; n++) {
    ap += 1;
    del *= x / ap;
    sum += del;
    if (Math.abs(del) < Math.abs(sum) * EPS) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
}

/** Continued fraction of the upper incomplete gamma function Q(a, x). */
function gammaContinuedFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i <= 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/** The regularised upper incomplete gamma function Q(a, x). */
export function upperIncompleteGamma(a: number, x: number): number {
  if (x <= 0) return 1;
  return x < a + 1 ? 1 - gammaSeries(a, x) : gammaContinuedFraction(a, x);
}

/** P(Z > z) for a standard normal Z, accurate in the far tail too. */
export function normalSf(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  if (z === Infinity) return 0;
  if (z === -Infinity) return 1;
  const half = 0.5 * upperIncompleteGamma(0.5, (z * z) / 2); // 0.5·erfc(|z|/√2)
  return z >= 0 ? half : 1 - half;
}

/** P(Z ≤ z) for a standard normal Z. */
export function normalCdf(z: number): number {
  return normalSf(-z);
}

/** P(X ≥ k) for X ~ Binomial(n, p): the chance of seeing k or more when the true rate is p. */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  return incompleteBeta(p, k, n - k + 1);
}

/** P(X ≤ k) for X ~ Binomial(n, p). */
export function binomialLowerTail(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  return incompleteBeta(1 - p, n - k, k + 1);
}

/** A one-sided test's result. `statistic` is the z score for the normal tests and the count for exact ones. */
export interface TestResult {
  readonly statistic: number;
  readonly pValue: number;
}

/**
 * Fisher's exact test, one-sided: is group 1's rate (x1 of n1) greater than group 2's (x2 of n2)? The
 * p-value is the hypergeometric chance of x1 or more events in group 1 given the margins.
 */
export function fisherExactGreater(x1: number, n1: number, x2: number, n2: number): TestResult {
  const total = n1 + n2;
  const events = x1 + x2;
  const hi = Math.min(n1, events);
  const base = logChoose(total, n1);
  let p = 0;
  for (let x = x1; x <= hi; x++) {
    p += Math.exp(logChoose(events, x) + logChoose(total - events, n1 - x) - base);
  }
  return { statistic: x1, pValue: Math.min(1, p) };
}

/**
 * The Farrington–Manning score test of H0: p1 − p2 ≤ margin against H1: p1 − p2 > margin, with the
 * variance taken at the maximum-likelihood rates restricted to p1 − p2 = margin (Farrington & Manning,
 * Statistics in Medicine 9, 1990). With margin 0 it is the pooled two-proportion z-test.
 */
export function farringtonManning(x1: number, n1: number, x2: number, n2: number, margin: number): TestResult & { p1: number; p2: number } {
  const r1 = x1 / n1;
  const r2 = x2 / n2;
  const [p1, p2] = restrictedRates(r1, n1, r2, n2, margin);
  const variance = (p1 * (1 - p1)) / n1 + (p2 * (1 - p2)) / n2;
  const diff = r1 - r2 - margin;
  let z: number;
  if (variance > 0) z = diff / Math.sqrt(variance);
  else z = diff > 0 ? Infinity : diff < 0 ? -Infinity : 0;
  return { statistic: z, pValue: normalSf(z), p1, p2 };
}

/** The maximum-likelihood (p1, p2) under p1 − p2 = margin (closed form of Farrington & Manning). */
export function restrictedRates(r1: number, n1: number, r2: number, n2: number, margin: number): [number, number] {
  if (margin === 0) {
    const pooled = (r1 * n1 + r2 * n2) / (n1 + n2);
    return [pooled, pooled];
  }
  const theta = n2 / n1;
  const a = 1 + theta;
  const b = -(1 + theta + r1 + theta * r2 + margin * (theta + 2));
  const c = margin * margin + margin * (2 * r1 + theta + 1) + r1 + theta * r2;
  const d = -r1 * margin * (1 + margin);
  const v = b ** 3 / (27 * a ** 3) - (b * c) / (6 * a * a) + d / (2 * a);
  const u = Math.sign(v) * Math.sqrt(Math.max(0, (b * b) / (9 * a * a) - c / (3 * a)));
  const cosArg = u === 0 ? 0 : Math.max(-1, Math.min(1, v / u ** 3));
  const w = (Math.PI + Math.acos(cosArg)) / 3;
  let p1 = 2 * u * Math.cos(w) - b / (3 * a);
  p1 = Math.max(margin, Math.min(1, p1));
  const p2 = Math.max(0, Math.min(1, p1 - margin));
  return [p1, p2];
}

/**
 * Mann–Whitney U over tied groups: `groups[i]` holds how many observations of group 1 and group 2 share
 * the i-th smallest value (raw samples group equal values; histograms group a bucket). One-sided: is
 * group 1 stochastically greater? Normal approximation with tie correction and continuity correction.
 * Returns U for group 1, the z score and the p-value.
 */
export function mannWhitneyGreater(groups: readonly (readonly [number, number])[]): TestResult & { u: number; n1: number; n2: number } {
  let n1 = 0;
  let n2 = 0;
  for (const [a, b] of groups) {
    n1 += a;
    n2 += b;
  }
  const n = n1 + n2;
  if (n1 === 0 || n2 === 0) return { u: 0, n1, n2, statistic: 0, pValue: 1 };
  let rankSum1 = 0;
  let below = 0;
  let ties = 0;
  for (const [a, b] of groups) {
    const t = a + b;
    if (t === 0) continue;
    const midRank = below + (t + 1) / 2;
    rankSum1 += a * midRank;
    ties += t ** 3 - t;
    below += t;
  }
  const u = rankSum1 - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - ties / (n * (n - 1)));
  if (variance <= 0) return { u, n1, n2, statistic: 0, pValue: 1 };
  const z = (u - mean - 0.5) / Math.sqrt(variance);
  return { u, n1, n2, statistic: z, pValue: normalSf(z) };
}

/** Groups two raw samples into tied groups for {@link mannWhitneyGreater}. */
export function tiedGroups(a: readonly number[], b: readonly number[]): [number, number][] {
  const all: [number, 0 | 1][] = [...a.map((v) => [v, 0] as [number, 0]), ...b.map((v) => [v, 1] as [number, 1])];
  all.sort((x, y) => x[0] - y[0]);
  const groups: [number, number][] = [];
  let last = Number.NaN;
  for (const [v, which] of all) {
    if (v !== last) {
      groups.push([0, 0]);
      last = v;
    }
    const g = groups[groups.length - 1] as [number, number];
    g[which] += 1;
  }
  return groups;
}
