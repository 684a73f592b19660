/**
 * Generates a synthetic but realistic fleet of N clusters × M services (default 1000 × 50) for the
 * benchmarks: 20–50 regions in four jurisdictions, services with `requires` chains, overrides by
 * jurisdiction, label and cluster, `env:` and `file:` secret references, routing, waves, policies.
 * Deterministic: the same options give the same bytes. Clean by construction: it loads and renders
 * without findings, quotas fit with room for a canary surge, losing any one region is survivable.
 *
 *   npx tsx bench/gen-fleet.ts --clusters 1000 --services 50 --out bench/out/fleet-1000x50
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';

/** Options of {@link generateFleet}. */
export interface GenOptions {
  readonly clusters: number;
  readonly services: number;
  readonly seed?: number;
}

/** What a generated fleet needs from the environment: the `env:` secret references' variables. */
export const BENCH_SECRET_ENV: readonly string[] = [
  'MERIDIAN_BENCH_DB_PASSWORD',
  'MERIDIAN_BENCH_API_TOKEN',
  'MERIDIAN_BENCH_QUEUE_PASSWORD',
];

/** Environment variables for a process that validates a generated fleet (fake values). */
export function benchSecretEnv(): Record<string, string> {
  return Object.fromEntries(BENCH_SECRET_ENV.map((k) => [k, `bench-not-a-real-secret-${k.toLowerCase()}`]));
}

/** A generated fleet: file name (relative to the fleet directory) → content. */
export type FleetFiles = Map<string, string>;

interface City {
  readonly name: string;
  readonly jurisdiction: string;
  readonly lat: number;
  readonly lon: number;
}

