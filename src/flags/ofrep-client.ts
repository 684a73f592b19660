/**
 * The OFREP client the router uses to learn flag state: it polls the bulk endpoint with `If-None-Match`
 * (default every 250 ms), reads every flag's per-region gates from the evaluation metadata, and reports a
 * change. When the endpoint is down, answers garbage or refuses the token (401/403, `meridian serve
 * --ofrep-auth`) it keeps the last state it had and says so once, with how to fix a refusal.
 */
import type { FlagGate } from '../routing/state.js';
import { OFREP_BULK_PATH } from './ofrep-handler.js';

/** flag → region → gate, as the routing state takes it. */
export type FlagGates = Readonly<Record<string, Readonly<Record<string, FlagGate>>>>;

export interface FlagPollerOptions {
  /** The OFREP server: its base URL (`http://127.0.0.1:7070/`) or the bulk endpoint's URL. */
  readonly url: string;
  /** Time between polls, ms (default 250). */
  readonly intervalMs?: number;
  /** A poll that takes longer is abandoned, ms (default 1000). */
  readonly timeoutMs?: number;
  /**
   * Before the first answer, polls that time out are not logged for this long, ms (default 5000): a
   * process that starts a whole fleet (`meridian up`) is busy then. Other failures are logged at once.
   */
  readonly startGraceMs?: number;
  /** Headers sent with every poll. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A bearer token sent as `Authorization: Bearer …` (for `meridian serve --ofrep-auth`). */
  readonly token?: string | undefined;
  /** Called with the new gates whenever they change (and after the first successful poll). */
  readonly onChange: (gates: FlagGates) => void;
  readonly log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** The result of one poll. */
export type PollOutcome = 'changed' | 'unchanged' | 'error';

/** Resolves a base URL or a bulk URL to the bulk endpoint's URL. */
export function bulkUrl(url: string): string {
  const u = new URL(url);
  if (!u.pathname.endsWith(OFREP_BULK_PATH)) u.pathname = `${u.pathname.replace(/\/+$/, '')}${OFREP_BULK_PATH}`;
  return u.toString();
}

/**
 * Reads the per-region gates out of an OFREP bulk response (`metadata["regions.<r>.enabled"]` and
 * `["regions.<r>.percent"]`, as src/flags/evaluate.ts writes them). Flags without gate metadata, and
 * failed evaluations, are left out. Throws when the body is not a bulk response.
 */
export function gatesFromBulk(body: unknown): Record<string, Record<string, FlagGate>> {
  const flags = body && typeof body === 'object' ? (body as { flags?: unknown }).flags : undefined;
  if (!Array.isArray(flags)) throw new Error('the answer is not an OFREP bulk evaluation (no "flags" list)');
  const out: Record<string, Record<string, FlagGate>> = {};
  for (const f of flags as unknown[]) {
    if (!f || typeof f !== 'object') continue;
    const { key, metadata } = f as { key?: unknown; metadata?: unknown };
    if (typeof key !== 'string' || !metadata || typeof metadata !== 'object') continue;
    const gates: Record<string, FlagGate> = {};
    for (const [k, v] of Object.entries(metadata as Record<string, unknown>)) {
      const m = /^regions\.(.+)\.enabled$/.exec(k);
      if (!m || typeof v !== 'boolean') continue;
      const region = m[1] as string;
      const percent = (metadata as Record<string, unknown>)[`regions.${region}.percent`];
      gates[region] = { enabled: v, percent: typeof percent === 'number' && Number.isFinite(percent) ? percent : 100 };
    }
    if (Object.keys(gates).length > 0) out[key] = gates;
  }
  return out;
}

/** Polls an OFREP bulk endpoint for flag gates. */
export class FlagPoller {
  readonly url: string;
  readonly intervalMs: number;
  #etag: string | null = null;
  #gates: FlagGates | null = null;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #failing = false;
  /** A failure was logged and no answer has come since (so its recovery is logged too). */
  #logged = false;
  #answered = false;
  readonly #startedAt = Date.now();
  #polls = 0;
  readonly #opts: FlagPollerOptions;

  constructor(opts: FlagPollerOptions) {
    this.url = bulkUrl(opts.url);
    this.intervalMs = opts.intervalMs ?? 250;
    if (!(this.intervalMs > 0)) throw new RangeError(`the flag polling interval must be positive, not ${this.intervalMs}`);
    this.#opts = opts;
  }

  /** The last gates received, or null before the first successful poll. */
  get gates(): FlagGates | null {
    return this.#gates;
  }

