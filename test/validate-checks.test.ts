/** Unit tests of each preflight check, on small fleets written to a temporary directory. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { render, type RenderedCluster } from '../src/render/render.js';
import type { SecretPresence } from '../src/secrets/presence.js';
import { tryLoadFleet, type LoadedFleet } from '../src/spec/load.js';
import { checkDigests } from '../src/validate/checks/digests.js';
import { FlowNetwork, servable } from '../src/routing/servable.js';
import { createContext, parsePath } from '../src/validate/context.js';
import { type Finding, formatPath } from '../src/findings/finding.js';
import { preflight } from '../src/validate/preflight.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const D = (c: string): string => `sha256:${c.repeat(64)}`;

type Doc = Record<string, unknown>;

/** The minimal valid fleet of testdata/_valid, as data (secrets left out: see withSecrets). */
function base(): Doc {
  return {
    apiVersion: 'meridian/v1',
    fleet: 'shop',
    regions: {
      'eu-west': {
        jurisdiction: 'EU',
        location: { lat: 53.35, lon: -6.26 },
        countries: ['IE', 'GB'],
        quota: { cpu: 4, memory: '8Gi' },
        traffic: { rps: 200 },
      },
      'eu-central': {
        jurisdiction: 'EU',
        location: { lat: 50.11, lon: 8.68 },
        countries: ['DE', 'FR'],
        quota: { cpu: 4, memory: '8Gi' },
        traffic: { rps: 200 },
      },
      'us-east': {
        jurisdiction: 'US',
        location: { lat: 38.9, lon: -77.04 },
        countries: ['US', 'CA'],
        quota: { cpu: 4, memory: '8Gi' },
        traffic: { rps: 300 },
      },
    },
    clusters: {
      'eu-west-1': { region: 'eu-west', driver: 'local', capacity: { rps: 600 }, labels: { tier: 'canary' } },
      'eu-central-1': { region: 'eu-central', driver: 'local', capacity: { rps: 600 } },
      'us-east-1': { region: 'us-east', driver: 'local', capacity: { rps: 600 } },
    },
    services: {
      web: {
        image: `ghcr.io/acme/web:2.4.0@${D('1')}`,
        version: '2.4.0',
        port: 8080,
        replicas: 2,
        resources: { cpu: '250m', memory: '256Mi' },
        requires: { api: '>=1.4.0 <2.0.0' },
        env: { LOG_LEVEL: 'info' },
        ingress: { host: 'web.shop.example', tls: true },
      },
      api: {
        image: `ghcr.io/acme/api:1.6.0@${D('2')}`,
        version: '1.6.0',
        port: 9090,
        replicas: 2,
        resources: { cpu: '500m', memory: '512Mi' },
      },
    },
    routing: { web: { residency: { EU: { allow: ['EU'], mode: 'lock' }, default: { allow: ['US', 'EU'], mode: 'prefer' } } } },
    rollout: { waves: [{ name: 'canary', clusters: { labels: { tier: 'canary' } } }, { name: 'rest' }] },
  };
}

