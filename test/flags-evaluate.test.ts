/**
 * Flag state and pure evaluation: operator settings over the fleet file, OpenFeature reasons and errors,
 * sticky percent rollouts, and agreement with the router's flag gate in the routing table.
 */
import { describe, expect, it } from 'vitest';
import {
  evaluateAll,
  evaluateFlag,
  flagBucket,
  flagState,
  isFailure,
  parseContext,
  type EvaluationSuccess,
  type FlagState,
} from '../src/flags/index.js';
import { buildRoutingTable, decide } from '../src/routing/index.js';
import { Flag } from '../src/spec/schema.js';
import type { FlagSettingRecord } from '../src/store/store.js';
import { EU_US, revision } from './support/router-kit.js';

const defs = {
  fleet: 'shop',
  regions: { 'eu-west': {}, 'eu-central': {}, 'us-east': {} },
  flags: {
    'new-checkout': Flag.parse({
      default: false,
      description: 'one-page checkout',
      regions: { 'eu-west': { enabled: true, percent: 20 } },
    }),
    recommendations: Flag.parse({ default: true, regions: { 'eu-central': { enabled: false } } }),
  },
};

function setting(flag: string, region: string, enabled: boolean, percent: number, fleet = 'shop'): FlagSettingRecord {
  return { fleet, flag, region, enabled, percent, updatedAt: '2026-11-26T12:00:00.000Z', updatedBy: 'alice' };
}

function success(state: FlagState, key: string, region?: string, targetingKey?: string): EvaluationSuccess {
  const e = evaluateFlag(state, key, { region, targetingKey });
  if (isFailure(e)) throw new Error(`${e.errorCode}: ${e.errorDetails}`);
  return e;
}

describe('flag state', () => {
  it('resolves every region: an operator setting, else the fleet entry, else the default', () => {
    const s = flagState(defs, [setting('new-checkout', 'us-east', true, 5)]);
    expect(s.regions).toEqual(['eu-central', 'eu-west', 'us-east']);
    const nc = s.flags['new-checkout'];
    expect(nc?.regions['eu-west']).toEqual({ enabled: true, percent: 20, source: 'fleet' });
    expect(nc?.regions['us-east']).toMatchObject({ enabled: true, percent: 5, source: 'operator', updatedBy: 'alice' });
    expect(nc?.regions['eu-central']).toEqual({ enabled: false, percent: 100, source: 'default' });
    expect(s.flags['recommendations']?.regions['eu-west']).toEqual({ enabled: true, percent: 100, source: 'default' });
    expect(s.flags['recommendations']?.regions['eu-central']).toEqual({ enabled: false, percent: 100, source: 'fleet' });
  });

  it('ignores settings of another fleet, and of flags or regions the fleet no longer has', () => {
    const s = flagState(defs, [
      setting('new-checkout', 'eu-west', false, 0, 'other'),
      setting('old-flag', 'eu-west', true, 100),
      setting('new-checkout', 'ap-south', true, 100),
    ]);
    expect(Object.keys(s.flags)).toEqual(['new-checkout', 'recommendations']);
    expect(s.flags['new-checkout']?.regions['eu-west']?.source).toBe('fleet');
    expect(s.flags['new-checkout']?.regions['ap-south']).toBeUndefined();
  });
});

