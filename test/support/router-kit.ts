/**
 * Test kit for the router tests: small revisions built in code, real loopback upstream servers whose
 * answers the test controls, and a keep-alive HTTP client that can speak from a chosen loopback address.
 */
import { createServer, request, Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { RenderedCluster, RenderedService, Revision } from '../../src/render/render.js';
import { LOOPBACK_SOURCES, type RouterEndpoint } from '../../src/router/index.js';
import { Routing } from '../../src/spec/schema.js';

/**
 * These tests' clients speak from loopback and stand for trusted proxies: the router trusts nothing by
 * default (docs/router.md, "HTTP limits and trust"), so a test router trusts loopback explicitly.
 */
export const TRUST_LOOPBACK = { trustedSources: LOOPBACK_SOURCES, adminSources: LOOPBACK_SOURCES } as const;

/** The same for a router started with `meridian router`. */
export const TRUST_LOOPBACK_FLAGS: readonly string[] = ['--trusted-sources', '127.0.0.0/8', '--admin-sources', '127.0.0.0/8'];

export interface RegionSpec {
  readonly jurisdiction: string;
  readonly countries: readonly string[];
  readonly lat: number;
  readonly lon: number;
  readonly rps?: number;
}

export interface FleetSpec {
  readonly regions: Readonly<Record<string, RegionSpec>>;
  /** cluster → region (and optional weight/capacity) */
  readonly clusters: Readonly<Record<string, { readonly region: string; readonly weight?: number; readonly capacity?: number }>>;
  /** service → version (runs on every cluster unless `on` says where) */
  readonly services: Readonly<Record<string, { readonly version: string; readonly on?: readonly string[] }>>;
  /** service → routing (the fleet file's shape, defaults applied by the schema) */
  readonly routing: Readonly<Record<string, unknown>>;
}

function svc(version: string): RenderedService {
  return {
    image: `example.test/app:${version}@sha256:${'0'.repeat(64)}`,
    digest: `sha256:${'0'.repeat(64)}`,
    version,
    port: 8080,
    replicas: 1,
    resources: {},
    health: { path: '/healthz' },
    requires: {},
    env: {},
    config: {},
    secrets: {},
    ingress: null,
    local: null,
  };
}

/** A revision from a compact description; its id changes with its content. */
export function revision(spec: FleetSpec, id = 'rev-1'): Revision {
  const regions: Revision['regions'] = Object.fromEntries(
    Object.entries(spec.regions).map(([name, r]) => [
      name,
      { jurisdiction: r.jurisdiction, location: { lat: r.lat, lon: r.lon }, countries: r.countries, trafficRps: r.rps ?? null },
    ]),
  );
  const clusters: Record<string, RenderedCluster> = {};
  for (const [name, c] of Object.entries(spec.clusters)) {
    const services: Record<string, RenderedService> = {};
    for (const [s, def] of Object.entries(spec.services)) if (!def.on || def.on.includes(name)) services[s] = svc(def.version);
    clusters[name] = {
      region: c.region,
      jurisdiction: spec.regions[c.region]?.jurisdiction ?? 'EU',
      driver: 'local',
      target: null,
      capacity: { rps: c.capacity ?? 100_000 },
      weight: c.weight ?? 1,
      priority: null,
      labels: {},
      services,
      hash: name,
    };
  }
  const routing = Object.fromEntries(Object.entries(spec.routing).map(([s, r]) => [s, Routing.parse(r)]));
  return { id, fleet: 'test', regions, clusters, routing, flags: {} };
}

/** Two EU regions and one US region, one cluster each (and a second in eu-west). */
export const EU_US: Pick<FleetSpec, 'regions' | 'clusters'> = {
  regions: {
    'eu-west': { jurisdiction: 'EU', countries: ['IE', 'FR', 'GB'], lat: 53.35, lon: -6.26 },
    'eu-central': { jurisdiction: 'EU', countries: ['DE', 'AT', 'PL'], lat: 50.11, lon: 8.68 },
    'us-east': { jurisdiction: 'US', countries: ['US', 'CA'], lat: 38.9, lon: -77.04 },
  },
  clusters: {
    'eu-west-1': { region: 'eu-west' },
    'eu-central-1': { region: 'eu-central' },
    'us-east-1': { region: 'us-east' },
  },
};

/** A loopback upstream whose status the test sets; it answers `{cluster, version, port}` and counts hits. */
export interface Upstream {
  readonly port: number;
  readonly cluster: string;
  readonly version: string;
  hits: number;
  status: number;
  /** Waits this long before answering a request (not a health check). */
  delayMs: number;
  /** Last request headers seen. */
  lastHeaders: IncomingHttpHeaders | null;
  endpoint(track?: 'stable' | 'canary', service?: string): RouterEndpoint;
  /** Closes the listening socket and destroys every open connection (as a killed process would). */
  kill(): Promise<void>;
}

export async function startUpstream(cluster: string, version: string): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const up: Upstream = {
    port: 0,
    cluster,
    version,
    hits: 0,
    status: 200,
    delayMs: 0,
    lastHeaders: null,
    endpoint(track = 'stable', service = 'web') {
      return { cluster, service, track, version, host: '127.0.0.1', port: this.port };
    },
    kill: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(up.status >= 500 ? 503 : 200).end('ok');
      return;
    }
    up.hits++;
    up.lastHeaders = req.headers;
    const body = JSON.stringify({ cluster, version, port: up.port });
    req.resume();
    const answer = (): void => void res.writeHead(up.status, { 'content-type': 'application/json', 'set-cookie': 'app=1' }).end(body);
    req.on('end', () => (up.delayMs > 0 ? setTimeout(answer, up.delayMs) : answer()));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (up as { port: number }).port = (server.address() as AddressInfo).port;
  return up;
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

const agents = new Map<string, Agent>();
function agentFor(localAddress: string | undefined): Agent {
  const key = localAddress ?? '';
  let a = agents.get(key);
  if (!a) agents.set(key, (a = new Agent({ keepAlive: true, maxSockets: 64 })));
  return a;
}

/** Closes the shared client agents (call in afterAll). */
export function closeAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

/** One HTTP request through the router. Never rejects on an HTTP status; rejects on a socket error. */
export function get(
  port: number,
  path = '/',
  opts: { headers?: Record<string, string>; method?: string; body?: string; localAddress?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { host: 'shop.example', ...opts.headers },
        agent: agentFor(opts.localAddress),
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls until `fn` is true; throws after `ms` (a safety net, not a timing assertion). */
export async function until(fn: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A clock whose time moves only when the test says so; timers run in due order on `advance`. */
export class FakeClock {
  #now = 1_000_000;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Moves time forward, running every timer that falls due (including ones they set). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers)
        if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = end;
  }

  get pending(): number {
    return this.#timers.size;
  }
}

/** Runs `total` requests with `concurrency` in flight; `onReply` sees each in completion order. */
export async function load(
  total: number,
  concurrency: number,
  send: (i: number) => Promise<Reply>,
  onReply: (r: Reply | Error, i: number, done: number) => void | Promise<void>,
): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      let r: Reply | Error;
      try {
        r = await send(i);
      } catch (err) {
        r = err as Error;
      }
      done++;
      await onReply(r, i, done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
}
