/**
 * A small GET-JSON client on node:http/https for the Vault and Kubernetes stores (node:https takes a
 * private CA, which servers of both usually have). Bodies hold secret values: callers read key names
 * from them and drop them; nothing here logs or returns text from a body.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface GetOptions {
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** PEM of the CA to trust, for https. */
  readonly ca?: string;
}

export type GetResult = { readonly status: number; readonly json: unknown } | { readonly error: string };

const MAX_BODY = 4 * 1024 * 1024;

export function getJson(url: string, opts: GetOptions): Promise<GetResult> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve({ error: `${url} is not a URL` });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return Promise.resolve({ error: `${u.origin}: only http and https are supported` });
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolvePromise) => {
    let settled = false;
    const done = (r: GetResult): void => {
      if (settled) return;
      settled = true;
      resolvePromise(r);
    };
    const req = request(
      u,
      { method: 'GET', headers: { accept: 'application/json', ...opts.headers }, ...(opts.ca ? { ca: opts.ca } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            req.destroy();
            done({ error: `${u.origin} answered with more than ${MAX_BODY} bytes` });
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let json: unknown = null;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          } catch {
            json = null;
          }
          chunks.length = 0;
          done({ status, json });
        });
        res.on('error', (err: NodeJS.ErrnoException) => done({ error: `${u.origin}: ${err.code ?? 'response error'}` }));
      },
    );
    req.setTimeout(opts.timeoutMs, () => {
      req.destroy();
      done({ error: `${u.origin} did not answer within ${opts.timeoutMs} ms` });
    });
    req.on('error', (err: NodeJS.ErrnoException) => done({ error: `cannot reach ${u.origin} (${err.code ?? err.message})` }));
    req.end();
  });
}
