/** Synthetic clients against a real loopback HTTP server that answers like the router does. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTraffic } from '../src/traffic/generator.js';
import { MixPicker, parseMix } from '../src/traffic/mix.js';
import { formatReport, quantile } from '../src/traffic/report.js';

let server: Server;
let url: string;
const seenUsers = new Set<string>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const country = String(req.headers['x-client-country']);
    seenUsers.add(String(req.headers['x-user-id']));
    if (country === 'BR') {
      res.writeHead(503, { 'x-meridian-reason': 'no-healthy' });
      res.end('{}');
      return;
    }
    res.writeHead(200, { 'x-meridian-cluster': country === 'DE' ? 'eu-central-1' : 'us-east-1', 'x-meridian-version': '2.4.0' });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('traffic mix', () => {
  it('parses COUNTRY:WEIGHT and interleaves smoothly, exact over each cycle', () => {
    const mix = parseMix('de:3, US:1');
    expect(mix).toEqual([
      { country: 'DE', weight: 3 },
      { country: 'US', weight: 1 },
    ]);
    const p = new MixPicker(mix);
    expect(Array.from({ length: 8 }, () => p.next()).join(' ')).toBe('DE DE US DE DE DE US DE');
    expect(() => parseMix('DE=30')).toThrow(/bad traffic mix entry "DE=30"/);
  });

  it('computes nearest-rank percentiles', () => {
    expect(quantile([5, 1, 4, 2, 3], 0.5)).toBe(3);
    expect(quantile([5, 1, 4, 2, 3], 0.99)).toBe(5);
    expect(Number.isNaN(quantile([], 0.5))).toBe(true);
  });
});

describe('runTraffic', () => {
  it('sends the requested count in the mix and reports clusters, versions, statuses and refusals per country', async () => {
    const r = await runTraffic({ url, rps: 400, mix: parseMix('DE:2,US:1,BR:1'), requests: 200, users: 10 });
    expect(r.countries['DE']?.sent).toBe(100);
    expect(r.countries['US']?.sent).toBe(50);
    expect(r.countries['BR']?.sent).toBe(50);
    expect(r.countries['DE']?.clusters).toEqual({ 'eu-central-1': 100 });
    expect(r.countries['BR']?.statuses).toEqual({ '503': 50 });
    expect(r.countries['BR']?.reasons).toEqual({ 'no-healthy': 50 });
    expect(r.countries['US']?.latenciesMs).toHaveLength(50);
    expect(seenUsers.size).toBe(30); // 10 users per country
    expect(formatReport(r)).toMatch(/^BR {2}50 requests/m);
  });

  it('counts a refused connection as an error, not a crash', async () => {
    const r = await runTraffic({ url: 'http://127.0.0.1:1/', rps: 100, mix: parseMix('DE:1'), requests: 5, timeoutMs: 1000 });
    expect(r.countries['DE']?.statuses).toEqual({ error: 5 });
  });
});
