/** The control-plane API as the page calls it: the bearer token from sessionStorage, typed errors, and the event stream. */

const KEY = 'meridian.token';

/** The token this tab signed in with, or null. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** @param {string | null} t */
export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

/**
 * Takes a token from the URL fragment (`#token=…`), keeps it, and removes it from the address bar and
 * history so it is not bookmarked or shared by accident.
 */
export function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m || !m[1]) return;
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

/** An API error: the server's `{ error: { code, message, hint } }`, with the HTTP status. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message @param {string | undefined} hint */
  constructor(status, code, message, hint) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
  }
}

/**
 * Calls the API. Resolves with the parsed JSON body; rejects with an ApiError.
 * @param {string} path under /api/v1, e.g. `/rollouts`
 * @param {{ method?: string, body?: unknown }} [opts]
 */
export async function api(path, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `the server does not answer (${err instanceof Error ? err.message : String(err)})`, undefined);
  }
  const text = await res.text();
  /** @type {unknown} */
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const e = body && typeof body === 'object' && 'error' in body ? /** @type {{error: Record<string, unknown>}} */ (body).error : {};
    throw new ApiError(
      res.status,
      typeof e.code === 'string' ? e.code : `HTTP_${res.status}`,
      typeof e.message === 'string' ? e.message : `${res.status} ${res.statusText}`,
      typeof e.hint === 'string' ? e.hint : undefined,
    );
  }
  return body;
}

/**
 * Subscribes to the event stream (EventSource cannot send headers, so the token goes as `access_token`).
 * EventSource reconnects by itself after a dropped connection (sending Last-Event-ID); when it gives up —
 * the server was down and refused the connection, or answered with an error — this opens a new one with
 * backoff (1 s doubling to 30 s). `onState` hears 'live' and 'reconnecting'.
 * @param {readonly string[]} names event names to listen to
 * @param {(name: string, data: unknown) => void} onEvent
 * @param {(state: 'live' | 'reconnecting') => void} onState
 * @returns {() => void} closes the stream
 */
export function subscribe(names, onEvent, onState) {
  /** @type {EventSource | null} */
  let es = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let retry = null;
  let backoff = 1000;
  let closed = false;
  const open = () => {
    const t = token();
    const source = new EventSource(`/api/v1/events${t ? `?access_token=${encodeURIComponent(t)}` : ''}`);
    es = source;
    source.addEventListener('open', () => {
      backoff = 1000;
      onState('live');
    });
    source.addEventListener('error', () => {
      onState('reconnecting');
      if (source.readyState !== EventSource.CLOSED || closed) return;
      retry = setTimeout(open, backoff);
      backoff = Math.min(backoff * 2, 30_000);
    });
    for (const n of names) {
      source.addEventListener(n, (e) => {
        let data = null;
        try {
          data = JSON.parse(/** @type {MessageEvent} */ (e).data);
        } catch {
          data = null;
        }
        onEvent(n, data);
      });
    }
  };
  open();
  return () => {
    closed = true;
    if (retry) clearTimeout(retry);
    es?.close();
  };
}
