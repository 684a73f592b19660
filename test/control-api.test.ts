/** The local fleet's control API and RemoteTarget, its client: the Target operations and traffic control over loopback HTTP. */
import { afterEach, describe, expect, it } from 'vitest';
import { TargetError } from '../src/targets/errors.js';
import { startControlApi, type ControlApi } from '../src/targets/local/control-api.js';
import { RemoteTarget } from '../src/targets/remote-target.js';
import type { TargetEvent } from '../src/targets/target.js';
import { FakeDriver, world } from './support/rollout-kit.js';

class Weights {
  readonly set = new Map<string, number>();
  setCanary(service: string, cluster: string, c: { weight: number; version: string } | null): void {
    if (c) this.set.set(`${service}@${cluster}`, c.weight);
    else this.set.delete(`${service}@${cluster}`);
  }
  flush(): number {
    return 1;
  }
  metricsText(): Promise<string> {
    return Promise.resolve('meridian_router_requests_total{service="web"} 3\n');
  }
  stats(): unknown {
    return { snapshot: 1 };
  }
}

let api: ControlApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('control API + RemoteTarget', () => {
  it('applies, reports, removes and sets weights over HTTP exactly as the driver in the other process does', async () => {
    const w = await world();
    await w.store.close();
    const driver = new FakeDriver();
    const router = new Weights();
    api = await startControlApi({ target: driver, router, token: 'secret-token' });
    const remote = new RemoteTarget({ url: api.url, token: 'secret-token' });
    const state = w.rev2.clusters['eu-west-1']!;
    await remote.apply({ cluster: 'eu-west-1', revisionId: w.rev2.id, state, track: 'canary', services: ['web'] });
    expect(driver.calls).toEqual([`apply eu-west-1 canary ${w.rev2.id.slice(0, 8)} web`]);
    expect(await remote.status('eu-west-1')).toEqual(await driver.status('eu-west-1'));
    await remote.traffic().setCanary('web', 'eu-west-1', 25, '2.5.0');
    expect([...router.set]).toEqual([['web@eu-west-1', 25]]);
    await remote.traffic().clear('web', 'eu-west-1');
    expect(router.set.size).toBe(0);
    await remote.remove({ cluster: 'eu-west-1', track: 'canary' });
    expect(driver.running('eu-west-1', 'canary')).toEqual({});
    expect(await remote.routerMetrics()).toContain('meridian_router_requests_total');
    expect(await remote.refreshEndpoints('eu-west-1')).toEqual([]);
    await remote.close();
  });

  it('streams the driver’s events to subscribers', async () => {
    const listeners: ((e: TargetEvent) => void)[] = [];
    const driver = Object.assign(new FakeDriver(), {
      subscribe: (l: (e: TargetEvent) => void) => {
        listeners.push(l);
        return () => undefined;
      },
    });
    api = await startControlApi({ target: driver, token: 't' });
    const remote = new RemoteTarget({ url: api.url, token: 't' });
    const got: TargetEvent[] = [];
    remote.subscribe((e) => got.push(e));
    while (listeners.length === 0) await new Promise((r) => setTimeout(r, 10));
    const e: TargetEvent = { type: 'track-healthy', cluster: 'c', service: 'web', track: 'stable', revisionId: 'r', version: '1', at: 1 };
    listeners[0]?.(e);
    while (got.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([e]);
    await remote.close();
  });

  it('refuses a request without the token, and carries the driver’s error code back', async () => {
    const driver = new FakeDriver();
    driver.apply = () =>
      Promise.reject(new TargetError('MERIDIAN_E_TARGET_NO_LOCAL_COMMAND', 'service web has no local.command', { hint: 'add one' }));
    api = await startControlApi({ target: driver, token: 'right' });
    const wrong = new RemoteTarget({ url: api.url, token: 'wrong' });
    await expect(wrong.status('x')).rejects.toMatchObject({ code: 'MERIDIAN_E_CONTROL_AUTH' });
    const remote = new RemoteTarget({ url: api.url, token: 'right' });
    const state = { services: {} } as never;
    await expect(remote.apply({ cluster: 'x', revisionId: 'r', state, track: 'stable' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_NO_LOCAL_COMMAND',
      hint: 'add one',
    });
    await expect(remote.call('POST', 'v1/apply', { cluster: 'x', revisionId: 'r', state, track: 'sideways' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_CONTROL_BAD_REQUEST',
    });
    await expect(remote.traffic().setCanary('web', 'x', 5, '1')).rejects.toMatchObject({ code: 'MERIDIAN_E_CONTROL_NO_ROUTER' });
    const gone = new RemoteTarget({ url: 'http://127.0.0.1:1/', token: 'x' });
    // the message says why, not only undici's "fetch failed"
    await expect(gone.status('x')).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_UNREACHABLE',
      message: expect.stringMatching(/\(fetch failed: bad port\)/) as unknown,
    });
  });
});
