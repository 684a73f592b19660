/**
 * Attack suite, the control plane's API (docs/security.md; findings of the security review): F-8 the
 * query-string token only on the event stream; F-10 a stream ends when its token is revoked or expires;
 * F-14 the local admin token is not printed to a log and is refused from other hosts; F-15 bounded free
 * text, a subscriber that stops reading is dropped, the audit read does not re-hash the whole chain;
 * F-18 a loopback control plane answers only to loopback host names (DNS rebinding).
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Authenticator } from '../src/server/auth/authenticate.js';
import { newApiToken } from '../src/server/auth/tokens.js';
import { BIN, spawnNode } from './support/cli-kit.js';
import { api, codeOf, serverWorld, until, type ServerWorld } from './support/server-kit.js';

let sw: ServerWorld;
beforeAll(async () => {
  sw = await serverWorld({ localAdmin: { token: 'mrl_local-admin-for-tests', id: 'me' } });
});
afterAll(async () => {
  await sw?.close();
});

/** A raw request with any Host header (fetch does not let a caller set it). */
function raw(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  const u = new URL(sw.url);
  return new Promise((done, fail) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** An event stream that records its events and whether the server ended it. */
async function stream(path: string, headers: Record<string, string> = {}) {
  const ctl = new AbortController();
  const res = await fetch(new URL(path.slice(1), sw.url), { headers, signal: ctl.signal });
  const s = { status: res.status, text: '', ended: false, close: () => ctl.abort() };
  if (res.ok && res.body) {
    void (async () => {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) s.text += Buffer.from(chunk).toString();
        s.ended = true;
      } catch {
        s.ended = true;
      }
    })();
  }
  return s;
}

async function viewerToken(expiresAt: string | null = null): Promise<{ token: string; id: string }> {
  const t = newApiToken(`viewer-${Math.random().toString(36).slice(2, 8)}`, 'viewer', { id: 'setup' }, { expiresAt });
  await sw.store.createApiToken(t.record, { id: 'setup' });
  return { token: t.token, id: t.record.id };
}

describe('F-8: ?access_token= is accepted on the event stream only', () => {
  it('refuses it on a mutation, on token management and on whoami (401), accepts it on GET /api/v1/events', async () => {
    const drain = await api(sw.url, 'POST', `/api/v1/clusters/eu-west-2/drain?access_token=${sw.tokens.deployer}`, {
      body: { drained: false },
    });
    expect([drain.status, codeOf(drain)]).toEqual([401, 'MERIDIAN_E_API_UNAUTHENTICATED']);
    const tokens = await api(sw.url, 'GET', `/api/v1/tokens?access_token=${sw.tokens.admin}`);
    expect(tokens.status).toBe(401);
    expect((tokens.body as { error: { hint: string } }).error.hint).toMatch(/Authorization: Bearer/);
    expect((await api(sw.url, 'GET', `/api/v1/whoami?access_token=${sw.tokens.viewer}`)).status).toBe(401);
    const s = await stream(`/api/v1/events?types=audit&access_token=${sw.tokens.viewer}`);
    expect(s.status).toBe(200);
    s.close();
  });
});

