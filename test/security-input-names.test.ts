/**
 * Attack suite, F-12 of the security review: names inherited from `Object.prototype` (`constructor`,
 * `toString`, `hasOwnProperty`, `__proto__`) must not pass "does it exist" checks. Before, draining
 * them answered 200 and was audited and published; flag settings for them were stored; and open OFREP
 * answered 500 with an internal TypeError.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateFlag } from '../src/flags/evaluate.js';
import { api, codeOf, serverWorld, type ServerWorld } from './support/server-kit.js';

const PROTO = ['constructor', 'toString', 'hasOwnProperty', '__proto__'];

let world: ServerWorld;
beforeAll(async () => {
  world = await serverWorld();
});
afterAll(async () => {
  await world.close();
});

describe('F-12: prototype names are not names of the fleet', () => {
  it.each(PROTO)('draining the cluster or region %s is a 404, and nothing is recorded', async (name) => {
    for (const kind of ['clusters', 'regions']) {
      const a = await api(world.url, 'POST', `/api/v1/${kind}/${name}/drain`, { token: world.tokens.deployer, body: { drained: true } });
      expect(a.status, `${kind}/${name}`).toBe(404);
      expect(codeOf(a)).toBe('MERIDIAN_E_API_NOT_FOUND');
    }
    const routing = await api(world.url, 'GET', '/api/v1/routing', { token: world.tokens.viewer });
    expect(JSON.stringify(routing.body)).not.toContain(`"${name}"`);
  });

  it.each(PROTO)('a flag setting for flag or region %s is a 404', async (name) => {
    const region = await api(world.url, 'PUT', `/api/v1/flags/new-checkout/regions/${name}`, {
      token: world.tokens.deployer,
      body: { enabled: true },
    });
    expect(region.status).toBe(404);
    const flag = await api(world.url, 'PUT', `/api/v1/flags/${name}/regions/eu-west`, {
      token: world.tokens.deployer,
      body: { enabled: true },
    });
    expect(flag.status).toBe(404);
  });

  it.each(PROTO)('open OFREP answers FLAG_NOT_FOUND for %s, never a 500', async (name) => {
    const res = await fetch(new URL(`ofrep/v1/evaluate/flags/${name}`, world.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { targetingKey: 'u', region: 'eu-west' } }),
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errorCode?: string }).errorCode).toBe('FLAG_NOT_FOUND');
  });

  it('evaluation treats a prototype region as unknown', () => {
    const state = {
      fleet: 'f',
      regions: ['eu'],
      flags: { f: { name: 'f', default: false, description: null, regions: { eu: { enabled: true, percent: 100, source: 'default' } } } },
    };
    for (const name of PROTO) {
      expect(evaluateFlag(state as never, name, { region: 'eu' })).toMatchObject({ errorCode: 'FLAG_NOT_FOUND' });
      expect(evaluateFlag(state as never, 'f', { region: name })).toMatchObject({ errorCode: 'INVALID_CONTEXT' });
    }
  });
});
