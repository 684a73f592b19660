/**
 * The contract every deployment driver (local, kubernetes, gitops) must meet. A driver's test file calls
 * {@link targetContract} with a harness that builds rendered clusters its platform can run.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RenderedCluster } from '../src/render/render.js';
import {
  type ClusterStatus,
  type Endpoint,
  isHealthyAt,
  type Target,
  type TargetEvent,
  trackStatus,
  waitForStatus,
} from '../src/targets/target.js';

/** A service as the contract describes it; the harness turns it into what its driver runs. */
export interface ContractService {
  readonly version: string;
  readonly replicas?: number;
  /** The service answers its health check with 503. */
  readonly failHealth?: boolean;
  readonly env?: Readonly<Record<string, string>>;
}

export interface ContractHarness {
  readonly target: Target;
  /** A rendered cluster that runs these services on this driver. */
  cluster(services: Readonly<Record<string, ContractService>>): RenderedCluster;
  /** GET / on an endpoint; the answer has at least `service`, `version` and `track`. */
  fetch(endpoint: Endpoint): Promise<Record<string, unknown>>;
  /** How long to wait for something to become healthy. */
  readonly timeoutMs: number;
  /** How long a few health-check rounds take on this driver (used to wait for something NOT to happen). */
  readonly settleMs: number;
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ids(status: ClusterStatus): string[] {
  return Object.values(status.services)
    .flatMap((tracks) => Object.values(tracks).flatMap((t) => t.replicas.map((r) => r.id)))
    .sort();
}

/** Registers the contract tests for one driver. */
export function targetContract(name: string, makeHarness: () => Promise<ContractHarness>): void {
  describe(`Target contract: ${name}`, () => {
    let h: ContractHarness;
    let cluster: string;
    let n = 0;
    const healthy =
      (revisionId: string, services: readonly string[], track: 'stable' | 'canary' = 'stable', checks = 1) =>
      (s: ClusterStatus): boolean =>
        services.every((svc) => isHealthyAt(s, svc, track, revisionId, checks));
    const waitHealthy = (
      revisionId: string,
      services: readonly string[],
      track: 'stable' | 'canary' = 'stable',
      checks = 1,
    ): Promise<ClusterStatus> => waitForStatus(h.target, cluster, healthy(revisionId, services, track, checks), { timeoutMs: h.timeoutMs });

    beforeEach(async () => {
      h = await makeHarness();
      n += 1;
      cluster = `contract-${n}`;
    });
    afterEach(async () => {
      await h.close();
    });

    it('applies a revision and reports every service healthy under that revision, with reachable endpoints', async () => {
      const state = h.cluster({ web: { version: '1.0.0', replicas: 2 }, api: { version: '2.0.0', replicas: 2 } });
      await h.target.apply({ cluster, revisionId: 'rev-a', state, track: 'stable' });
      const status = await waitHealthy('rev-a', ['web', 'api'], 'stable', 2);
      const web = trackStatus(status, 'web', 'stable');
      expect(web).toMatchObject({
        revisionId: 'rev-a',
        version: '1.0.0',
        desiredReplicas: 2,
        readyReplicas: 2,
        healthy: true,
        restarts: 0,
      });
      expect(web?.consecutiveHealthyChecks).toBeGreaterThanOrEqual(2);
      expect(trackStatus(status, 'api', 'stable')).toMatchObject({ revisionId: 'rev-a', version: '2.0.0', readyReplicas: 2 });

      const endpoints = h.target.endpoints(cluster);
      expect(endpoints).toHaveLength(4);
      for (const e of endpoints) {
        expect(e).toMatchObject({ cluster, track: 'stable', revisionId: 'rev-a', healthy: true });
        const body = await h.fetch(e);
        expect(body).toMatchObject({ service: e.service, version: e.version, track: 'stable' });
      }
      expect(new Set(endpoints.map((e) => `${e.host}:${e.port}`)).size).toBe(4);
    });

    it('is idempotent: applying what runs again starts and stops nothing', async () => {
      const state = h.cluster({ web: { version: '1.0.0', replicas: 2 } });
      await h.target.apply({ cluster, revisionId: 'rev-a', state, track: 'stable' });
      const before = await waitHealthy('rev-a', ['web'], 'stable', 2);
      const events: TargetEvent[] = [];
      const off = h.target.subscribe((e) => events.push(e));
      await h.target.apply({ cluster, revisionId: 'rev-a', state, track: 'stable' });
      await h.target.apply({ cluster, revisionId: 'rev-a', state: h.cluster({ web: { version: '1.0.0', replicas: 2 } }), track: 'stable' });
      await sleep(h.settleMs);
      off();
      const after = await h.target.status(cluster);
      expect(ids(after)).toEqual(ids(before));
      expect(events).toEqual([]);
      expect(trackStatus(after, 'web', 'stable')?.consecutiveHealthyChecks).toBeGreaterThan(
        trackStatus(before, 'web', 'stable')?.consecutiveHealthyChecks ?? 0,
      );
    });

    it('runs a canary beside stable, each with its own version, revision and endpoints', async () => {
      await h.target.apply({ cluster, revisionId: 'rev-a', state: h.cluster({ web: { version: '1.0.0', replicas: 2 } }), track: 'stable' });
      await h.target.apply({ cluster, revisionId: 'rev-b', state: h.cluster({ web: { version: '1.1.0', replicas: 1 } }), track: 'canary' });
      const status = await waitForStatus(h.target, cluster, (s) => healthy('rev-a', ['web'])(s) && healthy('rev-b', ['web'], 'canary')(s), {
        timeoutMs: h.timeoutMs,
      });
      expect(trackStatus(status, 'web', 'stable')).toMatchObject({ revisionId: 'rev-a', version: '1.0.0', readyReplicas: 2 });
      expect(trackStatus(status, 'web', 'canary')).toMatchObject({ revisionId: 'rev-b', version: '1.1.0', readyReplicas: 1 });
      const byTrack = (t: string): Endpoint[] => h.target.endpoints(cluster).filter((e) => e.track === t);
      expect(byTrack('stable').map((e) => [e.version, e.revisionId])).toEqual([
        ['1.0.0', 'rev-a'],
        ['1.0.0', 'rev-a'],
      ]);
      expect(byTrack('canary').map((e) => [e.version, e.revisionId])).toEqual([['1.1.0', 'rev-b']]);
      const canary = byTrack('canary')[0] as Endpoint;
      expect(await h.fetch(canary)).toMatchObject({ version: '1.1.0', track: 'canary' });
    });

    it('never reports a new revision healthy before its own replicas pass their checks', async () => {
      await h.target.apply({ cluster, revisionId: 'rev-a', state: h.cluster({ web: { version: '1.0.0', replicas: 2 } }), track: 'stable' });
      await waitHealthy('rev-a', ['web']);
      const events: TargetEvent[] = [];
      h.target.subscribe((e) => events.push(e));

      // a canary whose health fails, beside a healthy stable
      await h.target.apply({
        cluster,
        revisionId: 'rev-b',
        state: h.cluster({ web: { version: '2.0.0', replicas: 1, failHealth: true } }),
        track: 'canary',
      });
      const deadline = Date.now() + h.settleMs;
      while (Date.now() < deadline) {
        const s = await h.target.status(cluster);
        expect(trackStatus(s, 'web', 'canary')).toMatchObject({
          revisionId: 'rev-b',
          healthy: false,
          readyReplicas: 0,
          consecutiveHealthyChecks: 0,
        });
        expect(trackStatus(s, 'web', 'stable')).toMatchObject({ revisionId: 'rev-a', healthy: true });
        await sleep(20);
      }

      // the same bad version applied to stable: stable now reports rev-b unhealthy, while rev-a keeps serving
      await h.target.apply({
        cluster,
        revisionId: 'rev-b',
        state: h.cluster({ web: { version: '2.0.0', replicas: 2, failHealth: true } }),
        track: 'stable',
      });
      const deadline2 = Date.now() + h.settleMs;
      while (Date.now() < deadline2) {
        const s = await h.target.status(cluster);
        expect(trackStatus(s, 'web', 'stable')).toMatchObject({
          revisionId: 'rev-b',
          version: '2.0.0',
          healthy: false,
          readyReplicas: 0,
          consecutiveHealthyChecks: 0,
        });
        const serving = h.target.endpoints(cluster).filter((e) => e.track === 'stable' && e.healthy);
        expect(serving.map((e) => e.revisionId)).toEqual(['rev-a', 'rev-a']);
        await sleep(20);
      }
      expect(events.filter((e) => e.type === 'track-healthy' && e.revisionId === 'rev-b')).toEqual([]);
      expect(events.filter((e) => e.type === 'replica-ready' && e.revisionId === 'rev-b')).toEqual([]);

      // rolling back to rev-a brings stable back to healthy and stops rev-b's replicas
      await h.target.apply({ cluster, revisionId: 'rev-a', state: h.cluster({ web: { version: '1.0.0', replicas: 2 } }), track: 'stable' });
      await h.target.remove({ cluster, track: 'canary' });
      await waitForStatus(
        h.target,
        cluster,
        (s) =>
          healthy('rev-a', ['web'])(s) &&
          h.target.endpoints(cluster).every((e) => e.revisionId === 'rev-a') &&
          !trackStatus(s, 'web', 'canary'),
        { timeoutMs: h.timeoutMs },
      );
      expect(h.target.endpoints(cluster)).toHaveLength(2);
    });

    it('promotes: the new revision applied as stable, then the canary removed, leaves only the new version', async () => {
      await h.target.apply({ cluster, revisionId: 'rev-a', state: h.cluster({ web: { version: '1.0.0', replicas: 2 } }), track: 'stable' });
      await waitHealthy('rev-a', ['web']);
      const next = h.cluster({ web: { version: '1.1.0', replicas: 2 } });
      await h.target.apply({ cluster, revisionId: 'rev-b', state: next, track: 'canary' });
      await waitHealthy('rev-b', ['web'], 'canary');
      await h.target.apply({ cluster, revisionId: 'rev-b', state: next, track: 'stable' });
      await h.target.remove({ cluster, track: 'canary' });
      const status = await waitForStatus(
        h.target,
        cluster,
        (s) => healthy('rev-b', ['web'], 'stable', 2)(s) && h.target.endpoints(cluster).every((e) => e.version === '1.1.0'),
        { timeoutMs: h.timeoutMs },
      );
      expect(Object.keys(status.services['web'] ?? {})).toEqual(['stable']);
      const endpoints = h.target.endpoints(cluster);
      expect(endpoints.map((e) => [e.track, e.version, e.revisionId])).toEqual([
        ['stable', '1.1.0', 'rev-b'],
        ['stable', '1.1.0', 'rev-b'],
      ]);
      for (const e of endpoints) expect(await h.fetch(e)).toMatchObject({ version: '1.1.0', track: 'stable' });
    });

    it('relabels an unchanged service with a new revision without restarting it, and counts its checks afresh', async () => {
      const v1 = h.cluster({ web: { version: '1.0.0', replicas: 1 }, api: { version: '1.0.0', replicas: 1 } });
      await h.target.apply({ cluster, revisionId: 'rev-a', state: v1, track: 'stable' });
      const before = await waitHealthy('rev-a', ['web', 'api'], 'stable', 3);
      // rev-b changes api only
      const v2 = h.cluster({ web: { version: '1.0.0', replicas: 1 }, api: { version: '1.1.0', replicas: 1 } });
      await h.target.apply({ cluster, revisionId: 'rev-b', state: v2, track: 'stable' });
      // the first status that shows web under rev-b (at once on the local driver; on kubernetes once the
      // relabel is observed, which a loaded API server may take a moment for)
      const now = await waitForStatus(
        h.target,
        cluster,
        (x) => trackStatus(x, 'web', 'stable')?.revisionId === 'rev-b' && trackStatus(x, 'web', 'stable')?.healthy === true,
        {
          timeoutMs: h.timeoutMs,
        },
      );
      const web = trackStatus(now, 'web', 'stable');
      expect(web).toMatchObject({ revisionId: 'rev-b', healthy: true });
      expect(web?.consecutiveHealthyChecks).toBeLessThan(trackStatus(before, 'web', 'stable')?.consecutiveHealthyChecks ?? 0);
      expect(web?.replicas.map((r) => r.id)).toEqual(trackStatus(before, 'web', 'stable')?.replicas.map((r) => r.id));
      expect(trackStatus(now, 'api', 'stable')).toMatchObject({ revisionId: 'rev-b', version: '1.1.0' });
      await waitHealthy('rev-b', ['web', 'api'], 'stable', 2);
    });

    it('removes a track, a service, or everything, and resolves when it no longer runs', async () => {
      const state = h.cluster({ web: { version: '1.0.0', replicas: 1 }, api: { version: '1.0.0', replicas: 1 } });
      await h.target.apply({ cluster, revisionId: 'rev-a', state, track: 'stable' });
      await h.target.apply({ cluster, revisionId: 'rev-a', state, track: 'canary', services: ['web'] });
      let s = await waitForStatus(h.target, cluster, (x) => healthy('rev-a', ['web', 'api'])(x) && healthy('rev-a', ['web'], 'canary')(x), {
        timeoutMs: h.timeoutMs,
      });
      expect(trackStatus(s, 'api', 'canary')).toBeUndefined();

      await h.target.remove({ cluster, services: ['api'] });
      s = await h.target.status(cluster);
      expect(Object.keys(s.services)).toEqual(['web']);
      expect(h.target.endpoints(cluster).map((e) => e.service)).toEqual(['web', 'web']);

      await h.target.remove({ cluster });
      expect(await h.target.status(cluster)).toEqual({ cluster, services: {} });
      expect(h.target.endpoints(cluster)).toEqual([]);
      // a cluster it never saw is simply empty
      expect(await h.target.status('no-such-cluster')).toEqual({ cluster: 'no-such-cluster', services: {} });
    });

    it('drops services that a full apply no longer lists, and keeps the others', async () => {
      await h.target.apply({
        cluster,
        revisionId: 'rev-a',
        state: h.cluster({ web: { version: '1.0.0', replicas: 1 }, api: { version: '1.0.0', replicas: 1 } }),
        track: 'stable',
      });
      await waitHealthy('rev-a', ['web', 'api']);
      await h.target.apply({ cluster, revisionId: 'rev-b', state: h.cluster({ web: { version: '1.0.0', replicas: 1 } }), track: 'stable' });
      const s = await h.target.status(cluster);
      expect(Object.keys(s.services)).toEqual(['web']);
      expect(h.target.endpoints(cluster).map((e) => [e.service, e.revisionId])).toEqual([['web', 'rev-b']]);
    });

    it('emits events for replicas and for the health of a track', async () => {
      const events: TargetEvent[] = [];
      h.target.subscribe((e) => events.push(e));
      await h.target.apply({ cluster, revisionId: 'rev-a', state: h.cluster({ web: { version: '1.0.0', replicas: 2 } }), track: 'stable' });
      await waitHealthy('rev-a', ['web']);
      await sleep(50);
      const mine = events.filter((e) => e.cluster === cluster);
      expect(mine.filter((e) => e.type === 'replica-started')).toHaveLength(2);
      expect(mine.filter((e) => e.type === 'replica-ready')).toHaveLength(2);
      expect(mine.filter((e) => e.type === 'track-healthy')).toMatchObject([
        { service: 'web', track: 'stable', revisionId: 'rev-a', version: '1.0.0' },
      ]);
      await h.target.remove({ cluster });
      expect(events.filter((e) => e.type === 'replica-stopped')).toHaveLength(2);
      expect(events.at(-1)).toMatchObject({ type: 'track-removed', service: 'web', track: 'stable' });
    });
  });
}
