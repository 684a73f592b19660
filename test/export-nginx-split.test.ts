/**
 * The nginx export's sticky canary, on the exported text: split_clients per routing row on the route's
 * user key, canary tiers scaled to each row's first level, the golden configuration of a fleet with three
 * canaries (test/golden/export/nginx-canary/), and `nginx -t` on it and on the other kinds of user key.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClusterAddresses, UpstreamServer } from '../src/export/contract.js';
import { clusterAddresses, exportInput, writeExport, type ExportInput } from '../src/export/index.js';
import { nginxExporter } from '../src/export/nginx.js';
import { canaryTiers, percent, rowCanaries } from '../src/export/nginx-split.js';
import type { Revision } from '../src/render/render.js';
import type { ProjectedCluster } from '../src/routing/projection.js';
import { fixtureRevision, localRevision, tempDir } from './support/export-kit.js';
import { expectGolden } from './support/golden.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'export', 'nginx-canary');
const CANARIES = { 'eu-central-1': 10, 'eu-west-1': 30, 'us-east-1': 30 };

/** The fixture with `stickiness` on web (or none). */
function revision(stickiness?: { cookie: string } | { header: string }): Revision {
  const base = localRevision(fixtureRevision());
  const web = base.routing['web'];
  if (!web) throw new Error('fixture: no routing.web');
  return { ...base, routing: { ...base.routing, web: { ...web, ...(stickiness ? { stickiness } : {}) } } };
}

/** A stable replica on every cluster, and a canary replica where `CANARIES` has one (127.0.0.1:5000 up). */
function addresses(rev: Revision): ClusterAddresses {
  let port = 5000;
  const server = (track: 'stable' | 'canary'): UpstreamServer => ({
    host: '127.0.0.1',
    port: port,
    name: `${track}-${port++}`,
    track,
    version: track === 'canary' ? '2.5.0' : '2.4.0',
    healthPath: '/healthz',
  });
  return Object.fromEntries(
    Object.keys(rev.clusters).map((c) => [c, { web: [server('stable'), ...(c in CANARIES ? [server('canary')] : [])] }]),
  );
}

function input(rev: Revision, addrs: ClusterAddresses = addresses(rev)): ExportInput {
  const canary = { web: Object.fromEntries(Object.entries(CANARIES).map(([c, weight]) => [c, { weight, version: '2.5.0' }])) };
  return exportInput(rev, addrs, { countryNets: { '127.0.1.0/24': 'DE' } }, { canary });
}

/** `nginx -t` on an export. */
function nginxAccepts(i: ExportInput): string {
  const tmp = tempDir('meridian-nginx-split-');
  try {
    writeExport(tmp.dir, 'nginx', nginxExporter.export(i));
    const r = spawnSync('nginx', ['-t', '-q', '-p', `${tmp.dir}/`, '-c', 'nginx.conf'], { encoding: 'utf8' });
    return r.status === 0 ? 'ok' : `${r.stdout}${r.stderr}`;
  } finally {
    tmp.cleanup();
  }
}

/** The server lines of one upstream block. */
function upstreamOf(conf: string, name: string): string[] {
  const m = new RegExp(`upstream ${name} \\{\\n([^}]*)\\}`).exec(conf);
  return (m?.[1] ?? '').split('\n').filter((l) => l.includes('server '));
}

