/**
 * OpenTelemetry traces, exported over OTLP/HTTP to a real receiver on loopback (a node:http server that
 * decodes the JSON body): the router's span per request continues the client's traceparent and is the
 * upstream's parent; rollout spans (rollout → wave → step, rollback) come from a real engine's events,
 * with verdicts as attributes, and a resumed rollout continues the same trace. Off: nothing is created.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Router, StaticEndpoints } from '../src/router/index.js';
import { createRollout, RolloutEngine, takeOver } from '../src/rollout/engine.js';
import { holderFor } from '../src/rollout/lock.js';
import { rolloutSpecFromPlan } from '../src/rollout/rollout-spec.js';
import type { RolloutEventRecord, RolloutRecord, Store } from '../src/store/store.js';
import type { RequestTracer } from '../src/telemetry/request-tracing.js';
import { rolloutTraceId, rolloutTracer } from '../src/rollout/rollout-tracing.js';
import { createTracing, startTracing, tracingConfig, TracingConfigError, type Tracing } from '../src/telemetry/tracing.js';
import {
  EU_US,
  closeAgents,
  get,
  revision,
  startUpstream,
  until,
  type Upstream,
  TRUST_LOOPBACK,
  TRUST_LOOPBACK_FLAGS,
} from './support/router-kit.js';
import { base as fleetBase, FAST, fleet, meridian } from './support/rollout-fleet-kit.js';
import { fakeClock, FakeDriver, FakeTraffic, ScriptedAnalysis, seed, world } from './support/rollout-kit.js';

/** A span as the receiver decoded it. */
interface Got {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  status: { code?: number; message?: string };
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  resource: Record<string, unknown>;
}

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value: AnyValue };

function value(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(value);
  return undefined;
}
const attrs = (list: KeyValue[] | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));

