/**
 * HAProxy as the local fleet's data plane (`meridian up --data-plane haproxy`): HAProxy 2.6 runs in
 * front of the replicas instead of the Node router, configured by the HAProxy exporter (src/export)
 * from the replicas' live endpoints. It offers the router's control surface (control-api.ts) so a
 * rollout drives it unchanged: canary weights and drains go through HAProxy's runtime API without a
 * reload; a change of the servers themselves (a replica started, replaced or gone, a new revision) is a
 * new export and a seamless reload of HAProxy's master (SIGUSR2), which carries the current weights in
 * the configuration and the drains through the runtime API; so is each step of a restore ramp (the rows
 * of a ramping place choose their levels by the routing table's fixed shares). The judge's counters come
 * from HAProxy's own Prometheus exporter, per server, summed by version. See docs/export.md.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MeridianError } from '../errors.js';
import { clusterAddresses, exportInput, writeExport } from '../export/index.js';
import { safeName } from '../export/addresses.js';
import { haproxyExporter, type HaproxyServer } from '../export/haproxy.js';
import { haproxyCommand, setCanaryWeight, setServerState } from '../export/haproxy-runtime.js';
import type { Revision } from '../render/render.js';
import { haproxyCounters } from '../rollout/analysis/haproxy-source.js';
import type { CanaryWeight } from '../routing/state.js';
import type { Endpoint, Target, TargetEvent } from '../targets/target.js';
import { ENDPOINT_GONE_EVENTS } from './endpoints.js';

const run = promisify(execFile);

export interface HaproxyPlaneOptions {
  readonly revision: Revision;
  /** The local driver: its replicas' endpoints are HAProxy's servers; its events say when they change. */
  readonly target: Pick<Target, 'endpoints' | 'subscribe'>;
  /** Where the configuration, maps and runtime socket go (created). */
  readonly dir: string;
  /** The port HAProxy serves clients on, on 127.0.0.1. */
  readonly port: number;
  /** The port of HAProxy's Prometheus exporter, on 127.0.0.1. */
  readonly metricsPort: number;
  /** The HAProxy binary (default `haproxy` on the PATH). */
  readonly haproxy?: string;
  readonly log?: (level: 'info' | 'warn', msg: string) => void;
}

/**
 * Active checks of local replicas, on loopback: a replica answers its health check in a millisecond, so a
 * check that has no answer after 300 ms counts as failed, and a server going down is checked again 200 ms
 * later: a replica that hangs is out in 0.8–1.3 s (a check every 500 ms; two failed in a row), one that
 * answers again is back after one passed check.
 */
const LOCAL_CHECKS = { checkIntervalMs: 500, checkTimeoutMs: 300, fastInterMs: 200, fall: 2, rise: 1 } as const;

/** The revision as a data plane in front of local replicas sees it: no declared ingress, the replicas' endpoints instead. */
function withoutIngress(rev: Revision): Revision {
  const clusters = Object.fromEntries(
    Object.entries(rev.clusters).map(([name, c]) => {
      const { ingress: _ingress, ...rest } = c;
      return [name, rest];
    }),
  );
  return { ...rev, clusters };
}

/**
 * GETs a URL's body on a connection of its own: a kept-alive connection may still lead to a worker that a
 * reload replaced (`option idle-close-on-response` keeps serving it), whose counters are not the current
 * worker's.
 */
function freshGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on('error', reject);
  });
}

/** How long a server whose replica died waits in the configuration (in `maint`) for it to come back on its address. */
const HOLD_MS = 30_000;

/** A replica's address as the plane holds it: cluster, service, track and port (the same in {@link #apply}'s addresses). */
const addressKey = (e: Pick<Endpoint, 'cluster' | 'service' | 'track' | 'port'>): string =>
  `${e.cluster}\u0000${e.service}\u0000${e.track}\u0000${e.port}`;

/** The name the exporter gives an address's server (src/export/haproxy.ts): the cluster, then the address's own name (src/export/addresses.ts). */
const serverName = (e: Endpoint): string => safeName(`${e.cluster}.${safeName(`${e.track}-${e.port}`)}`);