describe('nginx export: a sticky canary by split_clients', () => {
  it('matches its golden files (a cookie key; canaries at 10 % on eu-central-1, 30 % on eu-west-1 and us-east-1), and nginx -t accepts them', () => {
    const i = input(revision({ cookie: 'mrd_uid' }));
    const out = nginxExporter.export(i);
    expectGolden(join(GOLDEN, 'nginx.conf'), out.files['nginx.conf'] ?? '');
    expectGolden(join(GOLDEN, 'loss-report.json'), `${JSON.stringify(out.loss, null, 2)}\n`);
    expect(nginxAccepts(i)).toBe('ok');
  });

  it('each row’s canary share is its first level’s canary clusters’ share × their weight; stable users weighted by share × (1 − weight)', () => {
    const conf = nginxExporter.export(input(revision({ cookie: 'mrd_uid' }))).files['nginx.conf'] ?? '';
    // us-east-1 (weight 2 of 3) at 30 %: 20 % of US users; eu-west-1 (1 of 2) at 30 %: 15 %; eu-central-1 alone at 10 %
    expect(conf).toContain('split_clients "web/$meridian_user_web" $meridian_variant_web__us_east {\n    20% /canary1;\n    * "";\n  }');
    expect(conf).toContain('split_clients "web/$meridian_user_web" $meridian_variant_web__eu_west {\n    15% /canary1;\n    * "";\n  }');
    expect(conf).toContain('split_clients "web/$meridian_user_web" $meridian_variant_web__eu_central {\n    10% /canary1;\n    * "";\n  }');
    // the stable upstream: us-east-1's stable at 2 × 0.7 against us-east-2's 1, no canary server
    expect(upstreamOf(conf, 'web__us-east')).toEqual([
      '    server 127.0.0.1:5005 weight=100 max_fails=5 fail_timeout=6s;',
      '    server 127.0.0.1:5007 weight=71 max_fails=5 fail_timeout=6s;',
    ]);
    // the canary upstream: us-east-1's canary, then the level's stable servers at their weights as backup
    expect(upstreamOf(conf, 'web__us-east__canary1')).toEqual([
      '    server 127.0.0.1:5006 weight=100 max_fails=5 fail_timeout=6s;',
      '    server 127.0.0.1:5005 weight=100 max_fails=5 fail_timeout=6s backup;',
      '    server 127.0.0.1:5007 weight=50 max_fails=5 fail_timeout=6s backup;',
    ]);
    // a locked EU row's canary upstream names only EU replicas (ports 5000–5004: eu-central-1, eu-west-1, eu-west-2)
    for (const name of ['web__eu-west__canary1', 'web__eu-central__canary1'])
      for (const line of upstreamOf(conf, name)) expect(Number(/:(\d+) /.exec(line)?.[1])).toBeLessThanOrEqual(5004);
  });

  it('tiers are nested by distinct weight and scaled per row; boundaries are rounded so the parts never pass 100 %', () => {
    const i = input(revision({ cookie: 'mrd_uid' }));
    expect(canaryTiers(i, 'web').map((t) => [t.fromBp, t.toBp, [...t.clusters].sort()])).toEqual([
      [0, 1000, ['eu-central-1', 'eu-west-1', 'us-east-1']],
      [1000, 3000, ['eu-west-1', 'us-east-1']],
    ]);
    const c = (cluster: string, weight = 1): ProjectedCluster => ({ cluster, region: 'r', weight, state: 'healthy', share: 0 });
    const tiers = [
      { name: 't1', fromBp: 0, toBp: 3333, clusters: new Set(['a', 'b', 'c']) },
      { name: 't2', fromBp: 3333, toBp: 6667, clusters: new Set(['b', 'c']) },
      { name: 't3', fromBp: 6667, toBp: 10000, clusters: new Set(['c']) },
    ];
    const row = rowCanaries(tiers, [c('a'), c('b'), c('c')]);
    expect(row.map((v) => [v.name, v.bp, v.clusters.map((x) => x.cluster)])).toEqual([
      ['canary1', 3333, ['a', 'b', 'c']],
      ['canary2', 2223, ['b', 'c']],
      ['canary3', 1111, ['c']],
    ]);
    expect(row.reduce((a, v) => a + v.bp, 0)).toBeLessThanOrEqual(10_000);
    // adjacent tiers with the same clusters in the level are one variant; tiers with none are left to stable
    expect(rowCanaries(tiers, [c('c'), c('d')]).map((v) => [v.bp, v.clusters.map((x) => x.cluster)])).toEqual([[5000, ['c']]]);
    expect(rowCanaries(tiers, [c('d')])).toEqual([]);
    expect([percent(3000), percent(1250), percent(1), percent(10_000)]).toEqual(['30%', '12.5%', '0.01%', '100%']);
  });

  it('a header key reads $http_<name>; a cookie nginx cannot name is read from the Cookie header; nginx -t accepts both', () => {
    const header = input(revision({ header: 'x-user-id' }));
    const hconf = nginxExporter.export(header).files['nginx.conf'] ?? '';
    expect(hconf).toContain('map $http_x_user_id $meridian_user_web {\n    "" $request_id;\n    default $http_x_user_id;\n  }');
    expect(hconf).not.toContain('Set-Cookie'); // a header key is the client's to send
    expect(nginxAccepts(header)).toBe('ok');
    const dashed = input(revision({ cookie: 'mrd-uid' }));
    const dconf = nginxExporter.export(dashed).files['nginx.conf'] ?? '';
    expect(dconf).toContain('map $http_cookie $meridian_cookie_web {\n    default "";\n    "~(?:^|;\\s*)mrd\\-uid=([^;]*)" $1;\n  }');
    expect(dconf).toContain('"" "mrd-uid=$request_id; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly";');
    expect(nginxAccepts(dashed)).toBe('ok');
  });

  it('without a user key, or with ingress addresses (no canary servers), the canary is split per request as before', () => {
    const none = nginxExporter.export(input(revision()));
    const conf = none.files['nginx.conf'] ?? '';
    expect(conf).not.toContain('split_clients');
    // us-east-1: its weight 2 split 70/30 between stable and canary, against us-east-2's 1
    expect(upstreamOf(conf, 'web__us-east')).toEqual([
      '    server 127.0.0.1:5005 weight=100 max_fails=5 fail_timeout=6s;',
      '    server 127.0.0.1:5006 weight=43 max_fails=5 fail_timeout=6s;',
      '    server 127.0.0.1:5007 weight=71 max_fails=5 fail_timeout=6s;',
    ]);
    expect(none.loss.find((f) => f.code === 'MERIDIAN_LOSS_STICKY_CANARY')).toMatchObject({ severity: 'info' });
    const rev = fixtureRevision();
    const web = rev.routing['web'];
    if (!web) throw new Error('fixture');
    const sticky = { ...rev, routing: { ...rev.routing, web: { ...web, stickiness: { cookie: 'mrd_uid' } } } };
    const ingress = nginxExporter.export(input(sticky, clusterAddresses(sticky)));
    expect(ingress.files['nginx.conf']).not.toContain('split_clients');
    expect(ingress.loss.find((f) => f.code === 'MERIDIAN_LOSS_STICKY_CANARY')?.exported).toContain('ingress addresses');
  });

  it('a canary at 100 % that replaced a first level’s stable servers: that row has no split (all its users are on the canary), nginx -t accepts', () => {
    const rev = revision({ cookie: 'mrd_uid' });
    const addrs = addresses(rev);
    const ec = (addrs['eu-central-1']?.['web'] ?? []).filter((x) => x.track === 'canary');
    const i = exportInput(
      rev,
      { ...addrs, 'eu-central-1': { web: ec } },
      {},
      { canary: { web: { 'eu-central-1': { weight: 100, version: '2.5.0' }, 'us-east-1': { weight: 100, version: '2.5.0' } } } },
    );
    const conf = nginxExporter.export(i).files['nginx.conf'] ?? '';
    expect(conf).not.toContain('$meridian_variant_web__eu_central ');
    expect(upstreamOf(conf, 'web__eu-central')[0]).toContain(`:${ec[0]?.port} weight=100`);
    // us-east-1 keeps a (zero-weight) stable server: 2/3 of US users to its canary, the rest to us-east-2
    expect(conf).toContain('$meridian_variant_web__us_east {\n    66.67% /canary1;');
    expect(nginxAccepts(i)).toBe('ok');
  });
});
