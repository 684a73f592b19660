/**
 * After a promotion the router routes with the new revision's policies: the rollout gives it the revision
 * through the control API (`POST /v1/router/revision`, `RemoteTarget.traffic().setRevision`), and real
 * requests through a real router on loopback follow the new policy at once.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { startControlApi } from '../src/targets/local/control-api.js';
import { RemoteTarget } from '../src/targets/remote-target.js';
import { FakeDriver } from './support/rollout-kit.js';
import { EU_US, closeAgents, get, revision, startUpstream, type Upstream, TRUST_LOOPBACK } from './support/router-kit.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  closeAgents();
});

describe('the router follows the revision a rollout promotes', () => {
  it('routes with the new revision’s policies once the control API is given it, and refuses a body that is not a revision', async () => {
    const services = { web: { version: '1.0.0' } };
    const header = { clientCountryHeader: 'x-client-country' };
    const before = revision({ ...EU_US, services, routing: { web: header } }, 'rev-before');
    // the new revision keeps US clients' data in the EU
    const after = revision(
      { ...EU_US, services, routing: { web: { ...header, residency: { US: { allow: ['EU'], mode: 'lock' } } } } },
      'rev-after',
    );
    const ups: Upstream[] = await Promise.all(Object.keys(EU_US.clusters).map((c) => startUpstream(c, '1.0.0')));
    for (const u of ups) cleanup.push(() => u.kill());
    const router = new Router({
      ...TRUST_LOOPBACK,
      revision: before,
      endpoints: new StaticEndpoints(ups.map((u) => u.endpoint())),
      healthChecks: false,
      geoip: null,
    });
    cleanup.push(() => router.close());
    const { port } = await router.listen(0);
    const token = randomBytes(16).toString('hex');
    const api = await startControlApi({ target: new FakeDriver(), router, token });
    cleanup.push(() => api.close());
    const remote = new RemoteTarget({ url: api.url, token });

    const served = async (): Promise<unknown> => (await get(port, '/', { headers: { 'x-client-country': 'US' } })).json();
    expect(await served()).toMatchObject({ cluster: 'us-east-1' });

    await remote.traffic().setRevision?.(after);
    expect(router.stats().revision).toBe('rev-after');
    for (let i = 0; i < 3; i++) expect((await served()) as { cluster: string }).toMatchObject({ cluster: expect.stringMatching(/^eu-/) });

    await remote.traffic().setRevision?.(before); // a rollback gives the old one back
    expect(await served()).toMatchObject({ cluster: 'us-east-1' });

    await expect(remote.call('POST', 'v1/router/revision', { revision: { id: 'x', fleet: 'test' } })).rejects.toThrow(
      /revision\.regions must be an object \(a rendered revision\)/,
    );
    expect(router.stats().revision).toBe('rev-before');
  });
});