/** An OTLP/HTTP receiver on loopback: POST /v1/traces with a JSON ExportTraceServiceRequest. */
class Receiver {
  readonly spans: Got[] = [];
  readonly requests: { path: string; headers: IncomingHttpHeaders }[] = [];
  readonly #server: Server;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests.push({ path: req.url ?? '', headers: req.headers });
        if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
          res.writeHead(415).end();
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: {
            resource?: { attributes?: KeyValue[] };
            scopeSpans?: {
              spans?: {
                traceId: string;
                spanId: string;
                parentSpanId?: string;
                name: string;
                kind: number;
                startTimeUnixNano: string | number;
                endTimeUnixNano: string | number;
                status?: { code?: number; message?: string };
                attributes?: KeyValue[];
                events?: { name: string; attributes?: KeyValue[] }[];
              }[];
            }[];
          }[];
        };
        for (const rs of body.resourceSpans ?? []) {
          const resource = attrs(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              this.spans.push({
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
                name: s.name,
                kind: s.kind,
                start: BigInt(s.startTimeUnixNano),
                end: BigInt(s.endTimeUnixNano),
                status: s.status ?? {},
                attributes: attrs(s.attributes),
                events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
                resource,
              });
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.#server.close(() => r()));
  }
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
afterAll(() => {
  closeAgents();
  rmSync(fleetBase, { recursive: true, force: true });
});

async function receiver(): Promise<Receiver> {
  const r = await new Receiver().start();
  cleanup.push(() => r.close());
  return r;
}

async function tracingTo(r: Receiver, serviceName: string): Promise<Tracing> {
  const config = tracingConfig({ otlp: r.url, serviceName, env: { OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=shop%20eu' } });
  if (config === null) throw new Error('tracing should be on');
  const t = await createTracing(config, { scheduledDelayMs: 50 });
  cleanup.push(() => t.shutdown());
  return t;
}

describe('tracing configuration', () => {
  it('is off without a flag or an OTLP endpoint, and when disabled', async () => {
    expect(tracingConfig({ serviceName: 's', env: {} })).toBeNull();
    expect(await startTracing({ serviceName: 's', env: {} })).toBeNull();
    expect(
      tracingConfig({ serviceName: 's', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' } }),
    ).toBeNull();
    expect(
      tracingConfig({ serviceName: 's', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' } }),
    ).toBeNull();
  });

  it('follows the standard environment, and the flag wins', () => {
    expect(tracingConfig({ serviceName: 's', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' } })).toMatchObject({
      url: 'http://c:4318/v1/traces',
      serviceName: 's',
      sampleRatio: 1,
    });
    expect(
      tracingConfig({
        serviceName: 's',
        env: {
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://c/custom/path',
          OTEL_SERVICE_NAME: 'edge',
          OTEL_EXPORTER_OTLP_HEADERS: 'a=1, b=x%3Dy',
          OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
          OTEL_TRACES_SAMPLER_ARG: '0.25',
        },
      }),
    ).toEqual({ url: 'https://c/custom/path', headers: { a: '1', b: 'x=y' }, serviceName: 'edge', sampleRatio: 0.25 });
    expect(
      tracingConfig({ serviceName: 's', otlp: 'http://flag:4318', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' } })?.url,
    ).toBe('http://flag:4318/v1/traces');
    expect(tracingConfig({ serviceName: 's', env: { OTEL_TRACES_EXPORTER: 'otlp' } })?.url).toBe('http://localhost:4318/v1/traces');
  });

  it('refuses what it cannot do, saying how to fix it', () => {
    const cases: [Record<string, string>, string | undefined, RegExp][] = [
      [{}, 'not a url', /--otlp is not a URL/],
      [{}, 'grpc://c:4317', /must be an http:\/\/ or https:\/\/ URL/],
      [{ OTEL_TRACES_EXPORTER: 'zipkin' }, undefined, /names an exporter Meridian does not have/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, undefined, /gRPC is not supported/],
      [
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_TRACES_SAMPLER_ARG: '2', OTEL_TRACES_SAMPLER: 'traceidratio' },
        undefined,
        /from 0 to 1/,
      ],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_HEADERS: '=x' }, undefined, /without a name/],
    ];
    for (const [env, otlp, message] of cases) {
      let err: unknown;
      try {
        tracingConfig({ serviceName: 's', env, otlp });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TracingConfigError);
      expect((err as TracingConfigError).message).toMatch(message);
      expect((err as TracingConfigError).code).toBe('MERIDIAN_E_TRACING_CONFIG');
    }
  });
});

describe('tracing off costs nothing', () => {
  /** Source files reachable from `entries` through static, non-type imports, and the packages they import. */
  function staticImports(entries: readonly string[]): { files: Set<string>; packages: Map<string, string> } {
    const files = new Set<string>();
    const packages = new Map<string, string>();
    const todo = [...entries];
    const statement = /^(?:import|export)\s+(?!type\s)[^;]*?\sfrom\s+'([^']+)'/gm;
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (files.has(file)) continue;
      files.add(file);
      for (const m of readFileSync(file, 'utf8').matchAll(statement)) {
        const spec = m[1]!;
        if (!spec.startsWith('.')) {
          packages.set(spec, file);
          continue;
        }
        const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        if (existsSync(target)) todo.push(target);
      }
    }
    return { files, packages };
  }

  it('the CLI, the router and the rollout driver load no OpenTelemetry code until tracing is configured', () => {
    const src = join(import.meta.dirname, '..', 'src');
    // main.ts loads the commands' registry with import(), and the registry the command that runs: all are entries
    const commands = readdirSync(join(src, 'cli', 'commands')).map((f) => join(src, 'cli', 'commands', f));
    const { files, packages } = staticImports([join(src, 'cli', 'main.ts'), ...commands]);
    for (const f of ['router/standalone.ts', 'router/proxy.ts', 'cli/commands/rollout.ts', 'telemetry/tracing.ts'])
      expect(files).toContain(join(src, f));
    expect(files).not.toContain(join(src, 'telemetry', 'otel-tracing.ts')); // loaded by import() when tracing starts
    const otel = [...packages].filter(([p]) => p.startsWith('@opentelemetry/'));
    expect(otel).toEqual([]);
    expect(packages.has('undici')).toBe(true); // the scan sees packages
  });
});

describe('request spans from the router', () => {
  const upstreams: Upstream[] = [];
  afterEach(async () => {
    await Promise.all(upstreams.splice(0).map((u) => u.kill()));
  });

  async function routerWith(tracer: RequestTracer | undefined) {
    const rev = revision({
      ...EU_US,
      services: { web: { version: '2.4.0' } },
      routing: { web: { match: { hosts: ['shop.example'] }, clientCountryHeader: 'x-client-country' } },
    });
    const eu = await startUpstream('eu-west-1', '2.4.0');
    const us = await startUpstream('us-east-1', '2.4.0');
    upstreams.push(eu, us);
    const router = new Router({
      ...TRUST_LOOPBACK,
      revision: rev,
      endpoints: new StaticEndpoints([eu.endpoint(), us.endpoint()]),
      healthChecks: false,
      geoip: null,
      ...(tracer ? { tracer } : {}),
    });
    cleanup.push(() => router.close());
    const { port } = await router.listen(0);
    return { router, port, eu, us };
  }

  it('continue the client’s trace, become the upstream’s parent, and say where the request went', async () => {
    const rec = await receiver();
    const tracing = await tracingTo(rec, 'meridian-router');
    const { port, eu, us } = await routerWith(tracing.requestTracer());
    const T = '4bf92f3577b34da6a3ce929d0e0e4736';
    const P = '00f067aa0ba902b7';

    const r1 = await get(port, '/cart?id=7', {
      headers: { 'x-client-country': 'IE', traceparent: `00-${T}-${P}-01`, tracestate: 'vendor=abc' },
    });
    expect(r1.status).toBe(200);
    const fwd = String(eu.lastHeaders?.traceparent);
    const [, fwdTrace, routerSpan, fwdFlags] = fwd.split('-');
    expect(fwdTrace).toBe(T); // the same trace
    expect(routerSpan).not.toBe(P); // with the router's span as the upstream's parent
    expect(fwdFlags).toBe('01');
    expect(eu.lastHeaders?.tracestate).toBe('vendor=abc');

    const r2 = await get(port, '/', { headers: { 'x-client-country': 'US' } }); // no traceparent: a new trace
    expect(r2.status).toBe(200);
    const [, newTrace, newParent] = String(us.lastHeaders?.traceparent).split('-');

    const T3 = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    await get(port, '/', { headers: { 'x-client-country': 'IE', traceparent: `00-${T3}-${P}-00` } }); // not sampled upstream of us
    expect(String(eu.lastHeaders?.traceparent)).toMatch(new RegExp(`^00-${T3}-[0-9a-f]{16}-00$`));
    const r4 = await get(port, '/', { headers: { host: 'nothing.example' } });
    expect(r4.status).toBe(404);

    await tracing.flush();
    await until(() => rec.spans.length >= 3, 10_000, 'three spans at the receiver');
    const s1 = rec.spans.find((s) => s.traceId === T)!;
    expect(s1).toMatchObject({ parentSpanId: P, spanId: routerSpan, name: 'GET', kind: 2 /* SERVER */ });
    expect(s1.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/cart',
      'http.response.status_code': 200,
      'meridian.service': 'web',
      'meridian.cluster': 'eu-west-1',
      'meridian.region': 'eu-west',
      'meridian.version': '2.4.0',
      'meridian.track': 'stable',
      'meridian.route.reason': 'primary',
      'meridian.client.country': 'IE',
      'meridian.client.region': 'eu-west',
      'meridian.attempts': 1,
    });
    expect(s1.resource['service.name']).toBe('meridian-router');
    const s2 = rec.spans.find((s) => s.traceId === newTrace)!;
    expect(s2).toMatchObject({ parentSpanId: '', spanId: newParent });
    expect(s2.attributes).toMatchObject({ 'meridian.cluster': 'us-east-1', 'meridian.region': 'us-east' });
    const s4 = rec.spans.find((s) => s.attributes['meridian.route.reason'] === 'no-route')!;
    expect(s4.attributes['http.response.status_code']).toBe(404);
    expect(s4.attributes['meridian.cluster']).toBeUndefined();
    expect(rec.spans.some((s) => s.traceId === T3)).toBe(false); // the client said: not sampled
    expect(rec.requests[0]?.headers['x-tenant']).toBe('shop eu');
  });

  it('are not made when tracing is off: the router forwards the client’s traceparent as it came', async () => {
    const { router, port, eu } = await routerWith(undefined);
    expect(router.settings.tracer).toBeNull();
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await get(port, '/', { headers: { 'x-client-country': 'IE', traceparent: tp } });
    expect(eu.lastHeaders?.traceparent).toBe(tp);
  });
});

/** `meridian router …` in a process of its own, the command registered on a fresh program (as test/router-cli.test.ts does). */
const RUNNER = `
import { Command } from 'commander';
import { registerRouter } from './src/cli/commands/router.ts';
import { processIo } from './src/cli/io.ts';
const program = new Command('meridian').exitOverride();
const result = { code: 0 };
registerRouter(program, processIo(), result);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
process.exit(result.code);
`;

describe('meridian router --otlp', () => {
  it('exports a span per request from the router process, continuing the caller’s trace', async () => {
    const root = join(import.meta.dirname, '..');
    const rec = await receiver();
    const web = await startUpstream('any', '2.4.0');
    cleanup.push(() => web.kill());
    const dir = mkdtempSync(join(tmpdir(), 'meridian-otlp-'));
    cleanup.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const clusters = ['eu-west-1', 'eu-west-2', 'eu-central-1', 'us-east-1', 'us-east-2', 'us-west-1', 'ap-south-1', 'ap-northeast-1'];
    const file = join(dir, 'endpoints.json');
    writeFileSync(file, JSON.stringify({ endpoints: clusters.map((cluster) => ({ cluster, service: 'web', port: web.port })) }));
    const args = [
      'router',
      '-f',
      join(root, 'examples', 'shop'),
      '-e',
      file,
      '-p',
      '0',
      '--no-health-checks',
      ...TRUST_LOOPBACK_FLAGS,
      '--otlp',
      rec.url,
    ];
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RUNNER, ...args], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', OTEL_SERVICE_NAME: 'edge-router' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    cleanup.push(async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    });
    let out = '';
    proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await until(() => /listening on http:\/\/127\.0\.0\.1:(\d+)/.test(out), 20_000, 'the router to listen');
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
    const T = '0af7651916cd43dd8448eb211c80319c';
    const r = await get(port, '/', {
      headers: { host: 'shop.example', 'x-client-country': 'DE', traceparent: `00-${T}-b7ad6b7169203331-01` },
    });
    expect(r.status).toBe(200);
    proc.kill('SIGTERM'); // stopping flushes the spans
    expect(await exited).toBe(0);
    const span = rec.spans.find((s) => s.traceId === T);
    expect(span).toMatchObject({ parentSpanId: 'b7ad6b7169203331', kind: 2 });
    expect(span?.spanId).toBe(String(web.lastHeaders?.traceparent).split('-')[2]);
    expect(span?.attributes).toMatchObject({
      'meridian.cluster': 'eu-central-1',
      'meridian.region': 'eu-central',
      'meridian.service': 'web',
    });
    expect(span?.resource['service.name']).toBe('edge-router');
  });
});

describe('rollout spans', () => {
  const stores: Store[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  });

  /** A real engine's rollout of the shop fixture whose europe wave fails its second step and is rolled back. */
  async function rolledBack(): Promise<{ events: RolloutEventRecord[]; rollout: RolloutRecord }> {
    const w = await world((f) => {
      for (const wave of f.rollout?.waves ?? []) delete wave.approvals;
    });
    stores.push(w.store);
    const spec = rolloutSpecFromPlan(w.plan, w.fleet, ['web', 'api'], ['alice', 'planner'], { healthyChecks: 1 });
    const driver = new FakeDriver();
    await seed(driver, w.rev1);
    const clock = fakeClock();
    const analysis = new ScriptedAnalysis((ctx) => (ctx.wave.name === 'europe' && ctx.step.index === 1 ? 'fail' : 'pass'));
    const engine = new RolloutEngine({ store: w.store, driver, traffic: new FakeTraffic(), analysis, clock }, { pollMs: 100 });
    const h = holderFor('ro-trace', { id: 'alice', via: 'flag' });
    await createRollout(w.store, spec, h, { now: clock.now() });
    await takeOver(w.store, 'ro-trace', h, { now: clock.now() });
    expect((await engine.drive('ro-trace', h)).outcome).toBe('rolled-back');
    return { events: await w.store.listRolloutEvents('ro-trace'), rollout: (await w.store.getRollout('ro-trace'))! };
  }

  it('make one trace per rollout: rollout → waves → steps with verdicts, and the rollback', async () => {
    const { events, rollout } = await rolledBack();
    const rec = await receiver();
    const tracing = await tracingTo(rec, 'meridian');
    const tracer = rolloutTracer(tracing);
    for (const e of events) tracer.observe(e, rollout);
    expect(tracer.open).toBe(0);
    await tracing.flush();
    await until(() => rec.spans.some((s) => s.name === 'rollout'), 10_000, 'the rollout span');
    const spans = rec.spans;
    const root = spans.find((s) => s.name === 'rollout')!;
    expect(root).toMatchObject({ traceId: rolloutTraceId('ro-trace'), parentSpanId: '' });
    expect(root.attributes).toMatchObject({
      'meridian.rollout.id': 'ro-trace',
      'meridian.fleet': 'shop',
      'meridian.rollout.outcome': 'rolled-back',
    });
    expect(root.status.code).toBe(2); // ERROR
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([root.traceId]));
    expect(new Set(spans.map((s) => s.spanId)).size).toBe(spans.length);

    const waves = spans.filter((s) => s.name === 'rollout.wave');
    expect(waves.map((s) => s.attributes['meridian.wave.name'])).toEqual(['canary', 'europe']); // rest never started
    for (const w of waves) {
      expect(w.parentSpanId).toBe(root.spanId);
      expect(w.start).toBeGreaterThanOrEqual(root.start);
      expect(w.end).toBeLessThanOrEqual(root.end);
    }
    const [canary, europe] = waves as [Got, Got];
    expect(canary.events.map((e) => e.name)).toEqual(['canary-ready', 'promoted']);
    expect(europe.status.code).toBe(2);

    const steps = spans.filter((s) => s.name === 'rollout.step');
    expect(
      steps.map((s) => [s.attributes['meridian.wave.name'], s.attributes['meridian.step.index'], s.attributes['meridian.verdict.outcome']]),
    ).toEqual([
      ['canary', 0, 'pass'],
      ['canary', 1, 'pass'],
      ['canary', 2, 'pass'],
      ['europe', 0, 'pass'],
      ['europe', 1, 'fail'],
    ]);
    for (const s of steps) {
      const parent = s.attributes['meridian.wave.name'] === 'canary' ? canary : europe;
      expect(s.parentSpanId).toBe(parent.spanId);
      expect(s.start).toBeGreaterThanOrEqual(parent.start);
      expect(s.end).toBeLessThanOrEqual(parent.end);
    }
    const failed = steps.at(-1)!;
    expect(failed.status.code).toBe(2);
    expect(failed.attributes).toMatchObject({ 'meridian.gate.error-rate.verdict': 'fail', 'meridian.gate.error-rate.value': 0.2 });
    expect([...(failed.attributes['meridian.batch.clusters'] as string[])].sort()).toEqual(['eu-central-1', 'eu-west-2']);
    expect(steps[0]?.attributes['meridian.step.weight']).toBe(5);

    const rollback = spans.find((s) => s.name === 'rollout.rollback')!;
    expect(rollback.parentSpanId).toBe(root.spanId);
    expect(rollback.events.map((e) => e.attributes['meridian.cluster']).sort()).toEqual(['eu-central-1', 'eu-west-2']);
  });

  it('continue the same trace when another process resumes the rollout (the earlier events replayed)', async () => {
    const { events, rollout } = await rolledBack();
    const whole = await receiver();
    const one = await tracingTo(whole, 'meridian');
    const all = rolloutTracer(one);
    for (const e of events) all.observe(e, rollout);
    await one.flush();

    const split = await receiver();
    const two = await tracingTo(split, 'meridian');
    const cut = Math.floor(events.length / 2);
    const first = rolloutTracer(two); // the driver that died half way
    for (const e of events.slice(0, cut)) first.observe(e, rollout);
    const second = rolloutTracer(two); // `meridian rollout --resume` elsewhere
    for (const e of events.slice(0, cut)) second.observe(e, rollout, { replay: true });
    for (const e of events.slice(cut)) second.observe(e, rollout);
    await two.flush();

    await until(() => whole.spans.length > 0 && split.spans.length === whole.spans.length, 10_000, 'the same number of spans');
    const shape = (spans: Got[]) => spans.map((s) => `${s.name} ${s.traceId} ${s.spanId} <- ${s.parentSpanId} ${s.start}..${s.end}`).sort();
    expect(shape(split.spans)).toEqual(shape(whole.spans));
  });
});

describe('meridian rollout --otlp', () => {
  it('exports the rollout’s trace from the process that drives it, and the one that resumes it continues the same trace', async () => {
    const rec = await receiver();
    const f = await fleet('otlp', (y) =>
      y.replace('    - name: rest\n', '    - name: rest\n      approvals: { count: 1, roles: [release-manager] }\n'),
    );
    cleanup.push(() => f.api.close());
    const first = await meridian(f, ['rollout', 'fleet', '--otlp', rec.url, ...FAST], { MERIDIAN_ACTOR: 'alice' }).done;
    expect(first.code, first.err).toBe(5); // waits for approval of wave rest
    const before = rec.spans.length;
    expect(rec.spans.map((s) => s.name)).toContain('rollout.wave'); // wave canary ended when the rollout moved on
    expect(rec.spans.some((s) => s.name === 'rollout')).toBe(false); // the rollout is not over
    expect((await meridian(f, ['approve', '--wave', 'rest'], { MERIDIAN_ACTOR: 'bob' }).done).code).toBe(0);
    const done = await meridian(f, ['rollout', '--resume', ...FAST], { OTEL_EXPORTER_OTLP_ENDPOINT: rec.url, MERIDIAN_ACTOR: 'ci' }).done;
    expect(done.code, done.err).toBe(0);
    expect(rec.spans.length).toBeGreaterThan(before);
    const id = /rollout (ro-\S+) promoted/.exec(done.out)?.[1] ?? '';
    const root = rec.spans.find((s) => s.name === 'rollout')!;
    expect(root).toMatchObject({ traceId: rolloutTraceId(id), parentSpanId: '' });
    expect(root.attributes['meridian.rollout.outcome']).toBe('promoted');
    expect(new Set(rec.spans.map((s) => s.traceId))).toEqual(new Set([root.traceId]));
    expect(new Set(rec.spans.map((s) => s.spanId)).size).toBe(rec.spans.length); // nothing exported twice
    const ids = new Set(rec.spans.map((s) => s.spanId));
    for (const s of rec.spans) if (s !== root) expect(ids.has(s.parentSpanId), `${s.name}'s parent`).toBe(true);
    const waves = rec.spans.filter((s) => s.name === 'rollout.wave').map((s) => s.attributes['meridian.wave.name']);
    expect(waves).toEqual(['canary', 'rest']);
    expect(rec.spans.filter((s) => s.name === 'rollout.step').every((s) => s.attributes['meridian.verdict.outcome'] === 'pass')).toBe(true);
  }, 60_000);
});
