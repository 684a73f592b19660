/**
 * The example fleet (examples/shop) and its services, and the benchmark fleet generator: the example
 * loads and renders cleanly and is clean by construction; each example service, run as a real process
 * with the environment the local driver gives it, answers and breaks on command.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import semver from 'semver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BENCH_SECRET_ENV, generateFleet, writeFleet } from '../bench/gen-fleet.js';
import { assignWaves } from '../src/plan/waves.js';
import { render, type RenderedService, type RenderResult } from '../src/render/render.js';
import { type LoadedFleet, tryLoadFleet } from '../src/spec/load.js';
import { parseCpu, parseMemory } from '../src/units/quantity.js';

const SHOP = join(import.meta.dirname, '..', 'examples', 'shop');

function load(dir: string): LoadedFleet {
  const r = tryLoadFleet(dir);
  if ('findings' in r) throw new Error(`${dir} has findings:\n${r.findings.map((f) => `${f.path}: ${f.message}`).join('\n')}`);
  return r;
}

/** Reads `KEY=value` lines of a .env file (comments and blank lines skipped). */
function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (m?.[1] !== undefined && !line.trimStart().startsWith('#')) out[m[1]] = m[2] ?? '';
  }
  return out;
}

/** `file:PATH#KEY` → the key's value in the fleet's file. */
function resolveFileSecret(ref: string): string | undefined {
  const m = /^file:([^#]+)#(.+)$/.exec(ref);
  if (!m?.[1] || !m[2]) return undefined;
  return readEnvFile(join(SHOP, m[1]))[m[2]];
}

describe('the example fleet (examples/shop)', () => {
  let loaded: LoadedFleet;
  let rendered: RenderResult;
  beforeAll(() => {
    loaded = load(SHOP);
    rendered = render(loaded);
  });

  it('loads and renders with zero findings', () => {
    const r = tryLoadFleet(SHOP);
    expect('findings' in r ? r.findings : []).toEqual([]);
    expect(rendered.findings).toEqual([]);
  });

  it('is split over several files, each starting with apiVersion and fleet', () => {
    const files = readdirSync(SHOP).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) expect(readFileSync(join(SHOP, f), 'utf8')).toMatch(/^(#.*\n)*apiVersion: meridian\/v1\nfleet: shop\n/);
  });

  it('has at least 5 regions in 3 jurisdictions, 8 clusters, and 4 services with requires between them', () => {
    const { fleet } = loaded;
    expect(Object.keys(fleet.regions).length).toBeGreaterThanOrEqual(5);
    expect(new Set(Object.values(fleet.regions).map((r) => r.jurisdiction))).toEqual(new Set(['EU', 'US', 'APAC']));
    expect(Object.keys(fleet.clusters).length).toBeGreaterThanOrEqual(8);
    expect(Object.values(fleet.clusters).every((c) => c.driver === 'local')).toBe(true);
    expect(Object.values(fleet.clusters).filter((c) => c.labels?.['tier'] === 'canary').length).toBeGreaterThanOrEqual(1);
    const services = Object.entries(fleet.services);
    expect(services.length).toBeGreaterThanOrEqual(4);
    expect(services.filter(([, s]) => Object.keys(s.requires ?? {}).length > 0).length).toBeGreaterThanOrEqual(3);
    expect(services.filter(([, s]) => s.replicas >= 2).length).toBeGreaterThanOrEqual(4);
  });

  it('lists every country in exactly one region', () => {
    const seen = new Map<string, string>();
    for (const [name, r] of Object.entries(loaded.fleet.regions)) {
      for (const c of r.countries) {
        expect(seen.get(c), `${c} is in ${seen.get(c)} and ${name}`).toBeUndefined();
        seen.set(c, name);
      }
    }
    for (const c of ['DE', 'FR', 'GB', 'CH', 'NO', 'US', 'CA', 'MX', 'BR', 'IN', 'JP', 'SG', 'AU', 'KR']) expect(seen.has(c), c).toBe(true);
  });

  it('satisfies every requires on every cluster with a service that runs there', () => {
    for (const [cluster, c] of Object.entries(rendered.revision.clusters)) {
      for (const [name, s] of Object.entries(c.services)) {
        for (const [dep, range] of Object.entries(s.requires)) {
          const version = c.services[dep]?.version;
          expect(version, `${name} on ${cluster} requires ${dep}, which does not run there`).toBeDefined();
          expect(semver.satisfies(version ?? '', range), `${dep}@${version} on ${cluster} vs ${name}'s ${range}`).toBe(true);
        }
      }
    }
    expect(rendered.revision.clusters['ap-northeast-1']?.services['payments']).toBeUndefined();
  });

  it('pins every image by digest, one digest per version, with no literal secrets', () => {
    const digests = new Map<string, string>();
    for (const c of Object.values(rendered.revision.clusters)) {
      for (const s of Object.values(c.services)) {
        expect(s.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
        const key = `${s.image.split(':')[0]}@${s.version}`;
        expect(digests.get(key) ?? s.digest).toBe(s.digest);
        digests.set(key, s.digest ?? '');
        for (const v of Object.values(s.secrets)) expect(v.ref).toMatch(/^file:secrets\/[a-z0-9-]+\.env#[A-Z_]+$/);
        expect(s.resources.cpu).toBeDefined();
        expect(s.resources.memory).toBeDefined();
        if (s.ingress) expect(s.ingress.tls).toBe(true);
      }
    }
  });

  it('has every secret it references, in fake per-cluster files', () => {
    for (const [cluster, c] of Object.entries(rendered.revision.clusters)) {
      for (const [name, s] of Object.entries(c.services)) {
        for (const [key, v] of Object.entries(s.secrets)) {
          expect(resolveFileSecret(v.ref), `${name}.secrets.${key} on ${cluster}: ${v.ref}`).toBe(`example-not-a-real-secret-${cluster}`);
        }
      }
    }
    expect(readFileSync(join(SHOP, 'README.md'), 'utf8')).toMatch(/secrets\/`? are fake/);
  });

  it('fits every region quota twice over (room for a canary surge)', () => {
    for (const [region, r] of Object.entries(loaded.fleet.regions)) {
      let cpu = 0;
      let memory = 0;
      for (const c of Object.values(rendered.revision.clusters).filter((x) => x.region === region)) {
        for (const s of Object.values(c.services)) {
          cpu += s.replicas * (parseCpu(s.resources.cpu ?? 0) ?? 0);
          memory += s.replicas * (parseMemory(s.resources.memory ?? 0) ?? 0);
        }
      }
      expect(2 * cpu, `${region} cpu`).toBeLessThanOrEqual(parseCpu(r.quota?.cpu ?? 0) ?? 0);
      expect(2 * memory, `${region} memory`).toBeLessThanOrEqual(parseMemory(r.quota?.memory ?? 0) ?? 0);
    }
  });

  it('survives the loss of any one region inside each jurisdiction (EU is locked), with 1.4x headroom', () => {
    const { regions, clusters } = loaded.fleet;
    for (const lost of Object.keys(regions)) {
      const j = regions[lost]?.jurisdiction;
      const traffic = Object.values(regions)
        .filter((r) => r.jurisdiction === j)
        .reduce((n, r) => n + (r.traffic?.rps ?? 0), 0);
      const left = Object.values(clusters)
        .filter((c) => c.region !== lost && regions[c.region]?.jurisdiction === j)
        .reduce((n, c) => n + c.capacity.rps, 0);
      expect(left, `without ${lost}`).toBeGreaterThanOrEqual(1.4 * traffic);
    }
  });

  it('locks EU clients to EU and sets ENCRYPT_AT_REST on every EU workload (the custom policy)', () => {
    for (const r of Object.values(loaded.fleet.routing)) expect(r.residency?.['EU']).toEqual({ allow: ['EU'], mode: 'lock' });
    expect(loaded.fleet.policies?.custom?.[0]?.cel).toContain('ENCRYPT_AT_REST');
    for (const c of Object.values(rendered.revision.clusters).filter((x) => x.jurisdiction === 'EU')) {
      for (const s of Object.values(c.services)) expect(s.env['ENCRYPT_AT_REST']).toBe('true');
    }
  });

  it('has one waiver, and it covers the one instance below the minimum replica count', () => {
    const waivers = loaded.fleet.policies?.waivers ?? [];
    expect(waivers).toHaveLength(1);
    const [w] = waivers;
    expect(w?.rule).toBe('min-replicas');
    expect(w?.expires.startsWith('2027-')).toBe(true);
    const below: string[] = [];
    for (const [cluster, c] of Object.entries(rendered.revision.clusters)) {
      for (const [name, s] of Object.entries(c.services)) if (s.replicas < 2) below.push(`${name}@${cluster}`);
    }
    expect(below).toEqual([`${w?.target.service}@${w?.target.cluster}`]);
  });

  it('rolls out canary -> europe -> americas -> rest', () => {
    const waves = assignWaves(loaded.fleet);
    expect(waves.map((w) => [w.name, w.clusters])).toEqual([
      ['canary', ['eu-west-1', 'us-east-1']],
      ['europe', ['eu-central-1', 'eu-west-2']],
      ['americas', ['us-east-2', 'us-west-1']],
      ['rest', ['ap-northeast-1', 'ap-south-1']],
    ]);
    expect(waves[1]?.approvals).toEqual({ count: 1, roles: ['release-manager'] });
    expect(loaded.fleet.rollout?.onFailure).toBe('rollback-wave');
  });
});

// ---------------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

afterAll(() => {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
  output(): string;
}

/** Starts a service as the local driver would: its command, in the fleet's folder, with its env. */
async function start(cluster: string, service: string, extraEnv: Record<string, string> = {}): Promise<Running> {
  const { revision } = render(load(SHOP));
  const c = revision.clusters[cluster];
  const s: RenderedService | undefined = c?.services[service];
  if (!c || !s?.local) throw new Error(`${service} does not run on ${cluster}`);
  const port = await freePort();
  const secrets = Object.fromEntries(Object.entries(s.secrets).map(([k, v]) => [k, resolveFileSecret(v.ref) ?? '']));
  const env = {
    PATH: process.env['PATH'] ?? '',
    PORT: String(port),
    MERIDIAN_SERVICE: service,
    MERIDIAN_VERSION: s.version,
    MERIDIAN_CLUSTER: cluster,
    MERIDIAN_REGION: c.region,
    ...s.env,
    ...s.config,
    ...secrets,
    ...extraEnv,
  };
  const [cmd, ...args] = s.local.command;
  const child = spawn(cmd === 'node' ? process.execPath : (cmd ?? ''), args, { cwd: SHOP, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const health = s.health?.path ?? '/healthz';
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}${health}`);
      break;
    } catch {
      if (i > 100 || child.exitCode !== null) throw new Error(`${service} did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { child, url, exited, output: () => out };
}

describe('the example services, as real processes', () => {
  const cases: [string, string][] = [
    ['eu-west-1', 'web'],
    ['eu-west-1', 'api'],
    ['eu-west-1', 'catalog'],
    ['eu-west-1', 'payments'],
    ['us-east-2', 'admin'],
  ];

  it.each(cases)('%s/%s answers its health path and requests with the right JSON, echoing traceparent', async (cluster, service) => {
    const svc = await start(cluster, service);
    const health = await fetch(`${svc.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', service, cluster });
    const trace = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await fetch(`${svc.url}/some/path?q=1`, { headers: { traceparent: trace } });
    expect(res.status).toBe(200);
    expect(res.headers.get('traceparent')).toBe(trace);
    const region = cluster.replace(/-\d+$/, '');
    const version = load(SHOP).fleet.services[service]?.version;
    expect(await res.json()).toMatchObject({ service, version, cluster, region, path: '/some/path' });
    const plain = await fetch(`${svc.url}/`);
    expect(plain.headers.get('traceparent')).toBeNull();
    await plain.text();
    process.kill(svc.child.pid ?? 0, 'SIGTERM');
    expect(await svc.exited).toBe(0); // a clean shutdown
  });

  it('FAULT_ERROR_RATIO=1 makes every request a 500, but not the health check', async () => {
    const svc = await start('eu-west-1', 'web', { FAULT_ERROR_RATIO: '1' });
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${svc.url}/x`);
      expect(r.status).toBe(500);
      await r.text();
    }
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
  });

  it('FAULT_ERROR_RATIO=0.25 fails exactly one request in four', async () => {
    const svc = await start('eu-west-1', 'api', { FAULT_ERROR_RATIO: '25%' });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${svc.url}/x`);
      statuses.push(r.status);
      await r.text();
    }
    expect(statuses.filter((s) => s === 500)).toHaveLength(5);
  });

  it('FAULT_HEALTH makes the health check answer 503 while requests still work', async () => {
    const svc = await start('eu-west-1', 'catalog', { FAULT_HEALTH: 'true' });
    const h = await fetch(`${svc.url}/healthz`);
    expect(h.status).toBe(503);
    expect(await h.json()).toMatchObject({ status: 'failing' });
    expect((await fetch(`${svc.url}/v1/products`)).status).toBe(200);
  });

  it('FAULT_LATENCY delays requests', async () => {
    const svc = await start('eu-west-1', 'payments', { FAULT_LATENCY: '300ms' });
    const t0 = performance.now();
    const r = await fetch(`${svc.url}/v1/charges`, { method: 'POST' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(await r.json()).toMatchObject({ service: 'payments', charge: expect.stringMatching(/^ch_/) as unknown });
  });

  it('FAULT_CRASH_AFTER=3 crashes the process after three requests', async () => {
    const svc = await start('us-east-2', 'admin', { FAULT_CRASH_AFTER: '3' });
    for (let i = 0; i < 3; i++) expect((await fetch(`${svc.url}/x`)).status).toBe(200);
    expect(await svc.exited).toBe(1);
    expect(svc.output()).toContain('FAULT_CRASH_AFTER');
  });

  it('FAULT_CRASH_AFTER=300ms crashes the process after that long', async () => {
    const svc = await start('eu-west-1', 'web', { FAULT_CRASH_AFTER: '300ms' });
    expect(await svc.exited).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('the benchmark fleet generator (bench/gen-fleet.ts)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'meridian-gen-'));
    writeFleet(dir, { clusters: 50, services: 10 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a 50 x 10 fleet that loads and renders with zero findings', () => {
    const loaded = load(dir);
    const { revision, findings } = render(loaded);
    expect(findings).toEqual([]);
    expect(Object.keys(revision.clusters)).toHaveLength(50);
    expect(Object.keys(loaded.fleet.services)).toHaveLength(10);
    expect(Object.keys(loaded.fleet.regions).length).toBeGreaterThanOrEqual(20);
    expect(new Set(Object.values(loaded.fleet.regions).map((r) => r.jurisdiction)).size).toBeGreaterThanOrEqual(3);
    expect(Object.keys(loaded.fleet.routing).length).toBeGreaterThanOrEqual(1);
    const instances = Object.values(revision.clusters).flatMap((c) => Object.entries(c.services));
    for (const [name, s] of instances) {
      expect(s.digest, name).not.toBeNull();
      for (const v of Object.values(s.secrets)) expect(v.ref).toMatch(/^(env:|file:secrets\/)/);
    }
    const envRefs = new Set(instances.flatMap(([, s]) => Object.values(s.secrets).map((v) => v.ref)).filter((r) => r.startsWith('env:')));
    for (const r of envRefs) expect(BENCH_SECRET_ENV).toContain(r.slice(4));
  });

  it('satisfies every requires on every cluster', () => {
    const { revision } = render(load(dir));
    for (const [cluster, c] of Object.entries(revision.clusters)) {
      for (const [name, s] of Object.entries(c.services)) {
        for (const [dep, range] of Object.entries(s.requires)) {
          expect(semver.satisfies(c.services[dep]?.version ?? '0.0.0-missing', range), `${name} -> ${dep} on ${cluster}`).toBe(true);
        }
      }
    }
  });

  it('is deterministic', () => {
    const a = generateFleet({ clusters: 50, services: 10 });
    const b = generateFleet({ clusters: 50, services: 10 });
    expect([...a.entries()]).toEqual([...b.entries()]);
    expect(generateFleet({ clusters: 50, services: 10, seed: 7 }).get('fleet.yaml')).not.toBe(a.get('fleet.yaml'));
  });
});
