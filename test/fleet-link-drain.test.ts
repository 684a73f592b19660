/**
 * Drains through the fleet link: over the control API (`remoteLink`, a real loopback server) and in the
 * same process (`localLink`), including bringing the router to the drains in force after it lost some.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { localLink, remoteLink } from '../src/server/fleet-link.js';
import { startControlApi, type ControlApi } from '../src/targets/local/control-api.js';
import { FakeDriver } from './support/rollout-kit.js';

/** A router that records its drains and how often its table was rebuilt. */
class DrainRouter {
  readonly drained = new Set<string>();
  flushes = 0;
  setDrained(names: string | readonly string[], drained = true): void {
    for (const n of typeof names === 'string' ? [names] : names) {
      if (drained) this.drained.add(n);
      else this.drained.delete(n);
    }
  }
  setCanary(): void {}
  flush(): number {
    this.flushes++;
    return 1;
  }
  metricsText(): Promise<string> {
    return Promise.resolve('');
  }
  stats(): unknown {
    return {};
  }
}

let api: ControlApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('remoteLink drains over the control API', () => {
  it('drains and undrains in the router, and sync sends what is missing and lifts what is no longer in force', async () => {
    const router = new DrainRouter();
    api = await startControlApi({ target: new FakeDriver(), router, token: 'tok' });
    const link = remoteLink(api.url, 'tok');
    await link.setDrained(['eu-west-1'], true, { kind: 'cluster', reason: 'maintenance' });
    expect([...router.drained]).toEqual(['eu-west-1']);
    expect(router.flushes).toBe(1);
    await link.setDrained(['eu-west-1'], false, { kind: 'cluster' });
    expect(router.drained.size).toBe(0);

    await link.setDrained(['us-east-1'], true, { kind: 'cluster' });
    await link.syncDrained!([
      { kind: 'region', name: 'eu-central' },
      { kind: 'cluster', name: 'eu-west-2' },
    ]);
    expect([...router.drained].sort()).toEqual(['eu-central', 'eu-west-2']);
    const flushes = router.flushes;
    await link.syncDrained!([
      { kind: 'region', name: 'eu-central' },
      { kind: 'cluster', name: 'eu-west-2' },
    ]);
    expect(router.flushes).toBe(flushes); // nothing to change: the router is left alone
    await link.close();
  });

  it('rejects when the control API refuses, cannot drain, or does not answer', async () => {
    const noDrain = { setCanary: () => undefined, flush: () => 1, metricsText: () => Promise.resolve(''), stats: () => ({}) };
    api = await startControlApi({ target: new FakeDriver(), router: noDrain, token: 'tok' });
    await expect(remoteLink(api.url, 'tok').setDrained(['eu-west-1'], true, { kind: 'cluster' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_CONTROL_NO_ROUTER',
      message: expect.stringContaining('this router cannot drain'),
    });
    await expect(remoteLink(api.url, 'wrong').syncDrained!([])).rejects.toMatchObject({ code: 'MERIDIAN_E_CONTROL_AUTH' });
    const url = api.url;
    await api.close();
    api = undefined;
    await expect(remoteLink(url, 'tok').setDrained(['eu-west-1'], true, { kind: 'cluster' })).rejects.toMatchObject({
      code: 'MERIDIAN_E_TARGET_UNREACHABLE',
    });
  });
});

describe('localLink drains in the same process', () => {
  it('sync drains and lifts only what it told, and rebuilds the table only on a change', async () => {
    const router = new DrainRouter();
    router.setDrained('set-elsewhere', true);
    const link = localLink(new FakeDriver(), router);
    await link.syncDrained!([{ kind: 'cluster', name: 'eu-west-1' }]);
    expect([...router.drained].sort()).toEqual(['eu-west-1', 'set-elsewhere']);
    const flushes = router.flushes;
    await link.syncDrained!([{ kind: 'cluster', name: 'eu-west-1' }]);
    expect(router.flushes).toBe(flushes);
    await link.syncDrained!([]);
    expect([...router.drained]).toEqual(['set-elsewhere']);
  });
});