describe('evaluateFlag', () => {
  const state = flagState(defs, [setting('new-checkout', 'us-east', true, 100), setting('recommendations', 'eu-west', true, 0)]);

  it('answers with the OpenFeature reason for each case', () => {
    expect(success(state, 'new-checkout')).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT' });
    expect(success(state, 'recommendations', 'us-east')).toMatchObject({ value: true, variant: 'on', reason: 'DEFAULT' });
    expect(success(state, 'recommendations', 'eu-central')).toMatchObject({ value: false, reason: 'DISABLED' });
    expect(success(state, 'new-checkout', 'us-east')).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    expect(success(state, 'recommendations', 'eu-west', 'u1')).toMatchObject({ value: false, reason: 'TARGETING_MATCH' });
    const split = success(state, 'new-checkout', 'eu-west', 'user-7');
    expect(split.reason).toBe('SPLIT');
    expect(split.value).toBe((split.metadata['bucket'] as number) < 2000);
  });

  it('puts every region’s gate in the metadata (what the router reads)', () => {
    const m = success(state, 'new-checkout').metadata;
    expect(m).toMatchObject({
      fleet: 'shop',
      description: 'one-page checkout',
      'regions.eu-west.enabled': true,
      'regions.eu-west.percent': 20,
      'regions.us-east.enabled': true,
      'regions.us-east.percent': 100,
      'regions.eu-central.enabled': false,
    });
  });

  it('fails with FLAG_NOT_FOUND, INVALID_CONTEXT and TARGETING_KEY_MISSING, with a did-you-mean', () => {
    expect(evaluateFlag(state, 'new-chekout', {})).toMatchObject({
      errorCode: 'FLAG_NOT_FOUND',
      errorDetails: expect.stringContaining('did you mean "new-checkout"'),
    });
    expect(evaluateFlag(state, 'new-checkout', { region: 'eu-wst' })).toMatchObject({
      errorCode: 'INVALID_CONTEXT',
      errorDetails: expect.stringContaining('did you mean "eu-west"'),
    });
    expect(evaluateFlag(state, 'new-checkout', { region: 'eu-west' })).toMatchObject({ errorCode: 'TARGETING_KEY_MISSING' });
    expect(evaluateFlag(state, 'new-checkout', { region: 'eu-west', targetingKey: '' })).toMatchObject({
      errorCode: 'TARGETING_KEY_MISSING',
    });
  });

  it('treats names of Object.prototype as unknown flags and regions, never as entries (found by the API fuzz)', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(evaluateFlag(state, name, { region: 'eu-west' })).toMatchObject({ key: name, errorCode: 'FLAG_NOT_FOUND' });
      expect(evaluateFlag(state, 'new-checkout', { region: name })).toMatchObject({ errorCode: 'INVALID_CONTEXT' });
    }
  });

  it('evaluates every flag in name order', () => {
    expect(evaluateAll(state, { region: 'us-east' }).map((e) => [e.key, isFailure(e) ? e.errorCode : e.value])).toEqual([
      ['new-checkout', true],
      ['recommendations', true],
    ]);
  });

  it('reads an OFREP context and refuses one it cannot use', () => {
    expect(parseContext({ region: 'eu-west', targetingKey: 'u', plan: 'pro' })).toEqual({ region: 'eu-west', targetingKey: 'u' });
    expect(parseContext(undefined)).toEqual({});
    expect(parseContext([1])).toHaveProperty('error');
    expect(parseContext({ region: 7 })).toHaveProperty('error');
    expect(parseContext({ targetingKey: { id: 1 } })).toHaveProperty('error');
  });
});

describe('percent rollouts', () => {
  const users = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
  const at = (p: number): FlagState => flagState(defs, [setting('new-checkout', 'eu-west', true, p)]);

  it('give the same user the same answer, every time', () => {
    const s = at(37);
    for (const u of users.slice(0, 500)) {
      const a = success(s, 'new-checkout', 'eu-west', u);
      const b = success(at(37), 'new-checkout', 'eu-west', u);
      expect(b.value).toBe(a.value);
      expect(b.metadata['bucket']).toBe(flagBucket('new-checkout', u));
    }
  });

  it.each([1, 5, 20, 50, 90])('turn on about %i% of users', (p) => {
    const s = at(p);
    const on = users.filter((u) => success(s, 'new-checkout', 'eu-west', u).value).length;
    // 20,000 users: the standard deviation of the share is at most 0.35 points; allow 1.5
    expect(Math.abs((on / users.length) * 100 - p)).toBeLessThan(1.5);
  });

  it('only add users as the percentage grows (a user who had it keeps it)', () => {
    const low = at(10);
    const high = at(30);
    for (const u of users.slice(0, 3000)) {
      if (success(low, 'new-checkout', 'eu-west', u).value) expect(success(high, 'new-checkout', 'eu-west', u).value).toBe(true);
    }
  });

  it('bucket users independently per flag', () => {
    const same = users.slice(0, 2000).filter((u) => flagBucket('a', u) < 5000 === flagBucket('b', u) < 5000).length;
    expect(same / 2000).toBeGreaterThan(0.45);
    expect(same / 2000).toBeLessThan(0.55);
  });
});

describe('agreement with the router’s flag gate', () => {
  it('routes a user to the region exactly when OFREP says the flag is on for them there', () => {
    const rev = {
      ...revision({ ...EU_US, services: { web: { version: '1.0.0' } }, routing: { web: { flag: 'beta', stickiness: { cookie: 'uid' } } } }),
      flags: { beta: Flag.parse({ default: false, regions: { 'eu-west': { enabled: true, percent: 30 }, 'us-east': { enabled: true } } }) },
    };
    const state = flagState(rev);
    const table = buildRoutingTable(rev, { flags: { beta: { 'eu-west': { enabled: true, percent: 30 } } } });
    let inRegion = 0;
    for (let i = 0; i < 3000; i++) {
      const user = `u${i}`;
      const d = decide(table, 'web', 'IE', user, 0);
      const on = success(state, 'beta', 'eu-west', user).value;
      expect(d.region === 'eu-west', user).toBe(on);
      if (on) inRegion++;
    }
    expect(inRegion).toBeGreaterThan(700);
    expect(inRegion).toBeLessThan(1100);
  });
});
