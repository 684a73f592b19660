/**
 * The judge's statistics against known values. The reference numbers come from SciPy 1.17
 * (scipy.stats.binom, fisher_exact, norm, mannwhitneyu) and from textbook examples, as noted per case.
 */
import { describe, expect, it } from 'vitest';
import { stats } from '../src/rollout/analysis/index.js';

const {
  binomialLowerTail,
  binomialUpperTail,
  farringtonManning,
  fisherExactGreater,
  logGamma,
  mannWhitneyGreater,
  normalCdf,
  normalSf,
  restrictedRates,
  tiedGroups,
} = stats;

describe('special functions', () => {
  it('logGamma matches factorials and Γ(1/2) = √π', () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(11)).toBeCloseTo(Math.log(3628800), 10);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(logGamma(171)).toBeCloseTo(706.5730622457874, 8);
  });

  it('the normal tail, also far out', () => {
    expect(normalSf(1.96)).toBeCloseTo(0.024997895148220435, 12);
    expect(normalSf(-1)).toBeCloseTo(0.8413447460685429, 12);
    expect(normalSf(0)).toBe(0.5);
    expect(normalSf(8) / 6.22096057427174e-16).toBeCloseTo(1, 6);
    expect(normalCdf(1.6448536269514722)).toBeCloseTo(0.95, 12);
    expect(normalSf(Infinity)).toBe(0);
  });
});

describe('exact binomial tails', () => {
  it.each([
    // k, n, p, P(X ≥ k) from scipy.stats.binom.sf(k - 1, n, p)
    [3, 10, 0.1, 0.0701908264],
    [6, 200, 0.01, 0.01602290690917754],
    [50, 1000, 0.01, 8.306371435388825e-20],
    [100, 100000, 0.0005, 3.160344787481181e-10],
  ])('P(X ≥ %i | n=%i, p=%f)', (k, n, p, want) => {
    const got = binomialUpperTail(k, n, p);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-9);
  });

  it('lower tail and the edges', () => {
    expect(binomialLowerTail(3, 1000, 0.01)).toBeCloseTo(0.010072654772014291, 12);
    expect(binomialUpperTail(0, 10, 0.5)).toBe(1);
    expect(binomialUpperTail(11, 10, 0.5)).toBe(0);
    expect(binomialUpperTail(1, 10, 0)).toBe(0);
    expect(binomialLowerTail(10, 10, 0.3)).toBe(1);
  });

  it('agrees with a direct sum of the probability mass', () => {
    const n = 60;
    const p = 0.07;
    const pmf = (k: number) => Math.exp(stats.logChoose(n, k) + k * Math.log(p) + (n - k) * Math.log(1 - p));
    for (let k = 0; k <= n; k += 3) {
      let direct = 0;
      for (let j = k; j <= n; j++) direct += pmf(j);
      expect(binomialUpperTail(k, n, p)).toBeCloseTo(direct, 12);
    }
  });
});

describe('two proportions', () => {
  it("Fisher's exact test: the lady tasting tea, and a canary table", () => {
    // Fisher (1935): 3 of 4 cups right each way; one-sided p = 17/70
    expect(fisherExactGreater(3, 4, 1, 4).pValue).toBeCloseTo(0.24285714285714283, 12);
    expect(fisherExactGreater(10, 200, 20, 3800).pValue / 9.756280522752742e-7).toBeCloseTo(1, 6);
    expect(fisherExactGreater(1, 200, 19, 3800).pValue).toBeCloseTo(0.6424121661629039, 10);
  });

  it('Farrington–Manning with margin 0 is the pooled two-proportion z-test', () => {
    // z = (0.15 − 0.05) / √(0.1 · 0.9 · (1/100 + 1/100)) = 2.357, p = 0.00921 (R: prop.test(correct = FALSE))
    const r = farringtonManning(15, 100, 5, 100, 0);
    expect(r.statistic).toBeCloseTo(2.357022603955158, 10);
    expect(r.pValue).toBeCloseTo(0.009211062727049513, 10);
  });

  it('the restricted rates maximise the likelihood under p1 − p2 = margin', () => {
    const cases: [number, number, number, number, number][] = [
      [10, 200, 20, 3800, 0.005],
      [0, 200, 19, 3800, 0.005],
      [30, 300, 5, 1000, 0.01],
      [3, 50, 1, 40, 0.1],
    ];
    for (const [x1, n1, x2, n2, m] of cases) {
      const [p1, p2] = restrictedRates(x1 / n1, n1, x2 / n2, n2, m);
      expect(p1 - p2).toBeCloseTo(m, 12);
      // a golden-section search of the log-likelihood along p1 − p2 = m finds the same point
      const ll = (a: number) => x1 * Math.log(a) + (n1 - x1) * Math.log(1 - a) + x2 * Math.log(a - m) + (n2 - x2) * Math.log(1 - a + m);
      let lo = m + 1e-12;
      let hi = 1 - 1e-12;
      const g = (Math.sqrt(5) - 1) / 2;
      for (let i = 0; i < 200; i++) {
        const a = hi - g * (hi - lo);
        const b = lo + g * (hi - lo);
        if (ll(a) < ll(b)) lo = a;
        else hi = b;
      }
      expect(p1).toBeCloseTo((lo + hi) / 2, 7);
    }
  });

  it('Farrington–Manning: significant for a 5% canary against 0.5% + 0.5%, not for an equal one', () => {
    expect(farringtonManning(20, 400, 20, 4000, 0.005).pValue).toBeLessThan(0.001);
    expect(farringtonManning(2, 400, 20, 4000, 0.005).pValue).toBeGreaterThan(0.5);
  });
});

describe('Mann–Whitney U', () => {
  it('matches scipy.stats.mannwhitneyu (asymptotic, continuity correction), with and without ties', () => {
    const x = [1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8, 12, 15];
    const y = [0.5, 1.0, 2.2, 2.5, 3.0, 3.3, 4.0, 4.1];
    const r = mannWhitneyGreater(tiedGroups(x, y));
    expect(r.u).toBe(66);
    expect(r.pValue).toBeCloseTo(0.011662278226631195, 10);
    const t = mannWhitneyGreater(tiedGroups([1, 1, 2, 2, 2, 3, 3, 3, 3], [1, 1, 1, 2, 2, 3]));
    expect(t.u).toBe(37);
    expect(t.pValue).toBeCloseTo(0.11803676380757033, 10);
  });

  it('U counts the pairs where the first sample is larger (ties count one half)', () => {
    const a = [3, 5, 5, 9];
    const b = [1, 5, 7];
    let pairs = 0;
    for (const x of a) for (const y of b) pairs += x > y ? 1 : x === y ? 0.5 : 0;
    expect(mannWhitneyGreater(tiedGroups(a, b)).u).toBe(pairs);
  });

  it('an empty group says nothing', () => {
    expect(mannWhitneyGreater(tiedGroups([], [1, 2])).pValue).toBe(1);
  });
});
