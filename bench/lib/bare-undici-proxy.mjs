// The "bare undici" peer of bench/router-throughput.ts: a reverse proxy in ~40 lines, with the same
// upstream API as the Meridian router (undici Pool.stream into the response), weighted random choice of
// two upstreams, hop-by-hop headers stripped, X-Forwarded-For appended. No routing, health or metrics.
// Usage: node bench/lib/bare-undici-proxy.mjs PORT HOST:PORT:WEIGHT HOST:PORT:WEIGHT
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, ...specs] = process.argv.slice(2);
const ups = specs.map((s) => {
  const [host, p, w] = s.split(':');
  return { pool: new Pool(`http://${host}:${p}`, { connections: 256 }), weight: Number(w ?? 1) };
});
const total = ups.reduce((a, u) => a + u.weight, 0);
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];

function pick() {
  let x = Math.random() * total;
  for (const u of ups) if ((x -= u.weight) < 0) return u.pool;
  return ups[ups.length - 1].pool;
}

createServer((req, res) => {
  const h = req.headers;
  for (const k of HOP) if (h[k] !== undefined) delete h[k];
  h['x-forwarded-for'] = h['x-forwarded-for'] ? `${h['x-forwarded-for']}, ${req.socket.remoteAddress}` : req.socket.remoteAddress;
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pick().stream(
    { path: req.url, method: req.method, headers: h, body, opaque: res },
    ({ statusCode, headers, opaque }) => {
      for (const k of HOP) if (headers[k] !== undefined) delete headers[k];
      opaque.writeHead(statusCode, headers);
      return opaque;
    },
    (err, { opaque }) => {
      if (err && !opaque.headersSent) opaque.writeHead(502).end();
    },
  );
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