// prettier-ignore
const CITIES: readonly City[] = [
  { name: 'eu-dublin', jurisdiction: 'EU', lat: 53.35, lon: -6.26 },
  { name: 'eu-frankfurt', jurisdiction: 'EU', lat: 50.11, lon: 8.68 },
  { name: 'eu-paris', jurisdiction: 'EU', lat: 48.86, lon: 2.35 },
  { name: 'eu-stockholm', jurisdiction: 'EU', lat: 59.33, lon: 18.07 },
  { name: 'eu-milan', jurisdiction: 'EU', lat: 45.46, lon: 9.19 },
  { name: 'eu-madrid', jurisdiction: 'EU', lat: 40.42, lon: -3.7 },
  { name: 'eu-warsaw', jurisdiction: 'EU', lat: 52.23, lon: 21.01 },
  { name: 'eu-amsterdam', jurisdiction: 'EU', lat: 52.37, lon: 4.9 },
  { name: 'eu-london', jurisdiction: 'EU', lat: 51.51, lon: -0.13 },
  { name: 'eu-zurich', jurisdiction: 'EU', lat: 47.37, lon: 8.54 },
  { name: 'eu-vienna', jurisdiction: 'EU', lat: 48.21, lon: 16.37 },
  { name: 'eu-helsinki', jurisdiction: 'EU', lat: 60.17, lon: 24.94 },
  { name: 'eu-lisbon', jurisdiction: 'EU', lat: 38.72, lon: -9.14 },
  { name: 'eu-athens', jurisdiction: 'EU', lat: 37.98, lon: 23.73 },
  { name: 'us-virginia', jurisdiction: 'US', lat: 38.9, lon: -77.04 },
  { name: 'us-oregon', jurisdiction: 'US', lat: 45.52, lon: -122.68 },
  { name: 'us-ohio', jurisdiction: 'US', lat: 39.96, lon: -83.0 },
  { name: 'us-california', jurisdiction: 'US', lat: 37.77, lon: -122.42 },
  { name: 'us-texas', jurisdiction: 'US', lat: 32.78, lon: -96.8 },
  { name: 'us-iowa', jurisdiction: 'US', lat: 41.59, lon: -93.62 },
  { name: 'us-georgia', jurisdiction: 'US', lat: 33.75, lon: -84.39 },
  { name: 'us-montreal', jurisdiction: 'US', lat: 45.5, lon: -73.57 },
  { name: 'us-toronto', jurisdiction: 'US', lat: 43.65, lon: -79.38 },
  { name: 'us-arizona', jurisdiction: 'US', lat: 33.45, lon: -112.07 },
  { name: 'us-illinois', jurisdiction: 'US', lat: 41.88, lon: -87.63 },
  { name: 'ap-mumbai', jurisdiction: 'APAC', lat: 19.08, lon: 72.88 },
  { name: 'ap-tokyo', jurisdiction: 'APAC', lat: 35.68, lon: 139.69 },
  { name: 'ap-singapore', jurisdiction: 'APAC', lat: 1.35, lon: 103.82 },
  { name: 'ap-sydney', jurisdiction: 'APAC', lat: -33.87, lon: 151.21 },
  { name: 'ap-seoul', jurisdiction: 'APAC', lat: 37.57, lon: 126.98 },
  { name: 'ap-osaka', jurisdiction: 'APAC', lat: 34.69, lon: 135.5 },
  { name: 'ap-hongkong', jurisdiction: 'APAC', lat: 22.32, lon: 114.17 },
  { name: 'ap-jakarta', jurisdiction: 'APAC', lat: -6.21, lon: 106.85 },
  { name: 'ap-hyderabad', jurisdiction: 'APAC', lat: 17.39, lon: 78.49 },
  { name: 'ap-melbourne', jurisdiction: 'APAC', lat: -37.81, lon: 144.96 },
  { name: 'ap-taipei', jurisdiction: 'APAC', lat: 25.03, lon: 121.57 },
  { name: 'ap-bangkok', jurisdiction: 'APAC', lat: 13.76, lon: 100.5 },
  { name: 'ap-auckland', jurisdiction: 'APAC', lat: -36.85, lon: 174.76 },
  { name: 'ap-dubai', jurisdiction: 'APAC', lat: 25.2, lon: 55.27 },
  { name: 'latam-saopaulo', jurisdiction: 'LATAM', lat: -23.55, lon: -46.63 },
  { name: 'latam-santiago', jurisdiction: 'LATAM', lat: -33.45, lon: -70.67 },
  { name: 'latam-queretaro', jurisdiction: 'LATAM', lat: 20.59, lon: -100.39 },
  { name: 'latam-bogota', jurisdiction: 'LATAM', lat: 4.71, lon: -74.07 },
  { name: 'latam-buenosaires', jurisdiction: 'LATAM', lat: -34.6, lon: -58.38 },
  { name: 'latam-lima', jurisdiction: 'LATAM', lat: -12.05, lon: -77.04 },
  { name: 'latam-rio', jurisdiction: 'LATAM', lat: -22.91, lon: -43.17 },
  { name: 'latam-panama', jurisdiction: 'LATAM', lat: 8.98, lon: -79.52 },
  { name: 'latam-montevideo', jurisdiction: 'LATAM', lat: -34.9, lon: -56.16 },
  { name: 'latam-guadalajara', jurisdiction: 'LATAM', lat: 20.67, lon: -103.35 },
];

// prettier-ignore
const COUNTRIES: Readonly<Record<string, readonly string[]>> = {
  EU: ['IE', 'GB', 'FR', 'ES', 'PT', 'BE', 'NL', 'LU', 'MT', 'IS', 'DE', 'AT', 'CH', 'LI', 'IT', 'PL', 'CZ', 'SK', 'HU', 'SI', 'HR', 'RO', 'BG', 'GR', 'CY', 'DK', 'SE', 'FI', 'NO', 'EE', 'LV', 'LT'],
  US: ['US', 'CA', 'PR', 'GU', 'VI', 'AS', 'MP', 'UM', 'BM', 'BS', 'JM', 'DO', 'HT', 'TT', 'BB'],
  APAC: ['IN', 'JP', 'SG', 'AU', 'KR', 'NZ', 'ID', 'TH', 'VN', 'PH', 'MY', 'TW', 'HK', 'BD', 'LK', 'PK', 'NP', 'AE', 'SA', 'QA', 'KW', 'OM', 'BH', 'KH', 'MM', 'MN'],
  LATAM: ['BR', 'MX', 'AR', 'CL', 'CO', 'PE', 'UY', 'PY', 'BO', 'EC', 'VE', 'GT', 'CR', 'PA', 'HN', 'SV', 'NI', 'BZ'],
};

