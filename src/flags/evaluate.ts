/**
 * Pure flag evaluation: (flag state, context {region, targetingKey}) → {value, variant, reason}, in the
 * OpenFeature vocabulary. Percent rollouts use the router's sticky flag bucket (src/routing/hash.ts), so
 * a user gets the same answer from OFREP as from the router's flag gate.
 */
import { BUCKETS, bucketOf, hashSeed, userHash } from '../routing/hash.js';
import { suggestName } from './errors.js';
import { type FlagState, type RegionGate } from './flag-state.js';

/** The context a flag is evaluated in. */
export interface EvaluationContext {
  /** The region asking (a region name of the fleet); without one, the flag's `default` answers. */
  readonly region?: string | undefined;
  /** The user: what percent rollouts hash (the router uses the sticky cookie or header value). */
  readonly targetingKey?: string | undefined;
}

/** OpenFeature resolution reasons used here. */
export type Reason =
  /** No region in the context, or the flag has no gate for it: the flag's `default`. */
  | 'DEFAULT'
  /** The region's gate is on for everyone (100%) or for no one (0%). */
  | 'TARGETING_MATCH'
  /** The region's gate is on for a share of users; the user's bucket decided. */
  | 'SPLIT'
  /** The region's gate is off. */
  | 'DISABLED';

/** OpenFeature error codes used here. */
export type FlagErrorCode = 'FLAG_NOT_FOUND' | 'INVALID_CONTEXT' | 'TARGETING_KEY_MISSING' | 'PARSE_ERROR' | 'GENERAL';

/** A flag's evaluation. */
export interface EvaluationSuccess {
  readonly key: string;
  readonly value: boolean;
  readonly variant: 'on' | 'off';
  readonly reason: Reason;
  /** Flag metadata: `fleet`, `description`, the user's `bucket` (SPLIT), and every region's gate (`regions.<r>.enabled`, `regions.<r>.percent`). */
  readonly metadata: Readonly<Record<string, string | number | boolean>>;
}

/** A failed evaluation. */
export interface EvaluationFailure {
  readonly key: string;
  readonly errorCode: FlagErrorCode;
  readonly errorDetails: string;
}

export type Evaluation = EvaluationSuccess | EvaluationFailure;

/** Tells a failed evaluation from a successful one. */
export function isFailure(e: Evaluation): e is EvaluationFailure {
  return 'errorCode' in e;
}

/** The user's bucket for a flag, 0..9999: the gate is open when `bucket < percent × 100`. The router computes the same. */
export function flagBucket(flag: string, targetingKey: string): number {
  return bucketOf(userHash(hashSeed(flag), targetingKey));
}

/** A percentage as the router applies it: basis points 0..10000 (0.01% granularity). */
export function percentBp(percent: number): number {
  return Math.round(Math.min(100, Math.max(0, Number.isFinite(percent) ? percent : 0)) * (BUCKETS / 100));
}

/** Evaluates one flag. Pure and deterministic. */
export function evaluateFlag(state: FlagState, key: string, ctx: EvaluationContext): Evaluation {
  const flag = Object.hasOwn(state.flags, key) ? state.flags[key] : undefined;
  if (!flag) {
    return {
      key,
      errorCode: 'FLAG_NOT_FOUND',
      errorDetails: `the fleet ${state.fleet} has no flag ${JSON.stringify(key)}; ${suggestName('flag', key, Object.keys(state.flags))}`,
    };
  }
  const metadata: Record<string, string | number | boolean> = { fleet: state.fleet };
  if (flag.description !== null) metadata['description'] = flag.description;
  for (const r of state.regions) {
    const g = flag.regions[r] as RegionGate;
    metadata[`regions.${r}.enabled`] = g.enabled;
    metadata[`regions.${r}.percent`] = g.percent;
  }
  const ok = (value: boolean, reason: Reason): EvaluationSuccess => ({ key, value, variant: value ? 'on' : 'off', reason, metadata });
  if (ctx.region === undefined) return ok(flag.default, 'DEFAULT');
  const gate = Object.hasOwn(flag.regions, ctx.region) ? flag.regions[ctx.region] : undefined;
  if (!gate) {
    return {
      key,
      errorCode: 'INVALID_CONTEXT',
      errorDetails: `the fleet ${state.fleet} has no region ${JSON.stringify(ctx.region)}; ${suggestName('region', ctx.region, state.regions)}`,
    };
  }
  if (gate.source === 'default') return ok(flag.default, 'DEFAULT');
  if (!gate.enabled) return ok(false, 'DISABLED');
  const bp = percentBp(gate.percent);
  if (bp >= BUCKETS) return ok(true, 'TARGETING_MATCH');
  if (bp <= 0) return ok(false, 'TARGETING_MATCH');
  if (ctx.targetingKey === undefined || ctx.targetingKey === '') {
    return {
      key,
      errorCode: 'TARGETING_KEY_MISSING',
      errorDetails: `${key} is on for ${gate.percent}% of users in ${ctx.region}: pass the user's id as targetingKey in the context`,
    };
  }
  const bucket = flagBucket(key, ctx.targetingKey);
  metadata['bucket'] = bucket;
  return ok(bucket < bp, 'SPLIT');
}

/** Evaluates every flag (sorted by name). */
export function evaluateAll(state: FlagState, ctx: EvaluationContext): Evaluation[] {
  return Object.keys(state.flags).map((k) => evaluateFlag(state, k, ctx));
}

/**
 * Reads an OFREP evaluation context (any JSON) into an {@link EvaluationContext}: `region` and
 * `targetingKey` must be strings when present; other keys are allowed and ignored. Returns an error
 * message for a context that cannot be used.
 */
export function parseContext(raw: unknown): EvaluationContext | { readonly error: string } {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    return { error: 'the context must be a JSON object, like {"region": "eu-west", "targetingKey": "user-1"}' };
  const o = raw as Record<string, unknown>;
  const region = o['region'];
  const key = o['targetingKey'];
  if (region !== undefined && typeof region !== 'string') return { error: 'context.region must be a string: a region name of the fleet' };
  if (key !== undefined && typeof key !== 'string') return { error: 'context.targetingKey must be a string: the user id' };
  return { ...(region !== undefined ? { region } : {}), ...(key !== undefined ? { targetingKey: key } : {}) };
}
