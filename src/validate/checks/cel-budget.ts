/**
 * CEL under a budget, as Kubernetes runs it (finding F-6 of the security review): `matches()` uses RE2
 * (re2js, linear time; the library's own `matches` is a backtracking `RegExp`), and every evaluation has
 * a cost limit, counted while it runs, that ends it with {@link CelCostError} instead of stalling
 * `validate` for hours.
 *
 * How: the parsed rule is rewritten before it is checked — `s.matches(p)` and `matches(s, p)` become a
 * call of our RE2 function, and the body of every comprehension (`all`, `exists`, `exists_one`, `map`,
 * `filter`) and the value of every `cel.bind` pass through a function that charges the budget. The
 * cost of one evaluation is then: 1 per comprehension step, plus the size (characters, elements,
 * entries) of what each step or binding yields, plus the length of the text each `matches()` reads.
 * The unit follows Kubernetes (1 per comprehension step, sizes for string and list work), whose limit per
 * CEL expression is 1,000,000 (`PerCallLimit`; cel-go's `CostLimit` is the same idea). The default here
 * is 100,000: cel-js steps about ten times slower than cel-go (200,000 steps/s measured on the shared
 * 2-core machine under load), so an evaluation stays well under a second. Inputs are known when
 * `validate` runs, so the cost is counted on them exactly rather than estimated beforehand.
 */
