/**
 * Secret presence providers. Vault and Kubernetes are tested against small loopback HTTP servers that
 * speak the exact API paths the providers call (stand-ins: no real Vault or API server runs here).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretPresence, parseSecretRef } from '../src/secrets/index.js';
import { dotenvKeys } from '../src/secrets/file.js';

const SECRET_VALUE = 'pa55-w0rd-never-shown';

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('parseSecretRef', () => {
  it.each([
    ['env:DB_PASSWORD', { provider: 'env', name: 'DB_PASSWORD' }],
    ['file:secrets/eu.env#DB_PASSWORD', { provider: 'file', path: 'secrets/eu.env', key: 'DB_PASSWORD' }],
    ['vault:kv/web/db#password', { provider: 'vault', mount: 'kv', path: 'web/db', key: 'password' }],
    ['k8s:shop/web-db#password', { provider: 'k8s', namespace: 'shop', name: 'web-db', key: 'password' }],
  ])('%s', (ref, want) => {
    expect(parseSecretRef(ref)).toEqual(want);
  });

  it.each(['env:DB#x', 'file:secrets.env', 'vault:kv#password', 'vault:kv/web', 'k8s:shop#x', 'k8s:Shop/Web#x', 'nope:x', 'env:1BAD'])(
    'rejects %s',
    (ref) => {
      expect(parseSecretRef(ref)).toHaveProperty('error');
    },
  );
});

describe('env and file providers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-secrets-'));
  writeFileSync(join(dir, 'eu.env'), `# comment\nexport DB_PASSWORD="${SECRET_VALUE}"\nEMPTY=\nAPI_KEY=abc # trailing\n`);
  writeFileSync(join(dir, 'eu.yaml'), `db:\n  password: ${SECRET_VALUE}\n  user: null\ntoken: t\n`);
  writeFileSync(join(dir, 'eu.json'), JSON.stringify({ password: SECRET_VALUE, nested: { key: 'v' } }));
  writeFileSync(join(dir, 'broken.json'), `{"password": "${SECRET_VALUE}"`);
  const ctx = { cluster: 'eu-west-1', fleetDir: dir };

  it('env: present when set and not empty', async () => {
    const p = createSecretPresence({ env: { A: 'x', B: '' } });
    expect(await p.has('env:A', ctx)).toBe('present');
    expect(await p.has('env:B', ctx)).toBe('missing');
    expect(await p.has('env:C', ctx)).toBe('missing');
  });

  it('file: .env, YAML and JSON keys, relative to the fleet directory', async () => {
    const p = createSecretPresence({ env: {} });
    expect(await p.has('file:eu.env#DB_PASSWORD', ctx)).toBe('present');
    expect(await p.has('file:eu.env#API_KEY', ctx)).toBe('present');
    expect(await p.has('file:eu.env#EMPTY', ctx)).toBe('missing');
    expect(await p.has('file:eu.yaml#db.password', ctx)).toBe('present');
    expect(await p.has('file:eu.yaml#db.user', ctx)).toBe('missing');
    expect(await p.has('file:eu.yaml#token', ctx)).toBe('present');
    expect(await p.has('file:eu.json#password', ctx)).toBe('present');
    expect(await p.has('file:eu.json#nested.key', ctx)).toBe('present');
    expect(await p.has('file:eu.json#other', ctx)).toBe('missing');
  });

  it('file: a missing or unreadable file is an error, and never quotes its content', async () => {
    const p = createSecretPresence({ env: {} });
    expect(await p.has('file:nope.env#X', ctx)).toEqual({ error: 'nope.env does not exist' });
    const broken = await p.has('file:broken.json#password', ctx);
    expect(broken).toEqual({ error: 'broken.json is not valid JSON' });
  });

  it('file: reads a shared file once for a thousand clusters', async () => {
    const p = createSecretPresence({ env: {} });
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => p.has('file:eu.env#DB_PASSWORD', { cluster: `c${i}`, fleetDir: dir })),
    );
    expect(new Set(answers)).toEqual(new Set(['present']));
    expect(p.stores.file.reads).toBe(1);
  });

  it('dotenv parsing keeps names only', () => {
    expect([...dotenvKeys('A=1\n# B=2\n export C = "3"\nD=\n')]).toEqual(['A', 'C']);
  });
});

describe('vault provider (KV v2, loopback stand-in)', () => {
  let vault: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    vault = await listen((req, res) => {
      if (req.headers['x-vault-token'] !== 'good-token') return json(res, 403, { errors: ['permission denied'] });
      if (req.url === '/v1/kv/data/web/db') return json(res, 200, { data: { data: { password: SECRET_VALUE }, metadata: { version: 3 } } });
      if (req.url === '/v1/kv/data/web/deleted')
        return json(res, 404, { data: { data: null, metadata: { deletion_time: '2026-01-01T00:00:00Z' } } });
      if (req.url === '/v1/team/data/ns-only' && req.headers['x-vault-namespace'] === 'eu')
        return json(res, 200, { data: { data: { k: 'v' } } });
      if (req.url === '/v1/broken/data/x') return json(res, 500, { errors: [] });
      return json(res, 404, { errors: [] });
    });
  });
  afterAll(() => vault.server.close());
  const ctx = { cluster: 'eu-west-1', fleetDir: tmpdir() };

  it('present, missing key, missing path, deleted version', async () => {
    const p = createSecretPresence({ env: { VAULT_ADDR: vault.url, VAULT_TOKEN: 'good-token' } });
    expect(await p.has('vault:kv/web/db#password', ctx)).toBe('present');
    expect(await p.has('vault:kv/web/db#username', ctx)).toBe('missing');
    expect(await p.has('vault:kv/web/nothing#password', ctx)).toBe('missing');
    expect(await p.has('vault:kv/web/deleted#password', ctx)).toBe('missing');
  });

  it('reads each secret path once, whatever the key and the cluster', async () => {
    const p = createSecretPresence({ env: { VAULT_ADDR: vault.url, VAULT_TOKEN: 'good-token' } });
    const before = vault.requests.length;
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        p.has(`vault:kv/web/db#${i % 2 ? 'password' : 'username'}`, { cluster: `c${i}`, fleetDir: tmpdir() }),
      ),
    );
    expect(vault.requests.length - before).toBe(1);
    expect(vault.requests.at(-1)).toBe('GET /v1/kv/data/web/db');
  });

  it('takes the address and token variable from the cluster target, and a namespace', async () => {
    const p = createSecretPresence({
      env: { EU_VAULT_TOKEN: 'good-token' },
      clusters: { 'eu-west-1': { target: { vault: { address: vault.url, tokenEnv: 'EU_VAULT_TOKEN', namespace: 'eu' } } } },
    });
    expect(await p.has('vault:team/ns-only#k', ctx)).toBe('present');
    expect(await p.has('vault:team/ns-only#k', { ...ctx, cluster: 'us-east-1' })).toEqual({
      error: 'no Vault address: set target.vault.address or VAULT_ADDR',
    });
  });

  it('a refused token, a server error, no token and an unreachable server are errors, not "missing"', async () => {
    const bad = createSecretPresence({ env: { VAULT_ADDR: vault.url, VAULT_TOKEN: 'bad-token' } });
    expect(await bad.has('vault:kv/web/db#password', ctx)).toEqual({
      error: expect.stringMatching(/permission denied \(HTTP 403\)/) as unknown,
    });
    const good = createSecretPresence({ env: { VAULT_ADDR: vault.url, VAULT_TOKEN: 'good-token' } });
    expect(await good.has('vault:broken/x#k', ctx)).toEqual({ error: expect.stringMatching(/HTTP 500/) as unknown });
    const none = createSecretPresence({ env: { VAULT_ADDR: vault.url } });
    expect(await none.has('vault:kv/web/db#password', ctx)).toEqual({ error: 'no Vault token: set the environment variable VAULT_TOKEN' });
    const down = createSecretPresence({ env: { VAULT_ADDR: 'http://127.0.0.1:1', VAULT_TOKEN: 'good-token' } });
    expect(await down.has('vault:kv/web/db#password', ctx)).toEqual({
      error: expect.stringMatching(/cannot reach http:\/\/127\.0\.0\.1:1/) as unknown,
    });
  });

  it('never returns or mentions the value', async () => {
    const p = createSecretPresence({ env: { VAULT_ADDR: vault.url, VAULT_TOKEN: 'good-token' } });
    const answers = await Promise.all(['password', 'x'].map((k) => p.has(`vault:kv/web/db#${k}`, ctx)));
    expect(JSON.stringify(answers)).not.toContain(SECRET_VALUE);
  });

  it('times out on a server that never answers', async () => {
    const silent = await listen(() => undefined);
    try {
      const p = createSecretPresence({ env: { VAULT_ADDR: silent.url, VAULT_TOKEN: 't' }, timeoutMs: 100 });
      expect(await p.has('vault:kv/a/b#c', ctx)).toEqual({ error: expect.stringMatching(/did not answer within 100 ms/) as unknown });
    } finally {
      silent.server.closeAllConnections();
      silent.server.close();
    }
  });
});

describe('kubernetes provider (loopback stand-in for the API server)', () => {
  let api: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    api = await listen((req, res) => {
      if (req.headers.authorization !== 'Bearer kube-token') return json(res, 401, { kind: 'Status', code: 401 });
      if (req.url === '/api/v1/namespaces/shop/secrets/web-db') {
        return json(res, 200, {
          kind: 'Secret',
          apiVersion: 'v1',
          metadata: { name: 'web-db' },
          data: { password: Buffer.from(SECRET_VALUE).toString('base64') },
        });
      }
      if (req.url === '/api/v1/namespaces/shop/secrets/not-a-secret') return json(res, 200, { kind: 'ConfigMap' });
      return json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
    });
  });
  afterAll(() => api.server.close());
  const ctx = { cluster: 'us-east-1', fleetDir: tmpdir() };

  it('present, missing key, missing secret; server and token from the target', async () => {
    const p = createSecretPresence({
      env: { US_KUBE_TOKEN: 'kube-token' },
      clusters: { 'us-east-1': { target: { kubernetes: { server: api.url, tokenEnv: 'US_KUBE_TOKEN' } } } },
    });
    expect(await p.has('k8s:shop/web-db#password', ctx)).toBe('present');
    expect(await p.has('k8s:shop/web-db#username', ctx)).toBe('missing');
    expect(await p.has('k8s:shop/other#password', ctx)).toBe('missing');
    expect(api.requests).toContain('GET /api/v1/namespaces/shop/secrets/web-db');
    expect(api.requests.filter((r) => r.endsWith('/web-db'))).toHaveLength(1);
  });

  it('server and token from the environment; a refused token or a non-Secret is an error', async () => {
    const p = createSecretPresence({ env: { KUBERNETES_SERVER: api.url, KUBERNETES_TOKEN: 'kube-token' } });
    expect(await p.has('k8s:shop/web-db#password', ctx)).toBe('present');
    expect(await p.has('k8s:shop/not-a-secret#x', ctx)).toEqual({ error: expect.stringMatching(/not a Secret/) as unknown });
    const bad = createSecretPresence({ env: { KUBERNETES_SERVER: api.url, KUBERNETES_TOKEN: 'wrong' } });
    expect(await bad.has('k8s:shop/web-db#password', ctx)).toEqual({
      error: expect.stringMatching(/permission denied \(HTTP 401\)/) as unknown,
    });
    const none = createSecretPresence({ env: {} });
    expect(await none.has('k8s:shop/web-db#password', ctx)).toHaveProperty('error');
  });
});
