/** The router's small parts, as pure functions and with an injected clock. */
import { describe, expect, it } from 'vitest';
import {
  AddressMatcher,
  MmdbGeoIp,
  ServiceMatcher,
  cookieValue,
  parseEndpointsFile,
  validTraceparent,
  newTraceparent,
} from '../src/router/index.js';
import { RebuildScheduler } from '../src/router/rebuild-scheduler.js';
import { OutlierDetector, outlierPolicy } from '../src/router/outlier-detector.js';
import { Upstream } from '../src/router/upstream.js';
import { CounterVec, HistogramVec, createRegistry } from '../src/telemetry/index.js';
import type { EndpointSource } from '../src/router/index.js';
import type { LocalTarget } from '../src/targets/index.js';
import { FakeClock } from './support/router-kit.js';

/** `meridian up` passes its LocalTarget to the router as is: this fails to compile if the shapes drift apart. */
export function localTargetIsAnEndpointSource(t: LocalTarget): EndpointSource {
  return t;
}

describe('service matcher', () => {
  const m = new ServiceMatcher([
    { match: { hosts: ['shop.example', '*.shop.example'], pathPrefix: '/' }, value: 'web' },
    { match: { hosts: ['*.eu.shop.example'], pathPrefix: '/' }, value: 'eu' },
    { match: { hosts: ['api.shop.example'] }, value: 'api' },
    { match: { hosts: ['shop.example'], pathPrefix: '/api/' }, value: 'api-path' },
    { match: { pathPrefix: '/healthz' }, value: 'any-host' },
  ]);
  it.each([
    ['shop.example', '/', 'web'],
    ['shop.example:443', '/api/v1', 'api-path'],
    ['Shop.Example.', '/x', 'web'],
    ['a.shop.example', '/', 'web'],
    ['x.eu.shop.example', '/', 'eu'],
    ['api.shop.example', '/anything', 'api'],
    ['other.test', '/healthz', 'any-host'],
    ['other.test', '/', undefined],
    [undefined, '/healthz', 'any-host'],
    ['shop.example.evil.test', '/', undefined],
  ])('%s %s → %s', (host, path, want) => expect(m.match(host, path)).toBe(want));
});