  /** Whether the last poll failed (the last good gates stay in use). */
  get failing(): boolean {
    return this.#failing;
  }

  /** Polls completed (successful or not). */
  get polls(): number {
    return this.#polls;
  }

  /** Starts polling now and then every `intervalMs` after each poll ends. */
  start(): this {
    if (this.#running) return this;
    this.#running = true;
    const loop = (): void => {
      void this.poll().finally(() => {
        if (this.#running) {
          this.#timer = setTimeout(loop, this.intervalMs);
          this.#timer.unref();
        }
      });
    };
    loop();
    return this;
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** One poll: a 304 changes nothing; a 200 whose gates differ calls `onChange`; a failure keeps the last gates. */
  async poll(): Promise<PollOutcome> {
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.#etag !== null ? { 'if-none-match': this.#etag } : {}),
          ...this.#opts.headers,
          ...(this.#opts.token ? { authorization: `Bearer ${this.#opts.token}` } : {}),
        },
        body: '{"context":{}}',
        signal: AbortSignal.timeout(this.#opts.timeoutMs ?? 1000),
      });
      if (res.status === 304) {
        await res.body?.cancel();
        return this.#ok('unchanged');
      }
      if (res.status === 401 || res.status === 403) throw new Error(await this.#refusal(res));
      if (res.status !== 200) {
        const text = (await res.text()).slice(0, 300);
        throw new Error(`HTTP ${res.status}${text ? `: ${text}` : ''}`);
      }
      const gates = gatesFromBulk(await res.json());
      this.#etag = res.headers.get('etag');
      if (this.#gates !== null && JSON.stringify(gates) === JSON.stringify(this.#gates)) return this.#ok('unchanged');
      this.#gates = gates;
      this.#opts.onChange(gates);
      return this.#ok('changed');
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const starting = !this.#answered && timedOut && Date.now() - this.#startedAt < (this.#opts.startGraceMs ?? 5000);
      if (!this.#logged && !starting) {
        this.#logged = true;
        this.#opts.log?.(
          'warn',
          `flags: cannot poll ${this.url} (${err instanceof Error ? err.message : String(err)}); keeping the ${this.#gates ? 'last' : "fleet file's"} flag state until it answers`,
        );
      }
      this.#failing = true;
      this.#polls++;
      return 'error';
    }
  }

  /** The message for a 401/403: what the server says (OFREP's `errorDetails`) and what to do about it. */
  async #refusal(res: Response): Promise<string> {
    const text = await res.text();
    let details = text.slice(0, 300);
    try {
      // meridian serve also sends its own error; its message alone, since the fix below replaces its hint
      const body = JSON.parse(text) as { errorDetails?: unknown; error?: { message?: unknown } };
      if (typeof body.error?.message === 'string') details = body.error.message;
      else if (typeof body.errorDetails === 'string') details = body.errorDetails;
    } catch {
      // not JSON: the text as it is
    }
    const fix =
      res.status === 403
        ? 'the token has no role that may read flags; give the router a viewer token'
        : this.#opts.token
          ? 'the token was refused (revoked, expired or unknown); create another with `meridian token create --role viewer --name router` and restart the router with it in MERIDIAN_FLAGS_TOKEN'
          : 'the OFREP server needs a token (`meridian serve --ofrep-auth`); create one with `meridian token create --role viewer --name router` and start the router with it in MERIDIAN_FLAGS_TOKEN (or --flags-token)';
    return `HTTP ${res.status}${details ? `: ${details}` : ''} — ${fix}`;
  }

  #ok(outcome: PollOutcome): PollOutcome {
    if (this.#logged) this.#opts.log?.('info', `flags: ${this.url} answers again`);
    this.#logged = false;
    this.#failing = false;
    this.#answered = true;
    this.#polls++;
    return outcome;
  }
}

/** What the router offers for flags (structurally: src/router/router.ts `Router`). */
export interface FlagGateSink {
  setFlags(flags: FlagGates | undefined): void;
  /** Builds the pending routing table now (the atomic swap). */
  flush(force?: boolean): number;
}

/**
 * Feeds a router from an OFREP endpoint: every change of the gates replaces the router's flag state and
 * builds its tables at once (an atomic swap). Returns the started poller; stop it before closing the router.
 */
export function followFlags(router: FlagGateSink, opts: Omit<FlagPollerOptions, 'onChange'>): FlagPoller {
  return new FlagPoller({
    ...opts,
    onChange: (gates) => {
      router.setFlags(gates);
      router.flush();
    },
  }).start();
}
