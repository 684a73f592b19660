/**
 * The event stream (server-sent events) of `GET /api/v1/events`: every event has an id
 * `<epoch>-<n>`, a name (table, routing, health, traffic, rollout, flag, audit) and JSON data. A reconnect with
 * `Last-Event-ID` gets what it missed from a ring buffer; when the id is too old or from another run of
 * the server, it gets the current snapshot of each stream instead (routing is always whole, so a
 * router converges either way). Comments every `heartbeatMs` keep proxies and dead-peer detection awake.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';

/**
 * The event names of the stream. `table` is what routers follow (the routing view without the traffic
 * shares, sent before they are computed); `routing` is the whole view, for dashboards.
 */
export const EVENT_TYPES = ['table', 'routing', 'health', 'traffic', 'rollout', 'flag', 'audit'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** One event as kept and sent. */
export interface HubEvent {
  readonly id: string;
  readonly seq: number;
  readonly type: EventType;
  readonly data: unknown;
}

interface Subscriber {
  readonly res: ServerResponse;
  readonly types: ReadonlySet<EventType>;
  /** Whether the subscriber's credentials still hold (its token not revoked or expired). */
  readonly stillValid?: (() => Promise<boolean>) | undefined;
}

/** Per-subscriber options of {@link EventHub.subscribe}. */
export interface SubscribeOptions {
  /**
   * Asked on every heartbeat and on {@link EventHub.recheck}: when it resolves false the stream ends (the
   * client reconnects, and must authenticate again).
   */
  readonly stillValid?: (() => Promise<boolean>) | undefined;
}

export interface EventHubOptions {
  /** Events kept for resuming (default 2048), and at most this many bytes of them (default 32 MiB). */
  readonly buffer?: number;
  readonly bufferBytes?: number;
  /** Between heartbeats, ms (default 15000). */
  readonly heartbeatMs?: number;
  /** The current state of a stream, sent to a new subscriber that cannot resume (routing, health, traffic). */
  readonly snapshot?: (type: EventType) => unknown;
  readonly onSubscribersChanged?: (count: number) => void;
  readonly onPublish?: (type: EventType, data: unknown) => void;
  /**
   * Bytes a subscriber may have waiting to be sent (default 4 MiB). One that stops reading is disconnected
   * when it passes this, instead of the server buffering everything for it; it resumes with Last-Event-ID.
   */
  readonly maxBacklogBytes?: number;
  /** Subscribers at once (default 1000); one more gets 503. */
  readonly maxSubscribers?: number;
}

/** Default of {@link EventHubOptions.maxBacklogBytes}. */
export const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Default of {@link EventHubOptions.maxSubscribers}. */
export const MAX_SUBSCRIBERS = 1000;

function frame(e: HubEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/** Publishes events to SSE subscribers. */
export class EventHub {
  /** Changes on every start of the server, so that ids of an earlier run are recognised as such. */
  readonly epoch = randomBytes(4).toString('hex');
  /** What is kept for resuming: the event's number and type; its frame is in #frames. */
  readonly #buffer: { readonly seq: number; readonly type: EventType }[] = [];
  readonly #size: number;
  readonly #maxBytes: number;
  /** The frame of each buffered event, by seq (kept once, written to every subscriber and resumer). */
  readonly #frames = new Map<number, string>();
  #bytes = 0;
  readonly #subs = new Set<Subscriber>();
  readonly #timer: NodeJS.Timeout;
  readonly #opts: EventHubOptions;
  #seq = 0;

  constructor(opts: EventHubOptions = {}) {
    this.#opts = opts;
    this.#size = opts.buffer ?? 2048;
    this.#maxBytes = opts.bufferBytes ?? 32 * 1024 * 1024;
    this.#timer = setInterval(() => this.#heartbeat(), opts.heartbeatMs ?? 15_000);
    this.#timer.unref();
  }

  get subscribers(): number {
    return this.#subs.size;
  }

  /** Whether anyone subscribes to `type` now. */
  wants(type: EventType): boolean {
    for (const s of this.#subs) if (s.types.has(type)) return true;
    return false;
  }

  /** Sends an event to every subscriber of its type and keeps it for resuming. */
  publish(type: EventType, data: unknown): HubEvent {
    this.#opts.onPublish?.(type, data);
    const seq = ++this.#seq;
    const e: HubEvent = { id: `${this.epoch}-${seq}`, seq, type, data };
    const text = frame(e);
    this.#buffer.push({ seq, type });
    this.#frames.set(seq, text);
    this.#bytes += text.length;
    while (this.#buffer.length > 1 && (this.#buffer.length > this.#size || this.#bytes > this.#maxBytes)) {
      const old = this.#buffer.shift() as { seq: number };
      this.#bytes -= this.#frames.get(old.seq)?.length ?? 0;
      this.#frames.delete(old.seq);
    }
    for (const s of this.#subs) if (s.types.has(type)) this.#send(s, text);
    return e;
  }

  /**
   * Takes over `res` as a subscriber: writes the headers, what it missed since `lastEventId` (or the
   * snapshots), then every new event of `types` until the client goes away.
   */
  subscribe(res: ServerResponse, types: readonly EventType[], lastEventId: string | null, opts: SubscribeOptions = {}): void {
    const max = this.#opts.maxSubscribers ?? MAX_SUBSCRIBERS;
    if (this.#subs.size >= max) {
      throw new ApiError('MERIDIAN_E_API_UNAVAILABLE', `the event stream has its maximum of ${max} subscribers`, {
        hint: 'try again later; routers and dashboards reconnect by themselves',
      });
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const sub: Subscriber = { res, types: new Set(types), stillValid: opts.stillValid };
    res.write(`retry: 1000\n: meridian events ${this.epoch}\n\n`);
    const missed = this.#since(lastEventId);
    if (missed) {
      for (const e of missed) {
        const text = this.#frames.get(e.seq);
        if (text !== undefined && sub.types.has(e.type)) res.write(text);
      }
      // `routing` is published only while someone watches it; one who missed a table change gets the view now
      const lastTable = missed.findLastIndex((e) => e.type === 'table');
      const lastRouting = missed.findLastIndex((e) => e.type === 'routing');
      if (sub.types.has('routing') && lastTable > lastRouting) {
        const data = this.#opts.snapshot?.('routing');
        if (data !== undefined) res.write(`id: ${this.epoch}-${this.#seq}\nevent: routing\ndata: ${JSON.stringify(data)}\n\n`);
      }
    } else {
      for (const t of types) {
        const data = this.#opts.snapshot?.(t);
        if (data === undefined) continue;
        // a snapshot carries the id of the newest event, so that a later resume starts after it
        res.write(`id: ${this.epoch}-${this.#seq}\nevent: ${t}\ndata: ${JSON.stringify(data)}\n\n`);
      }
    }
    this.#subs.add(sub);
    this.#opts.onSubscribersChanged?.(this.#subs.size);
    res.on('close', () => {
      if (this.#subs.delete(sub)) this.#opts.onSubscribersChanged?.(this.#subs.size);
    });
  }

  /** Ends every stream (on shutdown). */
  close(): void {
    clearInterval(this.#timer);
    for (const s of this.#subs) s.res.end();
    this.#subs.clear();
  }

  /** The events after `id`, or null when it cannot be resumed from (absent, another epoch, too old). */
  #since(id: string | null): { readonly seq: number; readonly type: EventType }[] | null {
    if (id === null) return null;
    const m = /^([0-9a-f]+)-(\d+)$/.exec(id.trim());
    if (!m || m[1] !== this.epoch) return null;
    const seq = Number(m[2]);
    if (seq > this.#seq) return null;
    const first = this.#buffer[0];
    if (seq < this.#seq && (!first || first.seq > seq + 1)) return null; // fell out of the buffer
    return this.#buffer.filter((e) => e.seq > seq);
  }

  /** Asks every subscriber's {@link SubscribeOptions.stillValid} now, and ends the streams that no longer hold. */
  async recheck(): Promise<void> {
    await Promise.all(
      [...this.#subs].map(async (s) => {
        if (!s.stillValid) return;
        let ok = false;
        try {
          ok = await s.stillValid();
        } catch {
          ok = false;
        }
        if (!ok) this.#drop(s, false);
      }),
    );
  }

  /** Writes to a subscriber, and drops it once more than the backlog bound waits unsent (it stopped reading). */
  #send(s: Subscriber, text: string): void {
    s.res.write(text);
    if (s.res.writableLength > (this.#opts.maxBacklogBytes ?? MAX_BACKLOG_BYTES)) this.#drop(s, true);
  }

  #drop(s: Subscriber, abort: boolean): void {
    if (!this.#subs.delete(s)) return;
    this.#opts.onSubscribersChanged?.(this.#subs.size);
    if (abort) s.res.destroy();
    else s.res.end();
  }

  #heartbeat(): void {
    const text = `: heartbeat ${Date.now()}\n\n`;
    for (const s of this.#subs) this.#send(s, text);
    void this.recheck();
  }
}