// prettier-ignore
const WORDS = [
  'identity', 'catalog', 'pricing', 'inventory', 'search', 'cart', 'orders', 'payments', 'shipping', 'tax',
  'ledger', 'invoices', 'reviews', 'ratings', 'media', 'thumbnails', 'notifications', 'email', 'sms', 'push',
  'sessions', 'profiles', 'addresses', 'loyalty', 'coupons', 'promotions', 'recommendations', 'analytics', 'events', 'audit',
  'fraud', 'risk', 'kyc', 'refunds', 'returns', 'warehouse', 'fulfilment', 'tracking', 'support', 'chat',
  'feeds', 'sitemap', 'seo', 'ads', 'affiliates', 'partners', 'vendors', 'marketplace', 'checkout', 'storefront',
];

/** mulberry32: a small, fast, seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function at<T>(list: readonly T[], i: number): T {
  const v = list[i];
  if (v === undefined) throw new Error(`index ${i} out of range (${list.length})`);
  return v;
}

const HEADER = { apiVersion: 'meridian/v1', fleet: 'bench' };

/** The smallest fleet: three regions with one cluster each in every one of the four jurisdictions. */
export const MIN_CLUSTERS = 12;

function yamlFile(comment: string, body: Record<string, unknown>): string {
  return `# ${comment}\n${stringify({ ...HEADER, ...body }, { lineWidth: 0, flowCollectionPadding: true })}`;
}

interface GenCluster {
  name: string;
  region: string;
  jurisdiction: string;
  labels: Record<string, string>;
  capacity: number;
}

interface GenService {
  name: string;
  index: number;
  /** Runs on every cluster: only these may be required by others or routed. */
  universal: boolean;
  replicas: number;
  cpu: number; // millicores
  memory: number; // Mi
  def: Record<string, unknown>;
}

function distance(a: City, b: City): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

