/**
 * A control plane for tests: the shop fleet's store (rev1 running, a rollout of rev2 by alice waiting
 * for the europe wave's approval), a fake fleet behind a local link, one API token per role, and the
 * server on 127.0.0.1 with fast polling.
 */
import { createRollout, RolloutEngine, takeOver } from '../../src/rollout/engine.js';
import { holderFor } from '../../src/rollout/lock.js';
import { rolloutSpecFromPlan } from '../../src/rollout/rollout-spec.js';
import { ROLES, type Role } from '../../src/server/auth/roles.js';
import { newApiToken } from '../../src/server/auth/tokens.js';
import { localLink } from '../../src/server/fleet-link.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js';
import type { Store } from '../../src/store/store.js';
import { fakeClock, FakeDriver, FakeTraffic, ScriptedAnalysis, seed, world, type World } from './rollout-kit.js';

export const ROLLOUT = 'ro-server';

/** The name each role's token carries (its identity in the audit log). */
export const NAMES: Record<Role, string> = { viewer: 'vera', deployer: 'dev', approver: 'bob', admin: 'root' };

export interface ServerWorld {
  readonly w: World;
  readonly store: Store;
  readonly driver: FakeDriver;
  readonly drained: string[];
  readonly server: RunningServer;
  readonly url: string;
  readonly tokens: Record<Role, string>;
  /** A token of role approver named `alice`: the author of the rollout. */
  readonly authorToken: string;
  close(): Promise<void>;
}

/** Builds the world and starts the server. */
export async function serverWorld(opts: Partial<ServerOptions> = {}, open?: () => Promise<Store>): Promise<ServerWorld> {
  const w = await world((f) => {
    f.flags = { 'new-checkout': { default: false, regions: { 'eu-west': { enabled: true, percent: 20 } } } };
    const web = f.routing?.['web'];
    if (web) web.clientCountryHeader = 'x-client-country';
  }, open);
  const spec = rolloutSpecFromPlan(w.plan, w.fleet, ['web', 'api'], ['alice', 'planner'], { healthyChecks: 1 });
  const driver = new FakeDriver();
  await seed(driver, w.rev1);
  const clock = fakeClock();
  const engine = new RolloutEngine(
    { store: w.store, driver, traffic: new FakeTraffic(), analysis: new ScriptedAnalysis(), clock },
    { pollMs: 10 },
  );
  const holder = holderFor(ROLLOUT, { id: 'alice' });
  await createRollout(w.store, spec, holder, { now: clock.now() });
  await takeOver(w.store, ROLLOUT, holder, { now: clock.now() });
  const r = await engine.drive(ROLLOUT, holder);
  if (r.outcome !== 'awaiting-approval') throw new Error(`the rollout should wait for approval, not ${r.outcome}`);

  const tokens = {} as Record<Role, string>;
  for (const role of ROLES) {
    const t = newApiToken(NAMES[role], role, { id: 'setup' });
    await w.store.createApiToken(t.record, { id: 'setup' });
    tokens[role] = t.token;
  }
  const author = newApiToken('alice', 'approver', { id: 'setup' });
  await w.store.createApiToken(author.record, { id: 'setup' });

  const drained: string[] = [];
  const router = {
    setDrained: (names: string | readonly string[], on = true) => {
      for (const n of typeof names === 'string' ? [names] : names) {
        const i = drained.indexOf(n);
        if (on && i < 0) drained.push(n);
        if (!on && i >= 0) drained.splice(i, 1);
      }
    },
    flush: () => 1,
    metricsText: () =>
      Promise.resolve(
        [
          '# TYPE meridian_router_requests_total counter',
          'meridian_router_requests_total{service="web",client_region="eu-west",cluster="eu-west-1",version="1.0.0",code="2xx",reason="primary"} 10',
        ].join('\n'),
      ),
  };
  const server = await startServer({
    store: w.store,
    link: localLink(driver, router),
    written: w.rev1,
    storePollMs: 30,
    fleetPollMs: 100,
    heartbeatMs: 200,
    ...opts,
  });
  return {
    w,
    store: w.store,
    driver,
    drained,
    server,
    url: server.url,
    tokens,
    authorToken: author.token,
    close: async () => {
      await server.close();
      await w.store.close();
    },
  };
}

export interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Headers;
}

/** One API call. */
export async function api(
  base: string,
  method: string,
  path: string,
  opts: { token?: string | undefined; body?: unknown; raw?: string } = {},
): Promise<Answer> {
  const res = await fetch(new URL(path.replace(/^\//, ''), base), {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined || opts.raw !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(opts.raw !== undefined ? { body: opts.raw } : opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text) as unknown;
  return { status: res.status, body, headers: res.headers };
}

/** The error code of an error answer. */
export function codeOf(a: Answer): string | undefined {
  return (a.body as { error?: { code?: string } }).error?.code;
}

/** Waits until `fn` holds (polling), or fails naming `what`. */
export async function until(fn: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One server-sent event as a client sees it. */
export interface SseEvent {
  readonly id: string | null;
  readonly event: string;
  readonly data: unknown;
}

/** An event stream read into a list, with a way to wait for an event and to stop. */
export interface SseReader {
  readonly status: number;
  readonly events: SseEvent[];
  readonly comments: string[];
  next(pred: (e: SseEvent) => boolean, what: string): Promise<SseEvent>;
  close(): void;
}

/** Opens `path` as an event stream. */
export async function sse(base: string, path: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const ctl = new AbortController();
  const res = await fetch(new URL(path.replace(/^\//, ''), base), { headers, signal: ctl.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let id: string | null = null;
            let event = 'message';
            const data: string[] = [];
            for (const line of frame.split('\n')) {
              if (line.startsWith(':')) comments.push(line.slice(1).trim());
              else if (line.startsWith('id: ')) id = line.slice(4);
              else if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data.push(line.slice(6));
            }
            if (data.length > 0) events.push({ id, event, data: JSON.parse(data.join('\n')) as unknown });
          }
        }
      } catch {
        // aborted
      }
    })();
  }
  return {
    status: res.status,
    events,
    comments,
    next: async (pred, what) => {
      let found: SseEvent | undefined;
      await until(() => (found = events.find(pred)) !== undefined, what);
      return found as SseEvent;
    },
    close: () => ctl.abort(),
  };
}
