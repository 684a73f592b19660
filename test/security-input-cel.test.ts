/**
 * Attack suite, CEL policies (security review F-6): a custom rule with a backtracking regular expression
 * or nested comprehensions stalled `validate` (and every pipeline) for hours. `matches()` is RE2 now and
 * every evaluation runs under a cost limit; the review's reproductions end at once with a finding.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CelCostError, celCostLimit, compileRule, DEFAULT_CEL_COST_LIMIT, type BudgetedRule } from '../src/validate/checks/cel-budget.js';
import { runMeridian } from './support/cli-kit.js';

const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');
const work = mkdtempSync(join(tmpdir(), 'meridian-sec-cel-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the shop fleet whose custom rule is `cel`. */
function fleetWithRule(name: string, cel: string): string {
  const dir = join(work, name);
  cpSync(SHOP, dir, { recursive: true });
  const file = join(dir, 'policies.yaml');
  const text = readFileSync(file, 'utf8').replace(/cel: ".*"$/m, () => `cel: ${JSON.stringify(cel)}`);
  expect(text).toContain(JSON.stringify(cel));
  writeFileSync(file, text);
  return dir;
}

const TEN = '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]';
/** `depth` comprehensions over ten elements nested: 10 + 100 + … + 10^depth steps. */
function nested(depth: number, inner = 'v0 >= 0'): string {
  let e = inner;
  for (let d = 0; d < depth; d++) e = `${TEN}.all(v${d}, ${e})`;
  return e;
}

function compiled(cel: string): BudgetedRule {
  const r = compileRule(cel);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

const VARS = { service: { name: 'web', env: { ENCRYPT_AT_REST: 'true' } }, cluster: {}, region: {} };

describe('F-6: matches() runs in linear time (RE2)', () => {
  it("answers the review's catastrophic pattern on 40 characters", () => {
    // a backtracking engine takes 2^40 steps here (the review: 26 characters took 6.8 s)
    const rule = compiled(`'${'a'.repeat(40)}!'.matches('^(a+)+$') || service.name.matches('^w[a-z]+$')`);
    expect(rule.run(VARS, DEFAULT_CEL_COST_LIMIT)).toBe(true);
  });

  it('refuses patterns RE2 does not have (backreferences, lookaround) when the rule compiles', () => {
    expect(compileRule("service.name.matches('(a)\\\\1')")).toMatch(/is not an RE2 pattern/);
    expect(compileRule("service.name.matches('(?=w)web')")).toMatch(/is not an RE2 pattern/);
  });
});

describe('F-6: every evaluation has a cost limit', () => {
  it('counts a step per element of each comprehension, nested ones multiplied', () => {
    const rule = compiled(nested(2)); // 10 + 100 steps
    expect(rule.run(VARS, 110)).toBe(true);
    expect(() => rule.run(VARS, 109)).toThrow(CelCostError);
  });

  it('stops a depth-7 nest (10^7 steps) at the limit, and `cel.bind` doubling a string', () => {
    expect(() => compiled(nested(7)).run(VARS, DEFAULT_CEL_COST_LIMIT)).toThrow(CelCostError);
    let doubling = 'size(s0) > 0';
    for (let i = 1; i <= 30; i++) doubling = `cel.bind(s${i - 1}, s${i} + s${i}, ${doubling})`; // s0 is 2^30 times the name
    expect(() => compiled(`cel.bind(s30, service.name, ${doubling})`).run(VARS, DEFAULT_CEL_COST_LIMIT)).toThrow(CelCostError);
  });

  it("keeps CEL's results: map, filter, exists, exists_one, and errors that are not the budget's", () => {
    expect(compiled('[1, 2, 3].map(x, x * 2) == [2, 4, 6] && [1, 2, 3].filter(x, x > 1).size() == 2').run(VARS, 100)).toBe(true);
    expect(compiled('[1, 2, 3].exists(x, x == 3) && [1, 2, 3].exists_one(x, x == 2) && ![1, 2].all(x, x == 1)').run(VARS, 100)).toBe(true);
    expect(() => compiled("service.env.NOPE == 'x'").run(VARS, 100)).toThrow(/No such key/);
  });

  it('MERIDIAN_CEL_COST_LIMIT sets the limit', () => {
    expect(celCostLimit({})).toBe(DEFAULT_CEL_COST_LIMIT);
    expect(celCostLimit({ MERIDIAN_CEL_COST_LIMIT: '5000000' })).toBe(5_000_000);
    expect(celCostLimit({ MERIDIAN_CEL_COST_LIMIT: 'lots' })).toBe(DEFAULT_CEL_COST_LIMIT);
  });
});

describe("F-6: the review's reproductions through `meridian validate`", () => {
  it('a backtracking pattern in a rule: validate answers (the rule holds where it should)', () => {
    const dir = fleetWithRule('redos', `!('${'a'.repeat(40)}!'.matches('^(a+)+$')) && service.env.ENCRYPT_AT_REST == 'true'`);
    const r = runMeridian(['validate', dir, '--no-state'], { cwd: work, timeout: 90_000 });
    expect(r.code, `killed by the timeout, or: ${r.err}`).not.toBeNull();
    expect(r.out + r.err).not.toMatch(/MERIDIAN_E_POLICY_(ERROR|INVALID)/);
  });

  it('nested comprehensions: one MERIDIAN_E_POLICY_ERROR naming the limit, exit 1, no stack', () => {
    const dir = fleetWithRule('nest', nested(7, 'v0 + size(service.name) >= 0'));
    const r = runMeridian(['validate', dir, '--no-state'], { cwd: work, timeout: 90_000 });
    const all = r.out + r.err;
    expect(r.code, all).toBe(1);
    expect(all.match(/MERIDIAN_E_POLICY_ERROR/g), all).toHaveLength(1);
    expect(all).toMatch(/cost limit of 100000/);
    expect(all).not.toMatch(/^\s+at .+[:(]/m);
    const raised = runMeridian(['validate', dir, '--no-state'], { cwd: work, timeout: 90_000, env: { MERIDIAN_CEL_COST_LIMIT: '50' } });
    expect(raised.out + raised.err).toMatch(/cost limit of 50\b/);
  });
});