const escapeLabel = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/** HAProxy as the fleet's data plane; start it with {@link HaproxyPlane.start}. */
export class HaproxyPlane {
  readonly #o: HaproxyPlaneOptions;
  #revision: Revision;
  readonly #canary = new Map<string, Map<string, CanaryWeight>>();
  readonly #drained = new Set<string>();
  /** The restore ramps in force (place → percent under 100, keys in order): exported as the levels' fixed shares. */
  #ramp: Readonly<Record<string, number>> = {};
  #servers: HaproxyServer[] = [];
  /** The servers of each replica in the last export, by `cluster/replica`: to take them out before the next one. */
  #exported = new Map<string, Endpoint[]>();
  /**
   * Servers whose replica died (exited, restarting, unhealthy), kept in the configuration in `maint` for
   * up to {@link HOLD_MS} until a replica is ready on the same address again: a crash and its restart take
   * no reload (a reload closes clients' idle keep-alive connections). By address key.
   */
  readonly #held = new Map<string, { readonly endpoint: Endpoint; readonly until: number }>();
  /** Servers put in `maint` by {@link #outNow} since the last reload, as `backend/server`. */
  readonly #out = new Set<string>();
  /** The runtime commands {@link #outNow} sent, answered or not. */
  #outs: Promise<void> = Promise.resolve();
  #topology = '';
  #master: ChildProcess | null = null;
  #output = '';
  #worker = '';
  #reloads = 0;
  /** Counters of workers replaced by reloads (a new worker counts from zero), by `service/cluster/version/code`. */
  readonly #carried = new Map<string, number>();
  /** Every change runs after the one before it. */
  #queue: Promise<unknown> = Promise.resolve();
  #unsubscribe: () => void = () => {};
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(o: HaproxyPlaneOptions) {
    this.#o = o;
    this.#revision = withoutIngress(o.revision);
  }

  /** Exports, checks and starts HAProxy; resolves when it serves on its port. */
  static async start(o: HaproxyPlaneOptions): Promise<HaproxyPlane> {
    const p = new HaproxyPlane(o);
    mkdirSync(o.dir, { recursive: true });
    await p.#apply(true);
    // the servers are the replicas that passed their readiness check: one that is gone, going or not
    // ready yet is not a server (a new HAProxy worker takes every server it is given as up)
    p.#unsubscribe = o.target.subscribe((e) => p.#onEvent(e));
    return p;
  }

  /** `http://127.0.0.1:PORT/`: where clients send requests. */
  get url(): string {
    return `http://127.0.0.1:${this.#o.port}/`;
  }

  /** HAProxy's Prometheus exporter. */
  get metricsUrl(): string {
    return `http://127.0.0.1:${this.#o.metricsPort}/metrics`;
  }

  /** The master process's pid (null once stopped). */
  get pid(): number | null {
    return this.#master?.pid ?? null;
  }

  /** The runtime API socket. */
  get socket(): string {
    return join(this.#o.dir, 'admin.sock');
  }

  /** How many times HAProxy was reloaded since it started (server set or revision changed; never for a weight or a drain). */
  get reloads(): number {
    return this.#reloads;
  }

  /** Sets (or clears, with null) a service's canary share on a cluster: live through the runtime API when its canary servers are in the configuration, else by a new export and reload. */
  setCanary(service: string, cluster: string, canary: CanaryWeight | null): Promise<void> {
    return this.#serial(async () => {
      const byCluster = this.#canary.get(service) ?? new Map<string, CanaryWeight>();
      if (canary === null) byCluster.delete(cluster);
      else byCluster.set(cluster, canary);
      this.#canary.set(service, byCluster);
      const hasCanary = this.#servers.some((s) => s.service === service && s.cluster === cluster && s.track === 'canary');
      if (hasCanary) await setCanaryWeight(this.socket, this.#servers, service, cluster, canary?.weight ?? 0);
      else await this.#apply(false);
    });
  }