describe('F-10: an event stream ends when its token stops being valid', () => {
  it('a revoked token: the stream ends, and no later event reaches it', async () => {
    const { token, id } = await viewerToken();
    const s = await stream('/api/v1/events?types=audit', { authorization: `Bearer ${token}` });
    expect(s.status).toBe(200);
    expect((await api(sw.url, 'DELETE', `/api/v1/tokens/${id}`, { token: sw.tokens.admin })).status).toBe(200);
    await until(() => s.ended, 'the revoked stream to end', 10_000);
    await api(sw.url, 'POST', '/api/v1/clusters/eu-west-2/drain', {
      token: sw.tokens.deployer,
      body: { drained: false, reason: 'AFTER-REVOKE-MARKER' },
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(s.text).not.toContain('AFTER-REVOKE-MARKER');
  });

  it('an expiring token: the stream ends once it expires (checked with the heartbeat)', async () => {
    const { token } = await viewerToken(new Date(Date.now() + 1500).toISOString());
    const s = await stream('/api/v1/events?types=audit', { authorization: `Bearer ${token}` });
    expect(s.status).toBe(200);
    await until(() => s.ended, 'the expired stream to end', 10_000);
  });
});

describe('F-14: the local admin token', () => {
  it('is refused from a peer that is not loopback', async () => {
    const auth = new Authenticator({ store: sw.store, localAdmin: { token: 'mrl_x', id: 'me' } });
    expect((await auth.identify('mrl_x', '127.0.0.1')).via).toBe('local');
    await expect(auth.identify('mrl_x', '10.1.2.3')).rejects.toMatchObject({ code: 'MERIDIAN_E_API_UNAUTHENTICATED' });
  });

  it('`meridian serve` does not print it when stdout is not a terminal (a log), and says how to get one', async () => {
    const work = mkdtempSync(join(tmpdir(), 'meridian-sec-serve-'));
    const p = spawnNode([BIN, 'serve', resolve('examples/shop'), '--port', '0', '--state', join(work, 'state.db')], { cwd: work });
    try {
      await until(() => /control plane on http/.test(p.out()) && p.out().includes('admin'), 'serve to start', 30_000);
      expect(p.out()).not.toMatch(/mrl_/);
      expect(p.out()).toMatch(/admin\s+not printed.*--print-admin-token/);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('F-15: bounded free text, backpressure, and no re-hash of the chain on every read', () => {
  it('a reason longer than 4096 characters is refused with 422', async () => {
    const a = await api(sw.url, 'POST', '/api/v1/clusters/eu-west-2/drain', {
      token: sw.tokens.deployer,
      body: { drained: false, reason: 'x'.repeat(900_000) },
    });
    expect([a.status, codeOf(a)]).toEqual([422, 'MERIDIAN_E_API_INVALID']);
    const ok = await api(sw.url, 'POST', '/api/v1/clusters/eu-west-2/drain', {
      token: sw.tokens.deployer,
      body: { drained: false, reason: 'y'.repeat(4096) },
    });
    expect(ok.status).toBe(200);
  });

  it('a subscriber that never reads is disconnected once its backlog passes the bound', async () => {
    const before = sw.server.hub.subscribers;
    const u = new URL(sw.url);
    const sock = connect({ host: u.hostname, port: Number(u.port) });
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET /api/v1/events?types=audit HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${sw.tokens.viewer}\r\n\r\n`);
    await until(() => sw.server.hub.subscribers === before + 1, 'the subscriber');
    sock.pause(); // reads nothing more: the kernel buffers fill, then the server's
    let closed = false;
    sock.on('close', () => (closed = true));
    const big = 'z'.repeat(1024 * 1024);
    for (let i = 0; i < 64 && sw.server.hub.subscribers > before; i++) {
      sw.server.hub.publish('audit', { filler: big, i });
      await new Promise((r) => setImmediate(r));
    }
    await until(() => sw.server.hub.subscribers === before, 'the slow subscriber to be dropped', 10_000);
    sock.destroy();
    expect(closed || sock.destroyed).toBe(true);
  });

  it('GET /api/v1/audit walks the whole chain once, then only what was appended, and returns the head', async () => {
    const spy = vi.spyOn(sw.store, 'verifyAudit');
    try {
      const first = await api(sw.url, 'GET', '/api/v1/audit?limit=1', { token: sw.tokens.viewer });
      await api(sw.url, 'POST', '/api/v1/clusters/eu-west-2/drain', { token: sw.tokens.deployer, body: { drained: false } });
      const second = await api(sw.url, 'GET', '/api/v1/audit?limit=1', { token: sw.tokens.viewer });
      await api(sw.url, 'GET', '/api/v1/audit?limit=1', { token: sw.tokens.viewer });
      const full = spy.mock.calls.filter((c) => c[0]?.from === undefined).length;
      expect(full).toBeLessThanOrEqual(1);
      const b1 = first.body as { verified: boolean; count: number; headHash: string };
      const b2 = second.body as { verified: boolean; count: number; headHash: string };
      expect(b1.verified && b2.verified).toBe(true);
      expect(b2.count).toBe(b1.count + 1);
      expect(b2.headHash).toMatch(/^[0-9a-f]{64}$/);
      expect(b2.headHash).not.toBe(b1.headHash);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('F-18: DNS rebinding — a loopback control plane answers only to loopback host names', () => {
  const port = (): string => new URL(sw.url).port;
  const ofrep = '{"context":{"targetingKey":"u","region":"eu-west"}}';

  it('refuses Host: attacker.example on OFREP, the dashboard and the API (403 MERIDIAN_E_API_HOST)', async () => {
    for (const [method, path, body] of [
      ['POST', '/ofrep/v1/evaluate/flags', ofrep],
      ['GET', '/', undefined],
      ['GET', '/api/v1/openapi.json', undefined],
    ] as const) {
      const r = await raw(method, path, { host: `attacker.example:${port()}`, 'content-type': 'application/json' }, body);
      expect([path, r.status]).toEqual([path, 403]);
      expect(r.body).toContain('MERIDIAN_E_API_HOST');
    }
  });

  it('answers localhost, 127.0.0.1 and [::1] on any port', async () => {
    for (const host of [`localhost:${port()}`, `127.0.0.1:${port()}`, `[::1]:${port()}`, 'localhost']) {
      const r = await raw('POST', '/ofrep/v1/evaluate/flags', { host, 'content-type': 'application/json' }, ofrep);
      expect([host, r.status]).toEqual([host, 200]);
    }
  });
});

describe('found by the fuzz (test/security-api-fuzz.test.ts)', () => {
  it('a request target that starts with // and does not parse as a URL gets 400, and the server lives on', async () => {
    for (const path of ['//%%lr%G', '//cl%5E*I%25HU-', '//I%5D-U%3CaM(a%60/%00/constructor']) {
      const r = await Promise.race([
        raw('GET', path, { host: new URL(sw.url).host }),
        new Promise<{ status: number }>((r) => setTimeout(() => r({ status: -1 }), 5000)),
      ]);
      expect([path, r.status]).toEqual([path, expect.any(Number)]);
      expect(r.status >= 400 && r.status < 500).toBe(true);
    }
    expect((await api(sw.url, 'GET', '/healthz')).status).toBe(200);
  });

  it('HEAD on the event stream answers its headers at once and holds no subscriber', async () => {
    const before = sw.server.hub.subscribers;
    const r = await Promise.race([
      raw('HEAD', '/api/v1/events', { host: new URL(sw.url).host, authorization: `Bearer ${sw.tokens.viewer}` }),
      new Promise<{ status: number }>((r) => setTimeout(() => r({ status: -1 }), 5000)),
    ]);
    expect(r.status).toBe(200);
    expect(sw.server.hub.subscribers).toBe(before);
  });
});
