/**
 * The route table's types and the matching of a request to a route. The table (src/server/routes.ts)
 * is the one source the server dispatches from and the OpenAPI document is built from.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { Actor } from '../store/store.js';
import { ApiError } from './api-error.js';
import type { Identity, Permission } from './auth/roles.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What a handler gets. */
export interface RouteContext<B> {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly params: Readonly<Record<string, string>>;
  readonly body: B;
  /** null only on public routes. */
  readonly identity: Identity | null;
  /** The identity as the audit log records it. */
  readonly actor: Actor;
  /** Whether the request's credentials still hold now (not revoked, not expired): long-lived streams ask again. */
  readonly stillValid: () => Promise<boolean>;
}

/** A query parameter, for the document. */
export interface QueryParam {
  readonly name: string;
  readonly description: string;
  readonly type: 'string' | 'integer';
}

/** How a route answers: JSON of a schema, text, or an event stream (the handler writes it itself). */
export type RouteResponse =
  | { readonly kind: 'json'; readonly schema: z.ZodType; readonly status?: number }
  | { readonly kind: 'text'; readonly contentType: string }
  | { readonly kind: 'sse' }
  | { readonly kind: 'static' };

/** One route of the API. */
export interface RouteSpec<B = unknown> {
  readonly method: Method;
  /** OpenAPI style: `/api/v1/rollouts/{id}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly tag: string;
  /** null: public (no token needed). */
  readonly permission: Permission | null;
  /** Says what the permission is for, in a 403's message ("approve a rollout"). */
  readonly action?: string;
  readonly body?: z.ZodType<B>;
  readonly query?: readonly QueryParam[];
  readonly response: RouteResponse;
  /** Error statuses the route may answer with, besides 401/403 (documented). */
  readonly errors?: readonly number[];
  /** Returns the JSON body (or a string for text routes), or undefined when it wrote the response itself. */
  handle(ctx: RouteContext<B>): Promise<unknown>;
}

/** A route with its compiled path pattern. */
export interface CompiledRoute {
  readonly spec: RouteSpec;
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

/** Compiles `{name}` segments into a pattern. */
export function compile(spec: RouteSpec): CompiledRoute {
  const names: string[] = [];
  const source = spec.path
    .split('/')
    .map((seg) => {
      const m = /^\{(\w+)\}$/.exec(seg);
      if (!m) return seg.replace(/[.+?^${}()|[\]\\*]/g, '\\$&');
      names.push(m[1] as string);
      return '([^/]+)';
    })
    .join('/');
  return { spec, pattern: new RegExp(`^${source}$`), names };
}

/** Finds the route of a method and path; `allowed` lists the methods of a path that exists with others. */
export function match(
  routes: readonly CompiledRoute[],
  method: string,
  path: string,
): { route: CompiledRoute; params: Record<string, string> } | { route: null; allowed: Method[] } {
  const allowed: Method[] = [];
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    if (r.spec.method !== method && !(method === 'HEAD' && r.spec.method === 'GET')) {
      allowed.push(r.spec.method);
      continue;
    }
    const params: Record<string, string> = {};
    r.names.forEach((n, i) => {
      params[n] = decodeParam(m[i + 1] ?? '');
    });
    return { route: r, params };
  }
  return { route: null, allowed };
}

/** A path segment, percent-decoded; a malformed escape (`%ZZ`, a cut UTF-8 sequence) is the client's error: 400. */
function decodeParam(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError('MERIDIAN_E_API_BAD_REQUEST', `the path segment ${JSON.stringify(segment)} is not valid percent-encoded UTF-8`, {
      hint: 'encode names with encodeURIComponent (every % starts an escape of two hex digits)',
    });
  }
}