  /** Drains (or undrains) clusters or whole regions: their servers go to `maint` through the runtime API (no new request; they leave their level's health). */
  setDrained(names: string | readonly string[], drained = true): Promise<void> {
    const list = typeof names === 'string' ? [names] : names;
    return this.#serial(async () => {
      for (const n of list) {
        if (drained) this.#drained.add(n);
        else this.#drained.delete(n);
      }
      await this.#applyDrains(list);
    });
  }

  /**
   * Replaces the restore ramps (place → percent of its full traffic; unlisted places, and those at 100,
   * take all of it): a new export, whose rows with a ramping place choose their levels by the routing
   * table's fixed shares, and a reload when it changed anything. No ramp: the configuration without one.
   */
  setRamp(ramp: Readonly<Record<string, number>>): Promise<void> {
    const next = Object.fromEntries(
      Object.entries(ramp)
        .filter(([, pct]) => pct < 100)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    return this.#serial(async () => {
      this.#ramp = next;
      await this.#apply(false);
    });
  }

  /** Routes by this revision from now on: a new export and a reload. */
  setRevision(revision: Revision): Promise<void> {
    return this.#serial(async () => {
      this.#revision = withoutIngress(revision);
      await this.#apply(true);
    });
  }

  /** Nothing to flush: HAProxy applies every change to the next request. */
  flush(): number {
    return 0;
  }

  /** Waits for every change asked so far (and every replica taken out at once has been). */
  settled(): Promise<void> {
    return Promise.all([this.#queue, this.#outs]).then(
      () => undefined,
      () => undefined,
    );
  }

  /** HAProxy's per-server responses as the router's request counters (`meridian_router_requests_total` by service, cluster, version, code), for the judge. */
  async metricsText(): Promise<string> {
    const counts = await this.#counts();
    const lines = ['# TYPE meridian_router_requests_total counter'];
    for (const [key, n] of [...counts.entries()].sort()) {
      const [service = '', cluster = '', version = '', code = ''] = key.split('\u0000');
      lines.push(
        `meridian_router_requests_total{service="${escapeLabel(service)}",cluster="${escapeLabel(cluster)}",version="${escapeLabel(version)}",code="${code}"} ${n}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }

  stats(): unknown {
    return {
      dataPlane: 'haproxy',
      pid: this.pid,
      worker: this.#worker,
      reloads: this.#reloads,
      servers: this.#servers.length,
      drained: [...this.#drained].sort(),
      ramp: this.#ramp,
      canary: Object.fromEntries([...this.#canary].map(([s, m]) => [s, Object.fromEntries(m)])),
    };
  }

  /** Stops HAProxy (its master and workers) and waits for it to exit. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    if (this.#timer) clearTimeout(this.#timer);
    await this.settled();
    const m = this.#master;
    this.#master = null;
    if (!m || m.exitCode !== null || m.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => m.once('exit', () => resolve()));
    m.kill('SIGTERM');
    const timer = setTimeout(() => m.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** A replica came or went: re-export shortly (events come in bursts), reload only when the servers changed. */
  #onEvent(e: TargetEvent): void {
    if (ENDPOINT_GONE_EVENTS.has(e.type) && e.replica !== undefined) {
      // a planned stop (draining, stopped) leaves with the next export, in the same reload that brings its
      // replacement in (the driver waits its drain delay before SIGTERM); a death is out at once, and
      // held for the replica's return
      const planned = e.type === 'replica-draining' || e.type === 'replica-stopped';
      for (const ep of this.#exported.get(`${e.cluster}/${e.replica}`) ?? []) {
        if (planned) {
          this.#held.delete(addressKey(ep));
          continue;
        }
        this.#held.set(addressKey(ep), { endpoint: ep, until: Date.now() + HOLD_MS });
        setTimeout(() => this.#soon(), HOLD_MS + 50).unref(); // let it go if it never comes back
        this.#outNow(ep);
      }
    }
    if (e.type === 'track-removed')
      for (const [k, h] of this.#held)
        if (h.endpoint.cluster === e.cluster && h.endpoint.service === e.service && h.endpoint.track === e.track) this.#held.delete(k);
    // a draining replica stays a server until it is stopped (the driver's drain delay): as the plane did before
    if (e.type === 'replica-ready' || e.type === 'track-removed' || (ENDPOINT_GONE_EVENTS.has(e.type) && e.type !== 'replica-draining'))
      this.#soon();
  }

  #soon(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#serial(() => this.#apply(false)).catch((err: unknown) =>
        this.#o.log?.('warn', `haproxy: could not follow the replicas: ${err instanceof Error ? err.message : String(err)}`),
      );
    }, 200);
  }

  /** Exports with the current replicas, canary weights and revision; starts or reloads HAProxy when the configuration changed (or `force`). */
  async #apply(force: boolean): Promise<void> {
    if (this.#closed) return;
    const rev = this.#revision;
    const now = Date.now();
    for (const [k, h] of this.#held) if (h.until <= now) this.#held.delete(k);
    const exported = new Map<string, Endpoint[]>();
    const addresses = clusterAddresses(rev, (c) => {
      const listed = this.#o.target.endpoints(c);
      // a held address is back once a replica on it is ready; restarted but not ready yet, it stays held (in maint)
      for (const e of listed) if (e.healthy) this.#held.delete(addressKey(e));
      const live = listed.filter((e) => !this.#held.has(addressKey(e)));
      for (const e of live) {
        const key = `${c}/${e.replica}`;
        exported.set(key, [...(exported.get(key) ?? []), e]);
      }
      const held = [...this.#held.values()].map((h) => h.endpoint).filter((e) => e.cluster === c);
      return [...live, ...held];
    });
    // a new worker starts every server in service: drained clusters and held replicas are written `disabled`,
    // so that none of them takes a request between the reload and the runtime commands that follow it
    const outAddresses = Object.fromEntries(
      Object.entries(addresses).map(([c, services]) => [
        c,
        Object.fromEntries(
          Object.entries(services).map(([svc, list]) => [
            svc,
            list.map((x) =>
              this.#isDrained(c) || this.#held.has(addressKey({ cluster: c, service: svc, track: x.track ?? 'stable', port: x.port }))
                ? { ...x, disabled: true }
                : x,
            ),
          ]),
        ),
      ]),
    );
    const heldServers = new Set([...this.#held.values()].map((h) => serverName(h.endpoint)));
    const canary = Object.fromEntries([...this.#canary].map(([s, m]) => [s, Object.fromEntries(m)]));
    const input = exportInput(
      rev,
      outAddresses,
      {
        listen: `127.0.0.1:${this.#o.port}`,
        metricsListen: `127.0.0.1:${this.#o.metricsPort}`,
        runtimeApi: this.socket,
        ...LOCAL_CHECKS,
      },
      { canary, ramp: this.#ramp },
    );
    const result = haproxyExporter.export(input);
    // the servers and routing, not their weights: a weight set live is carried by the next export, not a reason to reload
    const topology = `${rev.id}\n${JSON.stringify(addresses)}\n${JSON.stringify(this.#ramp)}`;
    if (!force && topology === this.#topology && this.#master) {
      // the same servers as before (a replica that went came back as it was): out no more, unless drained
      for (const s of this.#servers)
        if (!heldServers.has(s.server) && this.#out.delete(`${s.backend}/${s.server}`) && !this.#isDrained(s.cluster))
          await setServerState(this.socket, s.backend, s.server, 'ready');
      this.#exported = exported;
      return;
    }
    writeExport(this.#o.dir, 'haproxy', result);
    const bin = this.#o.haproxy ?? 'haproxy';
    const config = join(this.#o.dir, 'haproxy.cfg');
    try {
      await run(bin, ['-c', '-q', '-f', config]);
    } catch (err) {
      throw new MeridianError(
        'MERIDIAN_E_HAPROXY_START',
        `HAProxy refuses the exported configuration ${config}: ${(err as Error).message.slice(0, 600)}`,
        {
          cause: err,
          hint: 'run `haproxy -c -f` on it to see why; is HAProxy 2.6 or later installed (`apt-get install haproxy`)?',
        },
      );
    }
    const index = (JSON.parse(result.files['servers.json'] ?? '{"servers":[]}') as { servers: HaproxyServer[] }).servers;
    if (!this.#master) await this.#spawn(bin, config);
    else await this.#reload();
    this.#out.clear(); // a new worker starts with every server it is given in service
    this.#servers = index;
    this.#exported = exported;
    this.#topology = topology;
    for (const h of this.#held.values()) this.#outNow(h.endpoint);
    await this.#applyDrains([...this.#drained]);
  }

  async #spawn(bin: string, config: string): Promise<void> {
    // master-worker in the foreground: the master is our child; SIGUSR2 reloads it seamlessly (it keeps the listeners)
    const child = spawn(bin, ['-W', '-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (c: Buffer): void => void (this.#output = (this.#output + c.toString()).slice(-8000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', (code, signal) => {
      if (this.#master === child) {
        this.#master = null;
        this.#o.log?.('warn', `haproxy exited (${signal ?? `code ${code}`}): ${this.#output.slice(-400)}`);
      }
    });
    this.#master = child;
    this.#worker = await this.#waitWorker(null, () => child.exitCode !== null || child.signalCode !== null);
  }

  async #reload(): Promise<void> {
    const m = this.#master;
    if (!m?.pid) return;
    // the new worker counts from zero: keep what the old one counted
    for (const [k, n] of await this.#workerCounts().catch(() => new Map<string, number>()))
      this.#carried.set(k, (this.#carried.get(k) ?? 0) + n);
    const old = this.#worker;
    process.kill(m.pid, 'SIGUSR2');
    this.#worker = await this.#waitWorker(old, () => this.#master !== m);
    this.#reloads++;
  }

  /** Waits until the runtime API answers from a worker other than `old`; answers its pid. */
  async #waitWorker(old: string | null, gone: () => boolean): Promise<string> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const pid = await haproxyCommand(this.socket, 'show info', 1000)
        .then((t) => /^Pid: (\d+)/m.exec(t)?.[1] ?? '')
        .catch(() => '');
      if (pid !== '' && pid !== old) return pid;
      if (gone()) throw new MeridianError('MERIDIAN_E_HAPROXY_START', `HAProxy exited: ${this.#output.slice(-600)}`);
      if (Date.now() > deadline)
        throw new MeridianError(
          'MERIDIAN_E_HAPROXY_START',
          `HAProxy did not answer on its runtime API ${this.socket} within 30 s: ${this.#output.slice(-600)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * A replica is gone or going (exited, stopping, unhealthy): its servers go to `maint` through the runtime
   * API at once, without waiting for the next export and reload (nor for HAProxy's checks to fail). A
   * level left without servers then passes its clients to the next one, as the router does.
   */
  #outNow(ep: Endpoint): void {
    if (this.#closed || !this.#master) return;
    const server = serverName(ep);
    for (const s of this.#servers)
      if (s.cluster === ep.cluster && s.service === ep.service && s.server === server) {
        this.#out.add(`${s.backend}/${s.server}`);
        const sent = setServerState(this.socket, s.backend, s.server, 'maint').catch(() => undefined); // a new worker is told again
        this.#outs = Promise.all([this.#outs, sent]).then(() => undefined);
      }
  }

  /** Whether a cluster is drained, by name or by its region's. */
  #isDrained(cluster: string): boolean {
    return this.#drained.has(cluster) || this.#drained.has(this.#revision.clusters[cluster]?.region ?? '');
  }

  /** The drains of `names` as they stand now, sent to every server of theirs. */
  async #applyDrains(names: readonly string[]): Promise<void> {
    const regionOf = (cluster: string): string | undefined => this.#revision.clusters[cluster]?.region;
    for (const s of this.#servers) {
      const touched = names.includes(s.cluster) || names.includes(regionOf(s.cluster) ?? '');
      if (!touched) continue;
      // undrained, a server whose replica is dead and held stays out
      const out = this.#isDrained(s.cluster) || this.#out.has(`${s.backend}/${s.server}`);
      await setServerState(this.socket, s.backend, s.server, out ? 'maint' : 'ready');
    }
  }

  /** The current worker's responses by service, cluster, version and code class. */
  async #workerCounts(): Promise<Map<string, number>> {
    const text = await freshGet(this.metricsUrl);
    const out = new Map<string, number>();
    for (const s of haproxyCounters(text, new Date().toISOString(), this.#servers).series) {
      const base = `${s.service}\u0000${s.cluster}\u0000${s.version}\u0000`;
      out.set(`${base}5xx`, s.errors);
      out.set(`${base}other`, s.requests - s.errors);
    }
    return out;
  }

  async #counts(): Promise<Map<string, number>> {
    const out = new Map(this.#carried);
    for (const [k, n] of await this.#workerCounts()) out.set(k, (out.get(k) ?? 0) + n);
    return out;
  }
}
