/** The fleet's one target: each call goes to its cluster's driver; it meets the target contract as a local driver does. */
import { afterEach, describe, expect, it } from 'vitest';
import { FleetTarget } from '../src/fleet/fleet-target.js';
import { clustersOf, connectFleet } from '../src/fleet/connect.js';
import { LocalTarget } from '../src/targets/local/local-target.js';
import { isHealthyAt, waitForStatus } from '../src/targets/target.js';
import type { Revision } from '../src/render/render.js';
import { contractCluster, echoService, FIXTURE_DIR, getJson, renderedCluster } from './fixtures/local-services/cluster.js';
import { targetContract } from './targets.contract.js';

const FAST = { intervalMs: 100, startupIntervalMs: 50, timeoutMs: 500 } as const;

targetContract('fleet (dispatching to local)', async () => {
  const local = new LocalTarget({ fleetDir: FIXTURE_DIR, graceMs: 1000, health: FAST });
  const t = new FleetTarget({ drivers: { local }, driverOf: (c) => (c.startsWith('contract-') ? 'local' : undefined) });
  return {
    target: t,
    cluster: contractCluster,
    fetch: (e) => getJson(e.port),
    timeoutMs: 10_000,
    settleMs: 500,
    close: () => t.close(),
  };
});

describe('fleet target', () => {
  const open: FleetTarget[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  it('sends each cluster to its own driver, and keeps the others apart', async () => {
    const a = new LocalTarget({ fleetDir: FIXTURE_DIR, graceMs: 1000, health: FAST });
    const b = new LocalTarget({ fleetDir: FIXTURE_DIR, graceMs: 1000, health: FAST });
    const kinds: Record<string, 'local' | 'kubernetes'> = { one: 'local', two: 'kubernetes' };
    // b stands in for a second kind of driver: what matters here is where each call goes
    const t = new FleetTarget({ drivers: { local: a, kubernetes: b as unknown as LocalTarget }, driverOf: (c) => kinds[c] });
    open.push(t);
    const state = renderedCluster({ web: echoService({ version: '1.0.0' }) });
    await t.apply({ cluster: 'one', revisionId: 'r1', state, track: 'stable' });
    await t.apply({ cluster: 'two', revisionId: 'r2', state, track: 'stable' });
    await waitForStatus(t, 'one', (s) => isHealthyAt(s, 'web', 'stable', 'r1'), { timeoutMs: 10_000 });
    await waitForStatus(t, 'two', (s) => isHealthyAt(s, 'web', 'stable', 'r2'), { timeoutMs: 10_000 });
    expect(Object.keys((await a.status('two')).services)).toEqual([]);
    expect(Object.keys((await b.status('one')).services)).toEqual([]);
    expect(t.endpoints('one').map((e) => e.revisionId)).toEqual(['r1']);
    expect(await t.status('three')).toEqual({ cluster: 'three', services: {} });
  });

  it('refuses a gitops cluster with a typed error, and needs the local control API only for local clusters', async () => {
    const rev = (driver: 'local' | 'kubernetes' | 'gitops', target: Record<string, unknown> | null): Revision =>
      ({ clusters: { c1: { ...renderedCluster({}), driver, target } } }) as unknown as Revision;
    const noControl = (): never => {
      throw new Error('no control API');
    };
    await expect(connectFleet({ clusters: clustersOf(rev('gitops', {})), control: noControl, fleetDir: '.', env: {} })).rejects.toThrow(
      expect.objectContaining({ code: 'MERIDIAN_E_TARGET_NO_DRIVER' }) as Error,
    );
    await expect(connectFleet({ clusters: clustersOf(rev('local', null)), control: noControl, fleetDir: '.', env: {} })).rejects.toThrow(
      'no control API',
    );
    const k = await connectFleet({
      clusters: clustersOf(rev('kubernetes', { namespace: 'x', server: 'https://127.0.0.1:1', insecureSkipTlsVerify: true })),
      control: noControl,
      fleetDir: '.',
      env: {},
    });
    expect(k.local).toBeNull();
    expect(k.kubernetes?.canaryMode('c1')).toBe('replicas');
  });
});