describe('request parsing', () => {
  it('finds one cookie without being fooled by similar names', () => {
    expect(cookieValue('a=1; mrd_uid=abc; b=2', 'mrd_uid')).toBe('abc');
    expect(cookieValue('xmrd_uid=no; mrd_uid="q"', 'mrd_uid')).toBe('q');
    expect(cookieValue('mrd_uid=', 'mrd_uid')).toBeUndefined();
    expect(cookieValue('other=1', 'mrd_uid')).toBeUndefined();
  });

  it('accepts W3C traceparents and generates valid, distinct ones', () => {
    expect(validTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBe(true);
    expect(validTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra')).toBe(false);
    expect(validTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra')).toBe(true);
    expect(validTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBe(false);
    expect(validTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBe(false);
    const a = newTraceparent();
    const b = newTraceparent();
    expect(validTraceparent(a) && validTraceparent(b)).toBe(true);
    expect(a).not.toBe(b);
  });

  it('matches trusted sources by address and block, IPv4-mapped IPv6 included, and rejects nonsense', () => {
    const t = new AddressMatcher(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
    expect(t.has('10.1.2.3')).toBe(true);
    expect(t.has('::ffff:10.1.2.3')).toBe(true);
    expect(t.has('192.168.1.7')).toBe(true);
    expect(t.has('192.168.1.8')).toBe(false);
    expect(t.has('fd12::1')).toBe(true);
    expect(t.has('127.0.0.1')).toBe(false);
    expect(t.has(undefined)).toBe(false);
    expect(() => new AddressMatcher(['10.0.0.0/33'])).toThrow(/MERIDIAN|not an IP address/);
  });

  it('resolves countries with the bundled GeoIP database', () => {
    const g = new MmdbGeoIp();
    expect(g.country('5.9.0.1')).toBe('DE');
    expect(g.country('8.8.8.8')).toBe('US');
    expect(g.country('2a01:4f8::1')).toBe('DE');
    expect(g.country('127.0.0.1')).toBeNull();
    expect(g.country('not an ip')).toBeNull();
  });

  it('reads the endpoints file and says what is wrong with it', () => {
    const doc = parseEndpointsFile(
      JSON.stringify({
        endpoints: [{ cluster: 'a', service: 'web', port: 9000 }],
        canary: { web: { a: { weight: 5, version: '2' } } },
        drained: ['b'],
      }),
    );
    expect(doc.endpoints[0]).toEqual({ cluster: 'a', service: 'web', track: 'stable', host: '127.0.0.1', port: 9000 });
    expect(doc.canary).toEqual({ web: { a: { weight: 5, version: '2' } } });
    expect(parseEndpointsFile('[{"cluster":"a","service":"web","port":1}]').drained).toEqual([]);
    expect(() => parseEndpointsFile('{"endpoints":[{"cluster":"a","service":"web","port":70000,"extra":1}]}')).toThrow(
      /endpoints\.0\.port.*endpoints\.0: Unrecognized key|endpoints\.0: Unrecognized key.*endpoints\.0\.port/s,
    );
    expect(() => parseEndpointsFile('{')).toThrow(/not JSON/);
  });
});

describe('rebuild scheduler', () => {
  it('turns a burst into one rebuild and a flapping stream into at most one per interval', () => {
    const clock = new FakeClock();
    let builds = 0;
    const s = new RebuildScheduler(clock, 50, () => builds++);
    for (let i = 0; i < 1000; i++) s.request();
    clock.advance(0);
    expect(builds).toBe(1);
    for (let t = 0; t < 1000; t++) {
      s.request();
      clock.advance(1);
    }
    clock.advance(50);
    expect(builds).toBeGreaterThanOrEqual(20);
    expect(builds).toBeLessThanOrEqual(22);
  });
});

describe('outlier detector', () => {
  it('applies Envoy defaults and the fleet’s values', () => {
    expect(outlierPolicy(undefined)).toEqual({
      consecutive5xx: 5,
      intervalMs: 10_000,
      baseEjectionMs: 30_000,
      maxEjectionPercent: 10,
      maxEjectionMs: 300_000,
    });
    expect(outlierPolicy({ consecutive5xx: 3, baseEjectionTime: '10m', maxEjectionPercent: 50 })).toMatchObject({
      baseEjectionMs: 600_000,
      maxEjectionMs: 600_000,
    });
  });

  it('ejects at the threshold, returns after base × count, decays the count, and respects a 0 % cap', async () => {
    const clock = new FakeClock();
    const ups = [0, 1, 2, 3].map(
      (i) => new Upstream({ cluster: `c${i}`, service: 'web', track: 'stable', version: '1', host: '127.0.0.1', port: 1000 + i }),
    );
    let pct = 50;
    let changes = 0;
    const d = new OutlierDetector(clock, {
      changed: () => changes++,
      ejected: () => undefined,
      endpointsOf: () => ups,
      policyOf: () => ({ consecutive5xx: 2, intervalMs: 1000, baseEjectionMs: 100, maxEjectionPercent: pct, maxEjectionMs: 300_000 }),
    });
    const [a, b, c] = ups as [Upstream, Upstream, Upstream];
    d.failure(a);
    d.success(a);
    d.failure(a);
    expect(a.usable).toBe(true);
    d.failure(a);
    expect(a.state).toBe('ejected');
    d.failure(b);
    d.failure(b);
    expect(b.state).toBe('ejected'); // 2 of 4 = 50 %
    d.failure(c);
    d.failure(c);
    expect(c.state).toBe('healthy'); // a third would pass the cap
    clock.advance(100);
    expect(a.state).toBe('healthy');
    d.failure(a);
    d.failure(a);
    expect(a.ejectedUntil - clock.now()).toBe(200); // second ejection: 2 × base
    clock.advance(200 + 3000);
    expect(a.ejections).toBeLessThan(2); // decayed while it behaved
    pct = 0;
    d.failure(c);
    d.failure(c);
    expect(c.state).toBe('healthy');
    expect(changes).toBeGreaterThan(0);
    d.close();
    await Promise.all(ups.map((u) => u.pool.close()));
  });
});

describe('telemetry', () => {
  it('exposes counters and histograms through a prom-client registry', async () => {
    const registry = createRegistry();
    const c = new CounterVec({ name: 'x_requests_total', help: 'h', labelNames: ['a'], registers: [registry] });
    const h = new HistogramVec({ name: 'x_seconds', help: 'h', labelNames: ['a'], buckets: [0.1, 1], registers: [registry] });
    const s = c.series(['one']);
    expect(c.series(['one'])).toBe(s);
    c.inc(s);
    c.inc(s, 2);
    const hs = h.series(['one']);
    h.observe(hs, 0.05);
    h.observe(hs, 0.5);
    h.observe(hs, 5);
    const text = await registry.metrics();
    expect(text).toContain('x_requests_total{a="one"} 3');
    expect(text).toContain('x_seconds_bucket{a="one",le="0.1"} 1');
    expect(text).toContain('x_seconds_bucket{a="one",le="1"} 2');
    expect(text).toContain('x_seconds_bucket{a="one",le="+Inf"} 3');
    expect(text).toContain('x_seconds_count{a="one"} 3');
    expect(() => new CounterVec({ name: 'bad-name', help: 'h', labelNames: [] })).toThrow();
    const capped = new CounterVec({ name: 'y_total', help: 'h', labelNames: ['k'], maxSeries: 2 });
    capped.series(['1']);
    capped.series(['2']);
    expect(capped.series(['3'])).toBe(capped.series(['4'])); // the overflow series
  });
});
