/**
 * The local fleet's control API: what `meridian up` offers other processes (a rollout) over HTTP on
 * loopback — the driver's operations (apply, remove, status, endpoints, events) and the router's traffic
 * control (canary weights, revision, drains) and counters. Every request carries the random bearer token
 * written into .meridian/up.json.
 * The same shape a Kubernetes driver has: the rollout talks to clusters over the network.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorSpec } from '../../error-codes.js';
import { MeridianError } from '../../errors.js';
import type { Revision } from '../../render/render.js';
import type { ApplyRequest, RemoveRequest, Target, TargetEvent } from '../target.js';
import { TRACKS } from '../target.js';

/** The router operations the API exposes. A data plane may answer them with a promise (HAProxy's runtime API): the API awaits it before it answers. */
export interface ControlRouter {
  setCanary(service: string, cluster: string, canary: { weight: number; version: string } | null): void;
  flush(force?: boolean): number;
  metricsText(): Promise<string>;
  stats(): unknown;
  /** Routes with this revision's policies and clusters from now on (a rollout's promotion or rollback). */
  setRevision?(revision: Revision): void;
  /** Drains (or undrains) clusters or whole regions, by name: they take no new traffic. */
  setDrained?(names: readonly string[], drained: boolean): void;
  /** The restore ramps in force, all of them: place → percent of its full traffic (docs/recovery.md). */
  setRamp?(ramp: Readonly<Record<string, number>>): void;
}

/** A drain told to the router through this API, as `GET /v1/router/drained` lists it. */
export interface ControlDrain {
  readonly kind: 'cluster' | 'region';
  readonly name: string;
  readonly reason: string | null;
}