/** Deep-merges `patch` into `doc` (null deletes a key). */
function patch(doc: Doc, p: Doc): Doc {
  const out: Doc = { ...doc };
  for (const [k, v] of Object.entries(p)) {
    if (v === null) delete out[k];
    else if (v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' && !Array.isArray(out[k]))
      out[k] = patch(out[k] as Doc, v as Doc);
    else out[k] = v;
  }
  return out;
}

function load(doc: Doc): LoadedFleet {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-validate-'));
  writeFileSync(join(dir, 'fleet.yaml'), stringify(doc));
  const r = tryLoadFleet(dir);
  if ('findings' in r) throw new Error(JSON.stringify(r.findings, null, 2));
  return r;
}

const allPresent: SecretPresence = { has: () => Promise.resolve('present') };

async function validate(
  doc: Doc,
  opts: { recorded?: Record<string, RenderedCluster>; secrets?: SecretPresence; now?: Date } = {},
): Promise<Finding[]> {
  const loaded = load(doc);
  return preflight({
    loaded,
    rendered: render(loaded),
    now: opts.now ?? NOW,
    secrets: opts.secrets ?? allPresent,
    env: {},
    ...(opts.recorded ? { recorded: opts.recorded } : {}),
  });
}

function recordedOf(doc: Doc): Record<string, RenderedCluster> {
  return { ...render(load(doc)).revision.clusters };
}

const codes = (fs: readonly Finding[]): string[] => fs.map((f) => f.code);
const only = (fs: readonly Finding[], code: string): Finding[] => fs.filter((f) => f.code === code);

describe('the minimal fleet', () => {
  it('is clean', async () => {
    expect(await validate(base())).toEqual([]);
  });
});

describe('paths', () => {
  it('parsePath inverts formatPath', () => {
    for (const p of [
      ['services', 'web', 'overrides', 0, 'set', 'replicas'],
      ['services', 'web', 'env', 'A.B'],
      ['clusters', '1a', 'target'],
    ]) {
      expect(parsePath(formatPath(p))).toEqual(p);
    }
  });
});

describe('digests', () => {
  it('reports an unpinned image once for all clusters, at the image, naming them', async () => {
    const fs = await validate(patch(base(), { services: { web: { image: 'ghcr.io/acme/web:2.4.0' } } }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_IMAGE_UNPINNED']);
    expect(fs[0]?.clusters).toEqual(['eu-central-1', 'eu-west-1', 'us-east-1']);
    expect(fs[0]?.rule).toBe('digest-pinned');
    expect(fs[0]?.path).toBe('services.web.image');
    expect(fs[0]?.message).toMatch(/on 3 clusters: eu-central-1, eu-west-1, us-east-1/);
  });

  it('does not require digests when policies.rules leaves digest-pinned out', async () => {
    const fs = await validate(
      patch(base(), { services: { web: { image: 'ghcr.io/acme/web:2.4.0' } }, policies: { rules: ['min-replicas'] } }),
    );
    expect(fs).toEqual([]);
  });

  it('reports one version with two digests, at the override that set the second', async () => {
    const doc = patch(base(), {
      services: { web: { overrides: [{ match: { region: 'us-east' }, set: { image: `ghcr.io/acme/web:2.4.0@${D('3')}` } }] } },
    });
    const fs = await validate(doc);
    expect(codes(fs)).toEqual(['MERIDIAN_E_DIGEST_MISMATCH']);
    expect(fs[0]?.path).toBe('services.web.overrides[0].set.image');
    expect(fs[0]?.clusters).toEqual(['eu-central-1', 'us-east-1']);
  });

  it('reports a running version whose image changed under it', async () => {
    const recorded = recordedOf(base());
    const fs = await validate(patch(base(), { services: { api: { image: `ghcr.io/acme/api:1.6.0@${D('9')}` } } }), { recorded });
    expect(codes(fs)).toEqual(['MERIDIAN_E_DIGEST_MISMATCH']);
    expect(fs[0]?.message).toMatch(/must not change its image/);
  });

  it('is a pure function of the context', () => {
    const loaded = load(base());
    const ctx = createContext({ loaded, rendered: render(loaded), now: NOW });
    expect(checkDigests(ctx)).toEqual([]);
  });
});

describe('versions and skew', () => {
  const v = (doc: Doc, version: string, digit: string): Doc =>
    patch(doc, { services: { api: { version, image: `ghcr.io/acme/api:${version}@${D(digit)}` } } });

  it('reports a final-state violation as REQUIRES_UNSATISFIED, not also as skew', async () => {
    const recorded = recordedOf(base());
    const fs = await validate(v(base(), '2.0.0', '4'), { recorded });
    expect(codes(fs)).toEqual(['MERIDIAN_E_REQUIRES_UNSATISFIED']);
    expect(fs[0]?.path).toBe('services.web.requires.api');
  });

  it('reports skew during the canary wave when the new consumer meets the old dependency', async () => {
    const recorded = recordedOf(patch(base(), { services: { web: { requires: { api: '>=1.4.0 <3.0.0' } } } }));
    const next = patch(v(base(), '2.0.0', '4'), { services: { web: { requires: { api: '>=2.0.0 <3.0.0' } } } });
    const fs = await validate(next, { recorded });
    expect(codes(fs)).toEqual(['MERIDIAN_E_VERSION_SKEW']);
    expect(fs[0]?.message).toMatch(
      /during wave canary, web 2\.4\.0 \(new\) on eu-west-1 requires api ">=2\.0\.0 <3\.0\.0", but api 1\.6\.0 \(old/,
    );
    expect(fs[0]?.fix).toMatch(/widen/);
  });

  it('reports skew when an old consumer meets a new dependency, pointing at the new version', async () => {
    // old web accepts only api 1.x; the new web accepts both; api goes to 2.0.0 in the same revision
    const recorded = recordedOf(base());
    const next = patch(v(base(), '2.0.0', '4'), { services: { web: { requires: { api: '>=1.4.0 <3.0.0' } } } });
    const fs = await validate(next, { recorded });
    expect(codes(fs)).toEqual(['MERIDIAN_E_VERSION_SKEW']);
    expect(fs[0]?.path).toBe('services.api.version');
    expect(fs[0]?.message).toMatch(/web 2\.4\.0 \(old\)/);
  });

  it('uses the dependency on the same cluster when it runs there, else every version anywhere', async () => {
    // api only in us-east: web on eu clusters reaches the fleet-wide versions
    const only = (d: Doc): Doc => patch(d, { services: { api: { placement: { match: { region: 'us-east' } } } } });
    const recorded = recordedOf(only(patch(base(), { services: { web: { requires: { api: '>=1.4.0 <3.0.0' } } } })));
    const next = only(patch(v(base(), '2.0.0', '4'), { services: { web: { requires: { api: '>=2.0.0 <3.0.0' } } } }));
    const fs = await validate(next, { recorded });
    expect(codes(fs)).toEqual(['MERIDIAN_E_VERSION_SKEW']);
    expect(fs[0]?.message).toMatch(/wave canary.*api 1\.6\.0 \(old, on us-east-1\)/);
  });

  it('on a first rollout, a dependency placed only in a later wave is skew', async () => {
    const doc = patch(base(), { services: { api: { placement: { match: { region: 'us-east' } } } } });
    const fs = await validate(doc); // nothing recorded
    expect(codes(fs)).toEqual(['MERIDIAN_E_VERSION_SKEW']);
    expect(fs[0]?.message).toMatch(/api runs on no cluster it can reach yet/);
  });

  it('does not blame the rollout for a violation that exists now and is fixed by it', async () => {
    const recorded = recordedOf(patch(base(), { services: { web: { requires: { api: '>=1.7.0' } } } }));
    expect(await validate(base(), { recorded })).toEqual([]);
  });

  it('accepts prereleases in ranges (includePrerelease)', async () => {
    const fs = await validate(patch(v(base(), '1.7.0-rc.1', '5'), {}));
    expect(fs).toEqual([]);
  });

  it('reports a dependency that runs nowhere and a service placed nowhere', async () => {
    const fs = await validate(patch(base(), { services: { api: { placement: { match: { labels: { tier: 'none' } } } } } }));
    expect(codes(fs).sort()).toEqual(['MERIDIAN_E_REQUIRES_UNREACHABLE', 'MERIDIAN_W_SERVICE_UNPLACED']);
  });

  it('reports versions and ranges that are not semver', async () => {
    const fs = await validate(patch(base(), { services: { api: { version: 'latest' }, web: { requires: { api: 'newest' } } } }));
    expect(codes(fs).sort()).toEqual(['MERIDIAN_E_REQUIRES_RANGE_INVALID', 'MERIDIAN_E_VERSION_INVALID']);
  });
});

describe('retries', () => {
  it('warns about a per-try timeout that leaves no time for a retry, at its position; a shorter one is fine', async () => {
    const retry = (routing: Doc): Promise<Finding[]> => validate(patch(base(), { routing: { web: routing } }));
    const unused = await retry({ timeout: '2s', retries: { attempts: 1, perTryTimeout: '2s' } });
    expect(codes(unused)).toEqual(['MERIDIAN_W_RETRY_TIMEOUT_UNUSED']);
    expect(unused[0]).toMatchObject({
      severity: 'warning',
      path: 'routing.web.retries.perTryTimeout',
      message:
        "routing.web.retries.perTryTimeout (2s) is not shorter than the request's timeout (2s): an attempt that times out leaves no time for a retry",
      location: { line: expect.any(Number) },
    });
    expect((await retry({ retries: { attempts: 1, perTryTimeout: '20s' } }))[0]?.message).toContain('(15s, the default)');
    expect(await retry({ timeout: '10s', retries: { attempts: 1, perTryTimeout: '2s' } })).toEqual([]);
    expect(await retry({ retries: { attempts: 1, perTryTimeout: '2s' } })).toEqual([]);
  });
});

describe('quotas', () => {
  it('reports memory over quota with the biggest consumers', async () => {
    const fs = await validate(patch(base(), { regions: { 'us-east': { quota: { memory: '1Gi' } } } }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_QUOTA_EXCEEDED']);
    expect(fs[0]?.message).toBe('region us-east requests 1536Mi of memory (api 1Gi, web 512Mi) on 1 cluster, over its quota of 1Gi');
    expect(fs[0]?.path).toBe('regions.us-east.quota.memory');
    expect(fs[0]?.target).toEqual({ region: 'us-east' });
  });

  it('counts the surge of a wave up to maxParallel clusters', async () => {
    // four clusters in eu-central, one wave; web changes: each rolling cluster runs 2 extra web replicas (500m)
    const clusters: Doc = {};
    for (const i of [1, 2, 3, 4]) clusters[`eu-central-${i}`] = { region: 'eu-central', driver: 'local', capacity: { rps: 600 } };
    const four = (maxParallel: number, version: string, digit: string): Doc =>
      patch(base(), {
        clusters,
        regions: { 'eu-central': { quota: { cpu: 7 } } }, // final: 4 × 1.5 = 6 CPU
        services: { web: { version, image: `ghcr.io/acme/web:${version}@${D(digit)}` } },
        rollout: {
          waves: [
            { name: 'canary', clusters: { labels: { tier: 'canary' } } },
            { name: 'central', clusters: { region: 'eu-central' }, maxParallel },
            { name: 'rest' },
          ],
        },
      });
    const recorded = recordedOf(four(1, '2.3.0', '5'));
    expect(await validate(four(2, '2.4.0', '1'), { recorded })).toEqual([]); // 6 + 2 × 0.5 = 7
    const fs = await validate(four(3, '2.4.0', '1'), { recorded }); // 6 + 3 × 0.5 = 7.5
    expect(codes(fs)).toEqual(['MERIDIAN_E_QUOTA_SURGE']);
    expect(fs[0]?.message).toMatch(/needs 7\.5 CPU during wave central/);
    expect(fs[0]?.fix).toMatch(/rollout\.waves\[1\]\.maxParallel \(now 3\)/);
  });
});

describe('residency', () => {
  it('reports a lock rule that leaves no cluster', async () => {
    const doc = patch(base(), { services: { web: { placement: { exclude: { jurisdiction: 'EU' } } } } });
    const fs = await validate(doc);
    expect(only(fs, 'MERIDIAN_E_RESIDENCY_UNCOVERED')).toHaveLength(1);
    expect(only(fs, 'MERIDIAN_E_RESIDENCY_UNCOVERED')[0]?.path).toBe('routing.web.residency.EU.allow');
  });

  it('reports a routed service that runs on no cluster once', async () => {
    const doc = patch(base(), { services: { web: { placement: { match: { labels: { tier: 'none' } } } } } });
    const fs = await validate(doc);
    expect(only(fs, 'MERIDIAN_E_RESIDENCY_UNCOVERED')).toHaveLength(1);
    expect(only(fs, 'MERIDIAN_E_RESIDENCY_UNCOVERED')[0]?.message).toMatch(/runs on no cluster/);
  });

  it('skips services that are not routed', async () => {
    const doc = patch(base(), { routing: null, services: { web: { placement: { exclude: { jurisdiction: 'EU' } } } } });
    expect(await validate(doc)).toEqual([]);
  });
});

describe('failover capacity', () => {
  it('max flow on a small network', () => {
    const n = new FlowNetwork(4);
    n.addEdge(0, 1, 3);
    n.addEdge(0, 2, 2);
    n.addEdge(1, 2, 1);
    n.addEdge(1, 3, 2);
    n.addEdge(2, 3, 3);
    expect(n.maxFlow(0, 3).flow).toBe(5);
  });

  it('a lock keeps clients out of capacity they may not use', () => {
    const demand = new Map([
      ['eu', { rps: 500, jurisdiction: 'EU' }],
      ['us', { rps: 100, jurisdiction: 'US' }],
    ]);
    const supply = new Map([
      ['eu', { rps: 300, jurisdiction: 'EU' }],
      ['us', { rps: 1000, jurisdiction: 'US' }],
    ]);
    const lock = servable(demand, supply, (j) =>
      j === 'EU' ? { key: 'EU', allow: ['EU'], mode: 'lock' } : { key: null, allow: null, mode: 'prefer' },
    );
    expect(lock.served).toBe(400);
    expect(lock.clients).toEqual(['eu']);
    expect(lock.servers).toEqual(['eu']);
    const prefer = servable(demand, supply, () => ({ key: 'EU', allow: ['EU'], mode: 'prefer' }));
    expect(prefer.served).toBe(600);
  });

  it('reports the region whose loss leaves locked clients short, with the shortfall', async () => {
    const fs = await validate(patch(base(), { clusters: { 'eu-central-1': { capacity: { rps: 300 } } } }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_FAILOVER_CAPACITY']);
    expect(fs[0]?.message).toBe(
      'if region eu-west is lost, web is 100 rps short: clients of eu-west, eu-central (400 rps) may only be served by eu-central-1 (300 rps, residency EU lock)',
    );
    expect(fs[0]?.target).toEqual({ service: 'web', region: 'eu-west' });
  });

  it('reports a baseline shortfall once instead of every loss', async () => {
    const fs = await validate(patch(base(), { regions: { 'us-east': { traffic: { rps: 5000 } } } }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_CAPACITY_SHORT']);
  });
});

describe('built-in policies', () => {
  it('min-replicas uses policies.settings.minReplicas and points at the default at the service', async () => {
    const doc = patch(base(), { services: { api: { replicas: null } }, policies: { settings: { minReplicas: 2 } } });
    const fs = await validate(doc);
    expect(codes(fs)).toEqual(['MERIDIAN_E_REPLICAS_BELOW_MIN']);
    expect(fs[0]?.message).toMatch(/api runs 1 replica \(the default\), fewer than the minimum of 2/);
    expect(fs[0]?.path).toBe('services.api.replicas');
    const three = await validate(patch(base(), { policies: { settings: { minReplicas: 3 } } }));
    expect(codes(three)).toEqual(['MERIDIAN_E_REPLICAS_BELOW_MIN', 'MERIDIAN_E_REPLICAS_BELOW_MIN']);
  });

  it('resources-required names what is missing', async () => {
    const fs = await validate(patch(base(), { services: { api: { resources: { cpu: '500m', memory: null } } } }));
    // quota counts memory 0 for api; the policy reports it
    expect(codes(fs)).toEqual(['MERIDIAN_E_RESOURCES_MISSING']);
    expect(fs[0]?.message).toMatch(/^api requests no memory/);
    expect(fs[0]?.path).toBe('services.api.resources');
  });

  it('tls-ingress reports an ingress without tls (tls defaults to false)', async () => {
    const fs = await validate(patch(base(), { services: { web: { ingress: { host: 'web.shop.example', tls: null } } } }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_INGRESS_NO_TLS']);
  });

  it('only the rules named in policies.rules apply', async () => {
    const doc = patch(base(), { services: { web: { ingress: { tls: false }, replicas: 1 } }, policies: { rules: ['tls-ingress'] } });
    expect(codes(await validate(doc))).toEqual(['MERIDIAN_E_INGRESS_NO_TLS']);
  });

  it('no-literal-secrets finds secrets in env, overrides, params and targets, and never shows them', async () => {
    const secrets = [
      'S3cure-Passw0rd!',
      'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
      'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
      'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA7Kx',
    ];
    const doc = patch(base(), {
      regions: { 'eu-west': { params: { db_password: secrets[0] } } },
      clusters: { 'us-east-1': { driver: 'gitops', target: { context: 'prod', kubernetes: { token: secrets[1] } } } },
      services: {
        web: {
          env: { LOG_LEVEL: 'info', PAYMENT_KEY: secrets[2], TOKEN_TTL: '30m', PASSWORD_FILE: '/run/secrets/db' },
          overrides: [{ match: { region: 'eu-west' }, set: { config: { SIGNING_SEED: secrets[3] } } }],
        },
      },
    });
    const fs = await validate(doc);
    expect(fs.map((f) => f.path).sort()).toEqual([
      'clusters.us-east-1.target.kubernetes.token',
      'regions.eu-west.params.db_password',
      'services.web.env.PAYMENT_KEY',
      'services.web.overrides[0].set.config.SIGNING_SEED',
    ]);
    const text = JSON.stringify(fs);
    for (const s of secrets) {
      expect(text).not.toContain(s);
      expect(text).not.toContain(s.slice(2));
    }
  });
});

describe('custom CEL rules', () => {
  const rule = (r: Doc): Doc => patch(base(), { policies: { custom: [{ name: 'r', message: 'the rule says no', ...r }] } });

  it('compiles once: a syntax error is one finding at the rule', async () => {
    const fs = await validate(rule({ cel: 'service.replicas >=' }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_POLICY_INVALID']);
    expect(fs[0]?.path).toBe('policies.custom[0].cel');
  });

  it('rejects unknown variables and non-bool results at compile time', async () => {
    expect(codes(await validate(rule({ cel: 'svc.replicas > 1' })))).toEqual(['MERIDIAN_E_POLICY_INVALID']);
    expect(codes(await validate(rule({ cel: '"yes"' })))).toEqual(['MERIDIAN_E_POLICY_INVALID']);
  });

  it('evaluates per service and cluster the selector matches, with ints, labels and region', async () => {
    const ok = await validate(
      rule({ cel: "service.replicas == 2 && service.port > 1000 && region.jurisdiction in ['EU', 'US'] && cluster.capacity.rps >= 600" }),
    );
    expect(ok).toEqual([]);
    const fs = await validate(rule({ cel: "has(cluster.labels.tier) && cluster.labels.tier == 'canary'", match: { jurisdiction: 'EU' } }));
    expect(codes(fs)).toEqual(['MERIDIAN_E_POLICY_VIOLATION', 'MERIDIAN_E_POLICY_VIOLATION']);
    expect(fs.every((f) => f.clusters?.join() === 'eu-central-1' && f.rule === 'r')).toBe(true);
  });

  it('a missing key fails the rule (no crash); has() lets the author handle it', async () => {
    const missing = await validate(rule({ cel: "service.env.MODE == 'strict'" }));
    expect(codes(missing)).toEqual(['MERIDIAN_E_POLICY_VIOLATION', 'MERIDIAN_E_POLICY_VIOLATION']);
    expect(missing[0]?.message).toMatch(/the key MODE it reads is missing/);
    expect(await validate(rule({ cel: "!has(service.env.MODE) || service.env.MODE == 'strict'" }))).toEqual([]);
  });

  it('a warning rule gives a warning that does not fail the run', async () => {
    const fs = await validate(rule({ cel: 'service.replicas > 5', severity: 'warning' }));
    expect(fs.every((f) => f.code === 'MERIDIAN_W_POLICY_VIOLATION' && f.severity === 'warning')).toBe(true);
  });
});

describe('waivers', () => {
  const oneReplica = (): Doc => patch(base(), { services: { api: { replicas: 1 } } });
  const waive = (doc: Doc, w: Doc): Doc =>
    patch(doc, { policies: { waivers: [{ reason: 'tracked in OPS-1', approvedBy: 'alice', expires: '2026-12-31', ...w }] } });

  it('a waiver for one cluster covers that cluster only', async () => {
    const fs = await validate(waive(oneReplica(), { rule: 'min-replicas', target: { service: 'api', cluster: 'us-east-1' } }));
    expect(fs).toHaveLength(2);
    const waived = fs.find((f) => f.waivedBy);
    expect(waived?.clusters).toEqual(['us-east-1']);
    expect(waived?.waivedBy).toEqual({ reason: 'tracked in OPS-1', approvedBy: 'alice', expires: '2026-12-31' });
    expect(fs.find((f) => !f.waivedBy)?.clusters).toEqual(['eu-central-1', 'eu-west-1']);
  });

  it('matches by finding code as well as rule, and by region', async () => {
    const fs = await validate(waive(oneReplica(), { rule: 'MERIDIAN_E_REPLICAS_BELOW_MIN', target: { region: 'eu-west' } }));
    expect(fs.filter((f) => f.waivedBy).map((f) => f.clusters)).toEqual([['eu-west-1']]);
  });

  it('is valid through its expiry day, then expired and no longer applied', async () => {
    const doc = waive(oneReplica(), { rule: 'min-replicas', target: { service: 'api' }, expires: '2026-06-01' });
    expect((await validate(doc)).every((f) => f.waivedBy)).toBe(true);
    const later = await validate(doc, { now: new Date('2026-06-02T00:00:00Z') });
    expect(codes(later).sort()).toEqual(['MERIDIAN_E_REPLICAS_BELOW_MIN', 'MERIDIAN_E_WAIVER_EXPIRED']);
    expect(later.some((f) => f.waivedBy)).toBe(false);
  });

  it('an unused waiver is a warning, with a did-you-mean for a misspelt rule', async () => {
    const fs = await validate(waive(oneReplica(), { rule: 'min-replica', target: { service: 'api' } }));
    const unused = only(fs, 'MERIDIAN_W_WAIVER_UNUSED');
    expect(unused).toHaveLength(1);
    expect(unused[0]?.fix).toMatch(/did you mean min-replicas/);
  });
});

describe('dedupe at scale', () => {
  it('one problem on 300 clusters is one finding that names a few and the count', async () => {
    const clusters: Doc = {};
    for (let i = 0; i < 300; i++)
      clusters[`edge-${String(i).padStart(3, '0')}`] = { region: 'us-east', driver: 'gitops', capacity: { rps: 100 } };
    const doc = patch(base(), {
      clusters,
      regions: { 'us-east': { quota: null } },
      services: { web: { image: 'ghcr.io/acme/web:2.4.0' }, api: { placement: { match: { region: 'us-east' } } } },
    });
    const t0 = Date.now();
    const fs = await validate(doc);
    expect(Date.now() - t0).toBeLessThan(5000);
    const unpinned = only(fs, 'MERIDIAN_E_IMAGE_UNPINNED');
    expect(unpinned).toHaveLength(1);
    expect(unpinned[0]?.clusters).toHaveLength(303);
    expect(unpinned[0]?.message).toMatch(/on 303 clusters: edge-000, edge-001, edge-002 and 300 more\)$/);
  });
});

describe('secrets in preflight', () => {
  it('asks every cluster, reports missing and unreachable stores distinctly, at the ref', async () => {
    const doc = patch(base(), { services: { web: { secrets: { DB_PASSWORD: { ref: 'vault:kv/shop/${cluster.name}#db' } } } } });
    const asked: string[] = [];
    const presence: SecretPresence = {
      has(ref, ctx) {
        asked.push(`${ctx.cluster}=${ref}`);
        if (ctx.cluster === 'us-east-1') return Promise.resolve({ error: 'cannot reach vault.us' });
        return Promise.resolve(ctx.cluster === 'eu-west-1' ? 'missing' : 'present');
      },
    };
    const fs = await validate(doc, { secrets: presence });
    expect(asked.sort()).toEqual([
      'eu-central-1=vault:kv/shop/eu-central-1#db',
      'eu-west-1=vault:kv/shop/eu-west-1#db',
      'us-east-1=vault:kv/shop/us-east-1#db',
    ]);
    expect(codes(fs)).toEqual(['MERIDIAN_E_SECRET_MISSING', 'MERIDIAN_E_SECRET_STORE_UNAVAILABLE']);
    expect(fs.map((f) => f.path)).toEqual(['services.web.secrets.DB_PASSWORD.ref', 'services.web.secrets.DB_PASSWORD.ref']);
    expect(fs.map((f) => f.clusters)).toEqual([['eu-west-1'], ['us-east-1']]);
  });

  it('a provider that throws is a finding, not a crash', async () => {
    const doc = patch(base(), { services: { web: { secrets: { K: { ref: 'env:K' } } } } });
    const fs = await validate(doc, { secrets: { has: () => Promise.reject(new Error('boom')) } });
    expect(codes(fs)).toEqual(['MERIDIAN_E_SECRET_STORE_UNAVAILABLE']);
  });

  it('uses the default providers when none is given (env from input.env)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-validate-'));
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(
      join(dir, 'fleet.yaml'),
      stringify(patch(base(), { services: { web: { secrets: { K: { ref: 'env:MERIDIAN_TEST_K' } } } } })),
    );
    const loaded = tryLoadFleet(dir);
    if ('findings' in loaded) throw new Error('load');
    const missing = await preflight({ loaded, rendered: render(loaded), now: NOW, env: {} });
    expect(codes(missing)).toEqual(['MERIDIAN_E_SECRET_MISSING']);
    const present = await preflight({ loaded, rendered: render(loaded), now: NOW, env: { MERIDIAN_TEST_K: 'x' } });
    expect(present).toEqual([]);
  });
});

describe('preflight', () => {
  it('includes render findings and sorts by location', async () => {
    const fs = await validate(
      patch(base(), { services: { web: { ingress: { host: 'web.${region.params.nope}' }, image: 'ghcr.io/acme/web:2.4.0' } } }),
    );
    expect(codes(fs)).toEqual(['MERIDIAN_E_IMAGE_UNPINNED', 'MERIDIAN_E_UNRESOLVED_PLACEHOLDER']);
    expect(fs.map((f) => f.check)).toEqual(['digests', 'render']);
  });
});
