/**
 * Serves a directory of static files (the dashboard) for GET and HEAD: `/` is `index.html`, paths
 * never leave the directory, and a path without a file extension that is not found falls back to
 * `index.html` (client-side routes). Everything is revalidated (`no-cache`: asset names are not
 * content-hashed); HTML pages get a strict Content-Security-Policy (the dashboard sets styles only
 * through the CSSOM and loads nothing from elsewhere).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { vendorFile, vendorLicences } from './vendor-assets.js';

/** The policy sent with HTML pages. */
export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** A request handler for `dir`; returns false when it did not answer (not GET/HEAD, or nothing to serve). */
export function staticHandler(dir: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  const root = resolve(dir);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return false;
    }
    if (path.startsWith(VENDOR_PREFIX)) return serveVendor(path.slice(VENDOR_PREFIX.length), req, res);
    const wanted = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
    if (wanted !== root && !wanted.startsWith(root + sep)) return false;
    let file = wanted;
    if (!isFile(file)) {
      if (extname(path) !== '') return false;
      file = join(root, 'index.html');
      if (!isFile(file)) return false;
    }
    const st = statSync(file);
    const type = TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, {
      'content-type': type,
      'content-length': st.size,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      ...(type.startsWith('text/html') ? { 'content-security-policy': DASHBOARD_CSP, 'referrer-policy': 'no-referrer' } : {}),
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
    return true;
  };
}

const VENDOR_PREFIX = '/assets/vendor/';

/** The dashboard's third-party files, from the installed packages (src/server/vendor-assets.ts). */
function serveVendor(name: string, req: IncomingMessage, res: ServerResponse): boolean {
  const headers = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
  if (name === 'LICENSES.txt') {
    const text = vendorLicences();
    res.writeHead(200, { ...headers, 'content-type': TYPES['.txt'], 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
    return true;
  }
  const file = vendorFile(name);
  if (!file) return false;
  res.writeHead(200, {
    ...headers,
    'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': statSync(file).size,
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
  return true;
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

/** The dashboard's directory: src/server/dashboard beside this module (dist/server/dashboard when built, if copied there). */
export function dashboardDir(): string {
  const here = new URL('.', import.meta.url).pathname;
  const built = join(here, 'dashboard');
  if (existsSync(join(built, 'index.html'))) return built;
  // running from dist/: the assets stay in the source tree
  return resolve(here, '..', '..', 'src', 'server', 'dashboard');
}
