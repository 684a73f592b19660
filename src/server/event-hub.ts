/**
 * The event stream (server-sent events) of `GET /api/v1/events`: every event has an id
 * `<epoch>-<n>`, a name (table, routing, health, traffic, rollout, flag, audit) and JSON data. A reconnect with
 * `Last-Event-ID` gets what it missed from a ring buffer; when the id is too old or from another run of
 * the server, it gets the current snapshot of each stream instead (routing is always whole, so a
 * router converges either way). Comments every `heartbeatMs` keep proxies and dead-peer detection awake.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

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
  readonly onPublish?: (type: EventType) => void;
}

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
    this.#opts.onPublish?.(type);
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
    for (const s of this.#subs) if (s.types.has(type)) s.res.write(text);
    return e;
  }

  /**
   * Takes over `res` as a subscriber: writes the headers, what it missed since `lastEventId` (or the
   * snapshots), then every new event of `types` until the client goes away.
   */
  subscribe(res: ServerResponse, types: readonly EventType[], lastEventId: string | null): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const sub: Subscriber = { res, types: new Set(types) };
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
      this.#subs.delete(sub);
      this.#opts.onSubscribersChanged?.(this.#subs.size);
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

  #heartbeat(): void {
    const text = `: heartbeat ${Date.now()}\n\n`;
    for (const s of this.#subs) s.res.write(text);
  }
}
