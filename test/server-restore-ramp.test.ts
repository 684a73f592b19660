/**
 * The restore ramp through the control plane: an undrain through the API is a restore whose ramp shows
 * in the routing view (what routers follow) step by step, each step audited; a control plane started
 * afterwards on the same store finds the ramp where it stands, from the audit log and its clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FollowedRouter } from '../src/router/server-follower.js';
import { startServer } from '../src/server/server.js';
import { Recovery } from '../src/spec/schema.js';
import { api, serverWorld, until, type ServerWorld } from './support/server-kit.js';

const recovery = Recovery.parse({
  safety: { capacityFloor: '0%', holdDown: '0s' },
  restore: { ramp: [20, 60, 100], step: '1500ms' },
});

interface View {
  ramp: Record<string, number>;
  drained: string[];
  services: Record<string, Record<string, { cluster: string; share: number }[]>>;
}

let sw: ServerWorld;
beforeAll(async () => {
  sw = await serverWorld({ recovery });
}, 60_000);
afterAll(async () => {
  await sw.store.close();
});

describe('the restore ramp through the control plane', { timeout: 60_000 }, () => {
  it('a router that follows the server applies the ramp of each table view it gets', async () => {
    const view = sw.server.state.table;
    const f = new FollowedRouter({ view: { ...view, ramp: {} }, revision: sw.w.rev1 }, { healthChecks: false, geoip: null });
    let version = view.tableVersion;
    const at = (ramp: Record<string, number>): number => {
      f.apply({ view: { ...view, tableVersion: ++version, ramp }, revision: sw.w.rev1 });
      const e = f.router.explainRoute({ service: 'web', country: 'IE' }) as {
        levels: { share: number; regions: { name: string }[] }[];
      };
      return e.levels.filter((l) => l.regions.some((r) => r.name === 'eu-west')).reduce((a, l) => a + l.share, 0);
    };
    try {
      const full = at({}); // what eu-west takes of Irish traffic in this (partly unhealthy) test fleet
      expect(full).toBeGreaterThan(0.5);
      expect(at({ 'eu-west': 20 })).toBeCloseTo(0.2 * full, 5);
      expect(at({ 'eu-west': 60 })).toBeCloseTo(0.6 * full, 5);
      expect(at({})).toBeCloseTo(full, 5);
    } finally {
      await f.router.close();
    }
  });

  it('shows each step in the routing view, audits it, and survives a restart of the control plane', async () => {
    const view = async (url: string): Promise<View> => (await api(url, 'GET', '/api/v1/routing', { token: sw.tokens.viewer })).body as View;
    const drain = (drained: boolean) =>
      api(sw.url, 'POST', '/api/v1/regions/eu-west/drain', { token: sw.tokens.admin, body: { drained, reason: 'ramp test' } });
    expect((await drain(true)).status).toBe(200);
    expect((await view(sw.url)).drained).toEqual(['eu-west']);
    expect((await drain(false)).status).toBe(200);

    const first = await view(sw.url);
    expect(first.drained).toEqual([]);
    expect(first.ramp).toEqual({ 'eu-west': 20 });
    const onWest = (v: View): number =>
      (v.services['web']?.['eu-west'] ?? []).filter((s) => s.cluster.startsWith('eu-west')).reduce((a, s) => a + s.share, 0);
    expect(onWest(first)).toBeCloseTo(0.2, 5);

    // a control plane started now (a restart) derives the same ramp from the audit log
    await sw.server.close();
    const again = await startServer({ store: sw.store, written: sw.w.rev1, recovery, storePollMs: 30 });
    try {
      const seen: number[] = [];
      await until(async () => {
        const v = await view(again.url);
        const pct = v.ramp['eu-west'] ?? 100;
        if (seen[seen.length - 1] !== pct) seen.push(pct);
        return pct === 100;
      }, 'the ramp to end');
      expect(seen).toEqual([20, 60, 100].slice(3 - seen.length)); // in order, from wherever the restart found it
      expect(seen).toContain(100);
      expect(onWest(await view(again.url))).toBeCloseTo(1, 5);
      const audit = (await api(again.url, 'GET', '/api/v1/audit?limit=20', { token: sw.tokens.viewer })).body as {
        entries: { seq: number; action: string; subject: string; detail: { percent?: number } }[];
      };
      const steps = audit.entries.filter((e) => e.action === 'recovery.ramp' && e.subject === 'eu-west').sort((a, b) => a.seq - b.seq);
      expect(steps.map((e) => e.detail.percent)).toEqual([60, 100]);
    } finally {
      await again.close();
    }
  });
});