/** Generates the fleet's files in memory. */
export function generateFleet(opts: GenOptions): FleetFiles {
  const nClusters = Math.max(MIN_CLUSTERS, Math.floor(opts.clusters));
  const nServices = Math.max(4, Math.floor(opts.services));
  const rand = prng(opts.seed ?? 20261126);
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(list: readonly T[]): T => at(list, Math.floor(rand() * list.length));
  const files: FleetFiles = new Map();

  // Regions: 20..50 (fewer for a tiny fleet: one cluster each), round-robin over the jurisdictions, at least 3 each.
  const nRegions = Math.min(CITIES.length, nClusters, Math.max(20, Math.min(50, Math.round(nClusters / 25))));
  const byJur = new Map<string, City[]>();
  for (const c of CITIES) byJur.set(c.jurisdiction, [...(byJur.get(c.jurisdiction) ?? []), c]);
  const chosen: City[] = [];
  for (let i = 0; chosen.length < nRegions; i++) {
    for (const list of byJur.values()) if (i < list.length && chosen.length < nRegions) chosen.push(at(list, i));
  }
  const jurisdictions = [...byJur.keys()];

  // Clusters: spread over the regions with weights 2..4, so no region holds most of its jurisdiction.
  const weights = chosen.map(() => int(2, 4));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const perRegion = weights.map((w) => Math.max(1, Math.floor((w / totalWeight) * nClusters)));
  for (let i = 0; perRegion.reduce((a, b) => a + b, 0) < nClusters; i = (i + 1) % perRegion.length) perRegion[i] = at(perRegion, i) + 1;
  for (let i = 0; perRegion.reduce((a, b) => a + b, 0) > nClusters; i = (i + 1) % perRegion.length) {
    if (at(perRegion, i) > 1) perRegion[i] = at(perRegion, i) - 1;
  }
  const clusters: GenCluster[] = [];
  chosen.forEach((city, r) => {
    for (let k = 1; k <= at(perRegion, r); k++) {
      const labels: Record<string, string> = {
        tier: 'standard',
        pool: pick(['general', 'general', 'memory', 'compute']),
        zone: pick(['a', 'b', 'c']),
      };
      clusters.push({
        name: `${city.name}-${k}`,
        region: city.name,
        jurisdiction: city.jurisdiction,
        labels,
        capacity: pick([500, 800, 1000, 1500, 2000]),
      });
    }
  });
  // About 1% canaries (at least two), the first cluster of regions spread across the list.
  const nCanary = Math.max(2, Math.round(nClusters / 100));
  for (let i = 0; i < nCanary; i++) {
    const c = at(clusters, Math.floor((i * clusters.length) / nCanary));
    c.labels['tier'] = 'canary';
  }

  // Services: a DAG; service i may require up to two of the universal services before it.
  const services: GenService[] = [];
  const names = Array.from({ length: nServices }, (_, i) =>
    i < WORDS.length ? at(WORDS, i) : `${at(WORDS, i % WORDS.length)}-${Math.floor(i / WORDS.length) + 1}`,
  );
  const nRouted = Math.min(4, Math.max(1, Math.floor(nServices / 10)));
  const versions = new Map<string, string>();
  for (let i = 0; i < nServices; i++) {
    const name = at(names, i);
    const routed = i >= nServices - nRouted;
    // A tenth of the services, not required by others and not routed, run only in part of the fleet.
    const restricted = !routed && i >= Math.floor(nServices * 0.7) && rand() < 0.35;
    const universal = !restricted;
    const version = `${int(1, 4)}.${int(0, 20)}.${int(0, 9)}`;
    versions.set(name, version);
    const digest = createHash('sha256').update(`bench/${name}:${version}`).digest('hex');
    const replicas = int(2, 4);
    const cpu = pick([50, 100, 100, 250, 250, 500]);
    const memory = pick([64, 128, 128, 256, 256, 512]);
    const requires: Record<string, string> = {};
    const candidates = services.filter((s) => s.universal);
    for (let d = 0; d < 2 && candidates.length > 0; d++) {
      if (d === 1 && rand() < 0.5) break;
      const dep = pick(candidates);
      const [major, minor] = (versions.get(dep.name) ?? '1.0.0').split('.');
      requires[dep.name] = `>=${major}.${minor}.0 <${Number(major) + 1}.0.0`;
    }
    const env: Record<string, string | number | boolean> = {
      LOG_LEVEL: 'info',
      OTEL_SERVICE_NAME: '${service.name}',
      REGION: '${region.name}',
    };
    for (const dep of Object.keys(requires)) env[`${dep.toUpperCase().replace(/-/g, '_')}_URL`] = `http://${dep}.\${region.name}.svc:8080`;
    for (let k = int(2, 5); k > 0; k--) env[`FEATURE_${int(100, 999)}`] = pick(['on', 'off', 'shadow']);
    const config: Record<string, string | number> = {
      TIMEOUT: pick(['500ms', '2s', '5s']),
      MAX_CONNECTIONS: pick([64, 128, 256]),
      CACHE_TTL: pick(['30s', '5m', '1h']),
    };
    const secrets: Record<string, { ref: string }> = { DB_PASSWORD: { ref: 'env:MERIDIAN_BENCH_DB_PASSWORD' } };
    if (rand() < 0.5) secrets['API_TOKEN'] = { ref: 'env:MERIDIAN_BENCH_API_TOKEN' };
    if (rand() < 0.3) secrets['QUEUE_PASSWORD'] = { ref: 'env:MERIDIAN_BENCH_QUEUE_PASSWORD' };
    if (rand() < 0.25) secrets['SIGNING_KEY'] = { ref: 'file:secrets/${region.jurisdiction}.env#SIGNING_KEY' };
    const overrides: Record<string, unknown>[] = [
      { match: { jurisdiction: 'EU' }, set: { env: { GDPR_MODE: 'strict', ENCRYPT_AT_REST: 'true' } } },
      { match: { labels: { tier: 'canary' } }, set: { env: { LOG_LEVEL: 'debug' } } },
    ];
    if (rand() < 0.5) overrides.push({ match: { labels: { pool: 'memory' } }, set: { resources: { memory: `${memory * 2}Mi` } } });
    if (rand() < 0.3) overrides.push({ match: { jurisdiction: pick(jurisdictions) }, set: { config: { CACHE_TTL: '10m' } } });
    if (rand() < 0.2) overrides.push({ match: { cluster: pick(clusters).name }, set: { replicas: replicas + 1 } });
    const def: Record<string, unknown> = {
      image: `registry.example/bench/${name}:${version}@sha256:${digest}`,
      version,
      port: 8080,
      health: { path: '/healthz' },
      replicas,
      resources: { cpu: `${cpu}m`, memory: `${memory}Mi` },
      ...(Object.keys(requires).length > 0 ? { requires } : {}),
      env,
      config,
      secrets,
      ...(routed ? { ingress: { host: `${name}.\${region.params.domain}`, tls: true } } : {}),
      overrides,
    };
    if (restricted) {
      def['placement'] = rand() < 0.5 ? { exclude: { jurisdiction: pick(jurisdictions) } } : { match: { labels: { pool: 'general' } } };
    }
    services.push({ name, index: i, universal, replicas, cpu, memory, def });
  }

  // One single-replica service instance, waived (so the waiver really waives a min-replicas finding).
  const waivedService = at(services, 0);
  const waivedCluster = at(clusters, clusters.length - 1);
  (waivedService.def['overrides'] as Record<string, unknown>[]).push({ match: { cluster: waivedCluster.name }, set: { replicas: 1 } });

  // Quotas: the region's exact usage (replicas × resources, after overrides), times 2.5 for a canary surge.
  const usage = new Map<string, { cpu: number; memory: number }>();
  for (const c of clusters) {
    const u = usage.get(c.region) ?? { cpu: 0, memory: 0 };
    for (const s of services) {
      if (!runsOn(s, c)) continue;
      let { replicas, memory } = s;
      for (const o of s.def['overrides'] as {
        match: Record<string, unknown>;
        set: { replicas?: number; resources?: { memory: string } };
      }[]) {
        if (!selectorMatches(o.match, c)) continue;
        if (o.set.replicas !== undefined) replicas = o.set.replicas;
        if (o.set.resources) memory = Number.parseInt(o.set.resources.memory, 10);
      }
      u.cpu += replicas * s.cpu;
      u.memory += replicas * memory;
    }
    usage.set(c.region, u);
  }

  // Traffic: a fifth of the region's capacity. No region holds more than 72% of its jurisdiction's
  // capacity, so losing any one region fits in the rest of the jurisdiction (EU is locked) with the
  // 1.4 overprovisioning factor to spare: 1.4 × 0.2 = 0.28 ≤ 1 − 0.72.
  const capacityByRegion = new Map<string, number>();
  for (const c of clusters) capacityByRegion.set(c.region, (capacityByRegion.get(c.region) ?? 0) + c.capacity);

  const countryOf = new Map<string, string[]>();
  for (const j of jurisdictions) {
    const regs = chosen.filter((c) => c.jurisdiction === j);
    (COUNTRIES[j] ?? []).forEach((country, i) => {
      const r = at(regs, i % regs.length);
      countryOf.set(r.name, [...(countryOf.get(r.name) ?? []), country]);
    });
  }
  const regions: Record<string, unknown> = {};
  for (const city of chosen) {
    const u = usage.get(city.name) ?? { cpu: 0, memory: 0 };
    regions[city.name] = {
      jurisdiction: city.jurisdiction,
      location: { lat: city.lat, lon: city.lon },
      countries: countryOf.get(city.name) ?? [],
      quota: { cpu: Math.ceil((u.cpu * 2.5) / 1000) + 1, memory: `${Math.ceil((u.memory * 2.5) / 1024) + 1}Gi` },
      traffic: { rps: Math.floor((capacityByRegion.get(city.name) ?? 0) / 5) },
      params: { domain: `${city.name}.bench.example`, cell: `cell-${int(1, 9)}` },
    };
  }
  files.set('fleet.yaml', yamlFile('Synthetic benchmark fleet (bench/gen-fleet.ts): regions.', { regions }));

  for (const j of jurisdictions) {
    const body: Record<string, unknown> = {};
    for (const c of clusters.filter((x) => x.jurisdiction === j)) {
      const gitops = rand() < 0.1;
      body[c.name] = {
        region: c.region,
        driver: gitops ? 'gitops' : 'kubernetes',
        target: gitops
          ? { repo: 'git@git.example:fleet/deploy.git', path: `clusters/${c.name}` }
          : { kubeconfig: 'kubeconfig.yaml', context: `prod-${c.name}`, namespace: 'bench' },
        capacity: { rps: c.capacity },
        weight: int(1, 3),
        labels: c.labels,
        params: { shard: `${int(0, 15)}` },
      };
    }
    files.set(`clusters-${j.toLowerCase()}.yaml`, yamlFile(`Synthetic benchmark fleet: clusters in ${j}.`, { clusters: body }));
  }

  for (let start = 0; start < services.length; start += 10) {
    const chunk = services.slice(start, start + 10);
    files.set(
      `services-${String(start / 10).padStart(2, '0')}.yaml`,
      yamlFile('Synthetic benchmark fleet: services.', { services: Object.fromEntries(chunk.map((s) => [s.name, s.def])) }),
    );
  }

  const routing: Record<string, unknown> = {};
  const routedServices = services.slice(nServices - nRouted);
  for (const s of routedServices) {
    const failover: Record<string, string[]> = {};
    for (const city of chosen.slice(0, 8)) {
      failover[city.name] = chosen
        .filter((o) => o.jurisdiction === city.jurisdiction && o.name !== city.name)
        .sort((a, b) => distance(city, a) - distance(city, b) || (a.name < b.name ? -1 : 1))
        .slice(0, 2)
        .map((o) => o.name);
    }
    routing[s.name] = {
      match: { hosts: [`${s.name}.bench.example`], pathPrefix: '/' },
      residency: { EU: { allow: ['EU'], mode: 'lock' }, default: { allow: jurisdictions, mode: 'prefer' } },
      clientCountryHeader: 'x-client-country',
      steering: 'proximity',
      failover,
      bias: { [at(chosen, 0).name]: 10 },
      healthCheck: { path: '/healthz', interval: '2s', timeout: '1s', unhealthyThreshold: 3, healthyThreshold: 2 },
      outlierDetection: { consecutive5xx: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
      stickiness: { cookie: 'mrd_uid' },
      retries: { attempts: 1, budget: '20%' },
    };
  }
  files.set('routing.yaml', yamlFile('Synthetic benchmark fleet: routing.', { routing }));

  const rollout = {
    waves: [
      {
        name: 'canary',
        clusters: { labels: { tier: 'canary' } },
        steps: [{ weight: 5, pause: '1m' }, { weight: 25, pause: '2m' }, { weight: 100 }],
      },
      {
        name: 'europe',
        clusters: { jurisdiction: 'EU' },
        approvals: { count: 1, roles: ['release-manager'] },
        maxParallel: 25,
        bake: '10m',
      },
      { name: 'americas', clusters: { jurisdiction: ['US', 'LATAM'] }, maxParallel: 25, bake: '10m' },
      { name: 'rest', maxParallel: 25 },
    ],
    analysis: {
      interval: '30s',
      minSamples: 200,
      metrics: [
        { name: 'error-rate', source: 'router', max: '1%', maxIncreaseOverBaseline: '0.5%', onNoData: 'inconclusive' },
        { name: 'p99-latency', source: 'router', max: '300ms' },
      ],
      failureLimit: 2,
    },
    onFailure: 'rollback-wave',
  };
  files.set('rollout.yaml', yamlFile('Synthetic benchmark fleet: rollout.', { rollout }));

  const flags: Record<string, unknown> = {};
  for (let f = 0; f < 5; f++) {
    const regionsState: Record<string, unknown> = {};
    for (let k = 0; k < 6; k++) regionsState[pick(chosen).name] = { enabled: rand() < 0.7, percent: pick([5, 20, 50, 100]) };
    flags[`flag-${f + 1}`] = { default: rand() < 0.5, regions: regionsState };
  }
  files.set('flags.yaml', yamlFile('Synthetic benchmark fleet: flags.', { flags }));

  const policies = {
    rules: ['digest-pinned', 'no-literal-secrets', 'resources-required', 'min-replicas', 'tls-ingress'],
    custom: [
      {
        name: 'eu-encryption-at-rest',
        match: { jurisdiction: 'EU' },
        cel: "service.env.ENCRYPT_AT_REST == 'true'",
        message: 'EU workloads must encrypt data at rest',
      },
    ],
    waivers: [
      {
        rule: 'min-replicas',
        target: { service: waivedService.name, cluster: waivedCluster.name },
        reason: 'single replica while the cluster is being drained, tracked in BENCH-1',
        approvedBy: 'bench',
        expires: '2027-06-30',
      },
    ],
  };
  files.set('policies.yaml', yamlFile('Synthetic benchmark fleet: policies.', { policies }));

  for (const j of jurisdictions)
    files.set(
      `secrets/${j}.env`,
      `# FAKE values for the benchmark fleet. Not real secrets.\nSIGNING_KEY=bench-not-a-real-secret-${j.toLowerCase()}\n`,
    );
  return files;

  function runsOn(s: GenService, c: GenCluster): boolean {
    const p = s.def['placement'] as { match?: Record<string, unknown>; exclude?: Record<string, unknown> } | undefined;
    if (!p) return true;
    if (p.match && !selectorMatches(p.match, c)) return false;
    if (p.exclude && selectorMatches(p.exclude, c)) return false;
    return true;
  }
}

function selectorMatches(sel: Record<string, unknown>, c: GenCluster): boolean {
  const oneOf = (v: string, want: unknown): boolean => want === undefined || (Array.isArray(want) ? want.includes(v) : want === v);
  if (!oneOf(c.region, sel['region']) || !oneOf(c.name, sel['cluster']) || !oneOf(c.jurisdiction, sel['jurisdiction'])) return false;
  const labels = sel['labels'] as Record<string, string> | undefined;
  return !labels || Object.entries(labels).every(([k, v]) => c.labels[k] === v);
}

/** Writes a generated fleet into `dir` (emptied first). */
export function writeFleet(dir: string, opts: GenOptions): { files: number; bytes: number } {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'secrets'), { recursive: true });
  let bytes = 0;
  const files = generateFleet(opts);
  for (const [name, text] of files) {
    writeFileSync(join(dir, name), text);
    bytes += Buffer.byteLength(text);
  }
  return { files: files.size, bytes };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      clusters: { type: 'string', default: '1000' },
      services: { type: 'string', default: '50' },
      seed: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const clusters = Number(values.clusters);
  const services = Number(values.services);
  if (!Number.isInteger(clusters) || clusters < MIN_CLUSTERS || !Number.isInteger(services) || services < 4) {
    process.stderr.write(`usage: gen-fleet [--clusters N (>= ${MIN_CLUSTERS})] [--services M (>= 4)] [--seed S] [--out DIR]\n`);
    process.exit(2);
  }
  const out = values.out ?? join('bench', 'out', `fleet-${clusters}x${services}`);
  const { files, bytes } = writeFleet(out, { clusters, services, ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}) });
  process.stdout.write(`wrote ${files} files (${(bytes / 1024).toFixed(0)} KiB) to ${out}: ${clusters} clusters x ${services} services\n`);
  process.stdout.write(`the fleet's env: secret references need: ${BENCH_SECRET_ENV.join(', ')}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
