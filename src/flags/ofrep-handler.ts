/**
 * The OpenFeature Remote Evaluation Protocol (OFREP) over HTTP, as a request handler that any node:http
 * server can mount (`meridian up` mounts it on its control API, `meridian serve` too, behind its token
 * authentication with `--ofrep-auth`):
 *
 * - `POST /ofrep/v1/evaluate/flags/{key}`: one flag; 404 FLAG_NOT_FOUND, 400 INVALID_CONTEXT,
 *   TARGETING_KEY_MISSING or PARSE_ERROR, 500 with `errorDetails`;
 * - `POST /ofrep/v1/evaluate/flags`: every flag, with an `ETag`; `If-None-Match` with the same tag → 304;
 * - `GET /ofrep/v1/configuration`: the polling capabilities.
 *
 * The flag state is read from a {@link FlagSource} on every request, so a change is served at once.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { evaluateAll, evaluateFlag, isFailure, parseContext, type EvaluationContext } from './evaluate.js';
import { suggestName } from './errors.js';
import type { FlagState } from './flag-state.js';

/** Where the handler reads the current flag state from (the store, or a fixed state in tests). */
export interface FlagSource {
  load(): Promise<FlagState>;
}

export interface OfrepHandlerOptions {
  /** The smallest polling interval clients are told to use, ms (default 250). */
  readonly minPollingIntervalMs?: number;
  /** Called with errors that become a 500 answer. */
  readonly onError?: (err: unknown) => void;
}

/** Serves OFREP requests; returns false (and does nothing) for a path outside `/ofrep/`, so the caller can go on. */
export type OfrepHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** The path of the bulk evaluation endpoint. */
export const OFREP_BULK_PATH = '/ofrep/v1/evaluate/flags';
const MAX_BODY = 64 * 1024;

/** Creates the OFREP handler over a flag source. */
export function ofrepHandler(source: FlagSource, opts: OfrepHandlerOptions = {}): OfrepHandler {
  const minPolling = opts.minPollingIntervalMs ?? 250;
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (!path.startsWith('/ofrep/')) return false;
    void serve(req, res, path).catch((err: unknown) => {
      opts.onError?.(err);
      if (res.headersSent) res.destroy();
      else send(res, 500, { errorDetails: `the flag state could not be read: ${err instanceof Error ? err.message : String(err)}` });
    });
    return true;
  };

  async function serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === '/ofrep/v1/configuration') {
      if (req.method !== 'GET') return notAllowed(res, 'GET');
      return send(res, 200, {
        name: 'meridian',
        capabilities: {
          cacheInvalidation: { polling: { enabled: true, minPollingIntervalMs: minPolling } },
          flagEvaluation: { supportedTypes: ['boolean'] },
        },
      });
    }
    if (path === OFREP_BULK_PATH) {
      if (req.method !== 'POST') return notAllowed(res, 'POST');
      const ctx = await contextOf(req);
      if ('error' in ctx) return send(res, 400, { errorCode: ctx.code, errorDetails: ctx.error });
      const state = await source.load();
      if (ctx.region !== undefined && !state.regions.includes(ctx.region)) {
        return send(res, 400, { errorCode: 'INVALID_CONTEXT', errorDetails: regionDetails(state, ctx.region) });
      }
      const text = JSON.stringify({ flags: evaluateAll(state, ctx) });
      const etag = `"${createHash('sha256').update(text).digest('hex').slice(0, 32)}"`;
      if (matches(req.headers['if-none-match'], etag)) {
        res.writeHead(304, { etag, 'cache-control': 'no-cache' });
        res.end();
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        etag,
        'cache-control': 'no-cache',
      });
      res.end(text);
      return;
    }
    const prefix = `${OFREP_BULK_PATH}/`;
    if (path.startsWith(prefix) && path.length > prefix.length) {
      if (req.method !== 'POST') return notAllowed(res, 'POST');
      let key: string;
      try {
        key = decodeURIComponent(path.slice(prefix.length));
      } catch {
        return send(res, 400, {
          key: path.slice(prefix.length),
          errorCode: 'PARSE_ERROR',
          errorDetails: 'the flag key in the path is not valid percent-encoding',
        });
      }
      const ctx = await contextOf(req);
      if ('error' in ctx) return send(res, 400, { key, errorCode: ctx.code, errorDetails: ctx.error });
      const e = evaluateFlag(await source.load(), key, ctx);
      if (isFailure(e)) return send(res, e.errorCode === 'FLAG_NOT_FOUND' ? 404 : 400, e);
      return send(res, 200, e);
    }
    return send(res, 404, {
      errorDetails: `no OFREP endpoint ${req.method ?? 'GET'} ${path}; use POST ${OFREP_BULK_PATH} or POST ${OFREP_BULK_PATH}/{key}`,
    });
  }
}

function regionDetails(state: FlagState, region: string): string {
  return `the fleet ${state.fleet} has no region ${JSON.stringify(region)}; ${suggestName('region', region, state.regions)}`;
}

type ContextOrError = EvaluationContext | { readonly error: string; readonly code: 'PARSE_ERROR' | 'INVALID_CONTEXT' };

/** Reads the request body `{"context": {...}}` (an empty body is an empty context). */
async function contextOf(req: IncomingMessage): Promise<ContextOrError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) return { code: 'PARSE_ERROR', error: `the request body is larger than ${MAX_BODY} bytes` };
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return {
      code: 'PARSE_ERROR',
      error: 'the request body is not JSON; send {"context": {"region": "eu-west", "targetingKey": "user-1"}}',
    };
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    return { code: 'PARSE_ERROR', error: 'the request body must be a JSON object like {"context": {...}}' };
  }
  const ctx = parseContext((body as Record<string, unknown>)['context']);
  return 'error' in ctx ? { code: 'INVALID_CONTEXT', error: ctx.error } : ctx;
}

/** Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 says for If-None-Match). */
function matches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const list = (Array.isArray(header) ? header.join(',') : header).split(',').map((t) => t.trim().replace(/^W\//, ''));
  return list.includes('*') || list.includes(etag);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function notAllowed(res: ServerResponse, allow: string): void {
  const text = JSON.stringify({ errorDetails: `use ${allow}` });
  res.writeHead(405, { allow, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