export interface ControlApiOptions {
  readonly target: Pick<Target, 'apply' | 'remove' | 'status' | 'endpoints' | 'subscribe'>;
  readonly router?: ControlRouter | undefined;
  readonly token: string;
  /** Default 0: a free port. Always on 127.0.0.1. */
  readonly port?: number;
  /**
   * Serves the OFREP flag evaluation API under `/ofrep/` (src/flags/ofrep-handler.ts), without the bearer
   * token: evaluations are read-only and the API listens on loopback only (services and routers read it).
   */
  readonly ofrep?: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

export interface ControlApi {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY = 8 * 1024 * 1024;

/** Starts the control API on loopback. */
export async function startControlApi(opts: ControlApiOptions): Promise<ControlApi> {
  const expected = Buffer.from(`Bearer ${opts.token}`);
  const streams = new Set<ServerResponse>();
  /** The drains told through this API (name → drain): what a control plane compares its own with. */
  const drains = new Map<string, ControlDrain>();
  /** The restore ramps told through this API (place → percent), keys in order. */
  let ramps: Record<string, number> = {};
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => fail(res, err));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (opts.ofrep?.(req, res)) return;
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new MeridianError('MERIDIAN_E_CONTROL_AUTH', 'a valid bearer token is required (see .meridian/up.json)');
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    const cluster = url.searchParams.get('cluster') ?? '';
    switch (route) {
      case 'GET /v1/status':
        return send(res, 200, await opts.target.status(need(cluster, 'cluster')));
      case 'GET /v1/endpoints':
        return send(res, 200, opts.target.endpoints(need(cluster, 'cluster')));
      case 'POST /v1/apply': {
        const body = await json(req);
        await opts.target.apply(applyRequest(body));
        return send(res, 200, { ok: true });
      }
      case 'POST /v1/remove': {
        await opts.target.remove(removeRequest(await json(req)));
        return send(res, 200, { ok: true });
      }
      case 'POST /v1/traffic/canary': {
        const router = needRouter();
        const b = obj(await json(req));
        const weight = b['weight'];
        if (typeof weight !== 'number' || weight < 0 || weight > 100) throw bad('weight must be a number from 0 to 100');
        await router.setCanary(str(b, 'service'), str(b, 'cluster'), { weight, version: str(b, 'version') });
        router.flush();
        return send(res, 200, { ok: true });
      }
      case 'POST /v1/traffic/clear': {
        const router = needRouter();
        const b = obj(await json(req));
        await router.setCanary(str(b, 'service'), str(b, 'cluster'), null);
        router.flush();
        return send(res, 200, { ok: true });
      }
      case 'GET /v1/router/metrics': {
        const text = await needRouter().metricsText();
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(text);
        return;
      }
      case 'POST /v1/router/revision': {
        const router = needRouter();
        if (!router.setRevision) throw new MeridianError('MERIDIAN_E_CONTROL_NO_ROUTER', 'this router cannot change its revision');
        await router.setRevision(revisionBody(await json(req)));
        return send(res, 200, { ok: true });
      }
      case 'POST /v1/router/drain': {
        const router = needRouter();
        if (!router.setDrained) throw new MeridianError('MERIDIAN_E_CONTROL_NO_ROUTER', 'this router cannot drain');
        const order = drainBody(await json(req));
        await router.setDrained([order.name], order.drained);
        router.flush(true); // in force on return
        if (order.drained) drains.set(order.name, { kind: order.kind, name: order.name, reason: order.reason });
        else drains.delete(order.name);
        return send(res, 200, { ok: true, drained: drainList() });
      }
      case 'POST /v1/router/ramp': {
        const router = needRouter();
        if (!router.setRamp) throw new MeridianError('MERIDIAN_E_CONTROL_NO_ROUTER', 'this router cannot ramp');
        ramps = rampBody(await json(req));
        await router.setRamp(ramps);
        router.flush(true); // in force on return
        return send(res, 200, { ok: true, ramp: ramps });
      }
      case 'GET /v1/router/ramp':
        needRouter();
        return send(res, 200, { ramp: ramps });
      case 'GET /v1/router/drained':
        needRouter();
        return send(res, 200, { drained: drainList() });
      case 'GET /v1/router/stats':
        return send(res, 200, needRouter().stats());
      case 'GET /v1/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        res.write(': meridian target events\n\n');
        streams.add(res);
        const off = opts.target.subscribe((e: TargetEvent) => void res.write(`data: ${JSON.stringify(e)}\n\n`));
        res.on('close', () => {
          off();
          streams.delete(res);
        });
        return;
      }
      default:
        throw new MeridianError('MERIDIAN_E_CONTROL_NOT_FOUND', `no route ${route}`);
    }
  }

  function drainList(): ControlDrain[] {
    return [...drains.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  function needRouter(): ControlRouter {
    if (!opts.router) throw new MeridianError('MERIDIAN_E_CONTROL_NO_ROUTER', 'this control API has no router');
    return opts.router;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function fail(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof MeridianError && err.user) {
    send(res, errorSpec(err.code)?.status ?? 500, { error: err.code, message: err.message, hint: err.hint ?? null });
    return;
  }
  const message = err instanceof MeridianError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
  send(res, 500, { error: 'MERIDIAN_E_CONTROL_INTERNAL', message });
}

function bad(message: string): MeridianError {
  return new MeridianError('MERIDIAN_E_CONTROL_BAD_REQUEST', message);
}

function need(v: string, name: string): string {
  if (!v) throw bad(`the query parameter ${name} is required`);
  return v;
}

function obj(v: unknown): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad('the body must be a JSON object');
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw bad(`${key} must be a non-empty string`);
  return v;
}

function track(o: Record<string, unknown>, required: boolean): 'stable' | 'canary' | undefined {
  const v = o['track'];
  if (v === undefined && !required) return undefined;
  if (!TRACKS.includes(v as 'stable')) throw bad(`track must be one of ${TRACKS.join(', ')}`);
  return v as 'stable' | 'canary';
}

function services(o: Record<string, unknown>): string[] | undefined {
  const v = o['services'];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw bad('services must be a list of names');
  return v as string[];
}

function applyRequest(body: unknown): ApplyRequest {
  const b = obj(body);
  const state = obj(b['state']);
  if (!state['services'] || typeof state['services'] !== 'object') throw bad('state must be a rendered cluster (with services)');
  const s = services(b);
  return {
    cluster: str(b, 'cluster'),
    revisionId: str(b, 'revisionId'),
    state: state as unknown as ApplyRequest['state'],
    track: track(b, true) ?? 'stable',
    ...(s ? { services: s } : {}),
  };
}

/** `{revision}`: a rendered revision (its id, clusters and routing), as the store keeps it. */
function revisionBody(body: unknown): Revision {
  const r = obj(obj(body)['revision']);
  str(r, 'id');
  str(r, 'fleet');
  for (const key of ['regions', 'clusters', 'routing', 'flags'] as const) {
    const v = r[key];
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(`revision.${key} must be an object (a rendered revision)`);
  }
  return r as unknown as Revision;
}

/** `{ramp: {place: percent}}`: every restore ramp in force, percentages 0..100. */
function rampBody(body: unknown): Record<string, number> {
  const r = obj(body)['ramp'];
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw bad('ramp must be an object of place → percent');
  const out: [string, number][] = [];
  for (const [k, v] of Object.entries(r as Record<string, unknown>)) {
    if (typeof v !== 'number' || !(v >= 0 && v <= 100)) throw bad(`ramp.${k} must be a percentage from 0 to 100`);
    out.push([k, v]);
  }
  return Object.fromEntries(out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** `{kind, name, drained, reason?}`: a drain (or undrain) of a cluster or a region. */
function drainBody(body: unknown): { kind: 'cluster' | 'region'; name: string; drained: boolean; reason: string | null } {
  const b = obj(body);
  const kind = b['kind'];
  if (kind !== 'cluster' && kind !== 'region') throw bad('kind must be cluster or region');
  const drained = b['drained'];
  if (typeof drained !== 'boolean') throw bad('drained must be true or false');
  const reason = b['reason'];
  if (reason !== undefined && reason !== null && typeof reason !== 'string') throw bad('reason must be a string');
  return { kind, name: str(b, 'name'), drained, reason: typeof reason === 'string' ? reason : null };
}

function removeRequest(body: unknown): RemoveRequest {
  const b = obj(body);
  const t = track(b, false);
  const s = services(b);
  return { cluster: str(b, 'cluster'), ...(t ? { track: t } : {}), ...(s ? { services: s } : {}) };
}

async function json(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw bad('the body is too large');
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw bad('the body is not JSON');
  }
}
