/**
 * A {@link Target} over the network: the control API that `meridian up` serves (src/targets/local/
 * control-api.ts), and the traffic control of its router. A rollout in another process drives the local
 * fleet through this, as it would drive a remote cluster's driver.
 */
import { isErrorCode, isErrorCodeOf } from '../error-codes.js';
import { MeridianError } from '../errors.js';
import { TargetError } from './errors.js';
import type { CanaryWeights } from './canary-weights.js';
import type { ControlDrain } from './local/control-api.js';
import type {
  ApplyRequest,
  ClusterStatus,
  Endpoint,
  RemoveRequest,
  Target,
  TargetEvent,
  TargetEventListener,
  TargetKind,
} from './target.js';

export interface RemoteTargetOptions {
  /** The control API's base URL (`http://127.0.0.1:PORT/`). */
  readonly url: string;
  readonly token: string;
  /** The kind of driver behind the API (default `local`). */
  readonly kind?: TargetKind;
  /** Per request (default 30 s). */
  readonly timeoutMs?: number;
}

/** A driver reached over HTTP. `endpoints()` answers from the last `status()`/`refreshEndpoints()` of the cluster. */
export class RemoteTarget implements Target {
  readonly kind: TargetKind;
  readonly #base: string;
  readonly #auth: string;
  readonly #timeoutMs: number;
  readonly #endpoints = new Map<string, readonly Endpoint[]>();
  readonly #listeners = new Set<TargetEventListener>();
  #stream: AbortController | null = null;

  constructor(opts: RemoteTargetOptions) {
    this.kind = opts.kind ?? 'local';
    this.#base = opts.url.endsWith('/') ? opts.url : `${opts.url}/`;
    this.#auth = `Bearer ${opts.token}`;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async apply(req: ApplyRequest): Promise<void> {
    await this.call('POST', 'v1/apply', req);
  }

  async remove(req: RemoveRequest): Promise<void> {
    await this.call('POST', 'v1/remove', req);
  }

  async status(cluster: string): Promise<ClusterStatus> {
    const s = (await this.call('GET', `v1/status?cluster=${encodeURIComponent(cluster)}`)) as ClusterStatus;
    void this.refreshEndpoints(cluster).catch(() => undefined);
    return s;
  }

  endpoints(cluster: string): readonly Endpoint[] {
    return this.#endpoints.get(cluster) ?? [];
  }

  /** Fetches a cluster's endpoints (what {@link endpoints} answers from afterwards). */
  async refreshEndpoints(cluster: string): Promise<readonly Endpoint[]> {
    const list = (await this.call('GET', `v1/endpoints?cluster=${encodeURIComponent(cluster)}`)) as Endpoint[];
    this.#endpoints.set(cluster, list);
    return list;
  }

  subscribe(listener: TargetEventListener): () => void {
    this.#listeners.add(listener);
    if (!this.#stream) this.#openStream();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#stream?.abort();
        this.#stream = null;
      }
    };
  }

  close(): Promise<void> {
    this.#stream?.abort();
    this.#stream = null;
    this.#listeners.clear();
    return Promise.resolve();
  }

  /** The router's traffic control through the same API. */
  traffic(): CanaryWeights {
    return {
      setCanary: async (service, cluster, weight, version) => {
        await this.call('POST', 'v1/traffic/canary', { service, cluster, weight, version });
      },
      clear: async (service, cluster) => {
        await this.call('POST', 'v1/traffic/clear', { service, cluster });
      },
      setRevision: async (revision) => {
        await this.call('POST', 'v1/router/revision', { revision });
      },
    };
  }

  /**
   * Drains (or undrains) a cluster or a region in the router (`POST /v1/router/drain`), in force on
   * return. Answers the drains told through the API since it started.
   */
  async drain(order: { kind: 'cluster' | 'region'; name: string; drained: boolean; reason?: string | undefined }): Promise<ControlDrain[]> {
    const res = (await this.call('POST', 'v1/router/drain', order)) as { drained: ControlDrain[] };
    return res.drained;
  }

  /** Sets the router's restore ramps, all of them (`POST /v1/router/ramp`, place → percent); in force on return. */
  async ramp(ramp: Readonly<Record<string, number>>): Promise<void> {
    await this.call('POST', 'v1/router/ramp', { ramp });
  }

  /** The restore ramps told to the router through the API (`GET /v1/router/ramp`), keys in order. */
  async ramps(): Promise<Record<string, number>> {
    return ((await this.call('GET', 'v1/router/ramp')) as { ramp: Record<string, number> }).ramp;
  }

  /** The drains told to the router through the API since it started (`GET /v1/router/drained`). */
  async drains(): Promise<ControlDrain[]> {
    return ((await this.call('GET', 'v1/router/drained')) as { drained: ControlDrain[] }).drained;
  }

  /** The router's Prometheus text (its counters, for analysis). */
  async routerMetrics(): Promise<string> {
    return (await this.call('GET', 'v1/router/metrics', undefined, true)) as string;
  }

  async call(method: 'GET' | 'POST', path: string, body?: unknown, text = false): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.#base), {
        method,
        headers: { authorization: this.#auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new TargetError('MERIDIAN_E_TARGET_UNREACHABLE', `cannot reach the fleet's control API at ${this.#base} (${causeOf(err)})`, {
        cause: err,
        hint: 'start the local fleet with `meridian up` (it writes its address to .meridian/up.json), or pass --control URL',
      });
    }
    const raw = await res.text();
    if (!res.ok) {
      let info: { error?: string; message?: string; hint?: string | null } = {};
      try {
        info = JSON.parse(raw) as typeof info;
      } catch {
        info = { message: raw.slice(0, 300) };
      }
      // the code as the control API sent it, when it is one of ours; raised again by its class
      const known = typeof info.error === 'string' && isErrorCode(info.error) ? info.error : undefined;
      const code = known ?? 'MERIDIAN_E_TARGET_REMOTE';
      const message = `${known === undefined && info.error ? `${info.error}: ` : ''}${info.message ?? `HTTP ${res.status}`} (from ${this.#base})`;
      const opts = info.hint ? { hint: info.hint } : {};
      if (isErrorCodeOf(code, 'TargetError', 'SecretResolutionError')) throw new TargetError(code, message, opts);
      throw new MeridianError(code, message, opts);
    }
    if (text) return raw;
    return raw === '' ? undefined : (JSON.parse(raw) as unknown);
  }

  #openStream(): void {
    const ctl = new AbortController();
    this.#stream = ctl;
    void (async () => {
      try {
        const res = await fetch(new URL('v1/events', this.#base), { headers: { authorization: this.#auth }, signal: ctl.signal });
        if (!res.ok || !res.body) return;
        const decoder = new TextDecoder();
        let buf = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame
              .split('\n')
              .filter((l) => l.startsWith('data: '))
              .map((l) => l.slice(6))
              .join('\n');
            if (!data) continue;
            const event = JSON.parse(data) as TargetEvent;
            for (const l of this.#listeners) {
              try {
                l(event);
              } catch {
                // a listener's failure must not end the stream
              }
            }
          }
        }
      } catch {
        // aborted, or the fleet went away
      }
    })();
  }
}

/** A failed fetch's message with its cause (`fetch failed: connect ECONNREFUSED …`): undici's own message says only `fetch failed`. */
function causeOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e.cause?.message
    ? `: ${e.cause.message}${e.cause.code && !e.cause.message.includes(e.cause.code) ? ` (${e.cause.code})` : ''}`
    : '';
  return `${e.message}${cause}`;
}