import { Environment, serialize, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';
import { RE2JS } from 're2js';

/** The cost one evaluation of a rule may spend, by default (a tenth of Kubernetes' per-expression limit: see above). */
export const DEFAULT_CEL_COST_LIMIT = 100_000;

/** The cost limit, or `MERIDIAN_CEL_COST_LIMIT` when that is a whole number above 0. */
export function celCostLimit(env: NodeJS.ProcessEnv = process.env): number {
  const v = env['MERIDIAN_CEL_COST_LIMIT'];
  const n = v === undefined ? NaN : Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_CEL_COST_LIMIT;
}

/** An evaluation that spent its cost limit; it was stopped there. */
export class CelCostError extends Error {
  readonly code = 'cost_limit';
  constructor(readonly limit: number) {
    super(`it spent its cost limit of ${limit} (comprehension steps, sizes of the values they yield, text read by matches())`);
  }
}

const MATCHES = '__meridian_re2_matches';
/** Charges for a value; once the budget is spent, throws (ends `map`, `filter`, `exists_one`, `cel.bind`). */
const CHARGE = '__meridian_charge';
/**
 * The same for the steps of `all` and `exists`, which go on past an error in a step (CEL's semantics):
 * once the budget is spent they yield the value that ends the loop (false for `all`, true for `exists`),
 * and the evaluation as a whole fails with {@link CelCostError}.
 */
const CHARGE_ALL = '__meridian_charge_all';
const CHARGE_EXISTS = '__meridian_charge_exists';
const COMPREHENSIONS = new Map([
  ['all', CHARGE_ALL],
  ['exists', CHARGE_EXISTS],
  ['exists_one', CHARGE],
  ['map', CHARGE],
  ['filter', CHARGE],
]);

/** What the running evaluation may still spend (evaluation is synchronous: one at a time). */
let budget: { left: number; limit: number } | null = null;
/** Thrown inside an evaluation once its budget is spent; made once (a stack trace per throw is slow). */
const SPENT = Object.assign(new Error('cost limit spent'), { code: 'cost_limit' });

/** Charges the running evaluation; true when its budget is spent. */
function charge(units: number): boolean {
  if (budget === null) return false;
  budget.left -= units;
  return budget.left < 0;
}

function sizeOf(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (Array.isArray(v)) return v.length;
  if (v instanceof Map || v instanceof Set) return v.size;
  if (v instanceof Uint8Array) return v.length;
  if (v !== null && typeof v === 'object') return Object.keys(v).length;
  return 0;
}

const compiled = new Map<string, RE2JS>();
/** An RE2 pattern, compiled once. @throws the RE2 syntax error (backreferences, lookaround, …) */
function re2(pattern: string): RE2JS {
  let re = compiled.get(pattern);
  if (!re) {
    re = RE2JS.compile(pattern);
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

let celEnv: Environment | undefined;
/** The environment rules are checked and run in: the variables, and the two functions the rewrite calls. */
function environment(): Environment {
  celEnv ??= new Environment({ homogeneousAggregateLiterals: false })
    .registerVariable('service', 'map')
    .registerVariable('cluster', 'map')
    .registerVariable('region', 'map')
    .registerFunction(`${MATCHES}(string, string): bool`, (s: string, p: string) => {
      if (charge(s.length + p.length)) throw SPENT;
      let re: RE2JS;
      try {
        re = re2(p);
      } catch (err) {
        throw new Error(`matches(): ${JSON.stringify(p)} is not an RE2 pattern: ${(err as Error).message}`);
      }
      return re.matcher(s).find();
    })
    .registerFunction(`${CHARGE}(dyn): dyn`, (v: unknown) => {
      if (charge(1 + sizeOf(v))) throw SPENT;
      return v;
    })
    .registerFunction(`${CHARGE_ALL}(dyn): dyn`, (v: unknown) => (charge(1 + sizeOf(v)) ? false : v))
    .registerFunction(`${CHARGE_EXISTS}(dyn): dyn`, (v: unknown) => (charge(1 + sizeOf(v)) ? true : v));
  return celEnv;
}

type Node = { op: string; args: unknown };

function isNode(v: unknown): v is Node {
  return v !== null && typeof v === 'object' && typeof (v as Node).op === 'string' && 'args' in v;
}

const call = (name: string, args: Node[]): Node => ({ op: 'call', args: [name, args] });

/** The pattern literals of `matches()` calls that are not RE2, with why. */
function rewrite(node: unknown, bad: string[]): unknown {
  if (Array.isArray(node)) return node.map((n) => rewrite(n, bad));
  if (!isNode(node)) return node;
  const args = node.args;
  if ((node.op === 'rcall' || node.op === 'call') && Array.isArray(args)) {
    const name = args[0] as string;
    const rcall = node.op === 'rcall';
    const params = ((rcall ? args[2] : args[1]) as unknown[]).map((a) => rewrite(a, bad)) as Node[];
    const receiver = rcall ? (rewrite(args[1], bad) as Node) : undefined;
    const subject = rcall ? receiver : params[0];
    const pattern = rcall ? params[0] : params[1];
    if (name === 'matches' && subject && pattern && params.length === (rcall ? 1 : 2)) {
      if (pattern.op === 'value' && typeof pattern.args === 'string') {
        try {
          re2(pattern.args);
        } catch (err) {
          bad.push(`${JSON.stringify(pattern.args)} is not an RE2 pattern (${(err as Error).message})`);
        }
      }
      return call(MATCHES, [subject, pattern]);
    }
    const charger = rcall ? COMPREHENSIONS.get(name) : undefined;
    if (charger && params.length >= 2) {
      // the first parameter names the iteration variable; the last runs once per element, a filter
      // between them (map's three-argument form) too
      const last = params.length - 1;
      const steps = params.slice(1).map((p, i) => call(i + 1 === last ? charger : CHARGE, [p]));
      return { op: 'rcall', args: [name, receiver, [params[0], ...steps]] };
    }
    if (rcall && name === 'bind' && params.length === 3 && receiver?.op === 'id' && receiver.args === 'cel') {
      return { op: 'rcall', args: [name, receiver, [params[0], call(CHARGE, [params[1] as Node]), params[2]]] };
    }
    return rcall ? { op: node.op, args: [name, receiver, params] } : { op: node.op, args: [name, params] };
  }
  return { op: node.op, args: rewrite(args, bad) };
}

/** A rule ready to run under a budget. */
export interface BudgetedRule {
  /** The type the expression yields (`bool`, or `dyn` when only the data decides). */
  readonly type: string;
  /**
   * Evaluates the rule.
   * @throws CelCostError when it spends `limit`; the library's errors otherwise
   */
  run(variables: Record<string, unknown>, limit: number): unknown;
}

/**
 * Parses, checks and rewrites a rule; a string says why it does not compile (syntax, types, a
 * `matches()` pattern that RE2 does not accept).
 */
export function compileRule(cel: string): BudgetedRule | string {
  const env = environment();
  let parsed: ParseResult;
  try {
    parsed = env.parse(cel);
  } catch (err) {
    return firstLine(err instanceof Error ? err.message : String(err));
  }
  const original = parsed.check();
  if (!original.valid) return firstLine(original.error?.message ?? 'type error');
  const bad: string[] = [];
  const text = serialize(rewrite(parsed.ast, bad) as ASTNode);
  if (bad.length > 0) return `matches(): ${bad.join('; ')}; write it without backreferences or lookaround`;
  let program: ParseResult;
  try {
    program = env.parse(text);
  } catch (err) {
    return `it cannot run under a cost limit: ${firstLine(err instanceof Error ? err.message : String(err))}`;
  }
  const checked = program.check();
  if (!checked.valid) return `it cannot run under a cost limit: ${firstLine(checked.error?.message ?? 'type error')}`;
  return {
    type: original.type ?? 'dyn',
    run(variables, limit) {
      const mine = { left: limit, limit };
      budget = mine;
      try {
        const result = program(variables);
        if (mine.left < 0) throw new CelCostError(limit);
        return result;
      } catch (err) {
        if (mine.left < 0) throw new CelCostError(limit);
        throw err;
      } finally {
        budget = null;
      }
    },
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
