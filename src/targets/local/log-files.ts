/**
 * The local fleet's service logs on disk: one file per cluster and service
 * (`<dir>/<cluster>/<service>.log`), a line per line a replica wrote, stamped with the time, the track,
 * the replica's slot and the stream. `meridian up` writes them (instead of filling the terminal);
 * `meridian logs` reads them back, merged in time order, and follows them.
 */
import {
  type WriteStream,
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import type { OutputLine } from './local-options.js';

/** One line of a service's log, read back. */
export interface LogLine {
  /** ISO 8601 time it was written. */
  readonly at: string;
  readonly cluster: string;
  readonly service: string;
  readonly track: string;
  readonly replica: number;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
}

/** Which logs to read: every cluster and service, or only the named ones. */
export interface LogFilter {
  readonly cluster?: string | undefined;
  readonly service?: string | undefined;
}

const LINE = /^(\S+) (\S+)#(\d+) (out|err) (.*)$/;

/** Writes the replicas' output lines to files under `dir` (which it empties first: the logs of one run). */
export class LogFiles {
  readonly #dir: string;
  readonly #streams = new Map<string, WriteStream>();
  #closed = false;

  constructor(dir: string) {
    this.#dir = dir;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  }

  /** The directory the logs go to. */
  get dir(): string {
    return this.#dir;
  }

  /** Appends one line to its cluster's and service's file. */
  write(l: OutputLine, at: Date = new Date()): void {
    if (this.#closed) return; // the last words of replicas stopping after the files were closed
    const key = `${l.cluster}/${l.service}`;
    let s = this.#streams.get(key);
    if (!s) {
      mkdirSync(join(this.#dir, l.cluster), { recursive: true });
      s = createWriteStream(join(this.#dir, l.cluster, `${l.service}.log`), { flags: 'a' });
      s.on('error', () => {}); // a full disk must not stop the fleet
      this.#streams.set(key, s);
    }
    s.write(`${at.toISOString()} ${l.track}#${l.replica} ${l.stream === 'stderr' ? 'err' : 'out'} ${l.line}\n`);
  }

  /** Flushes and closes every file. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#streams.values()];
    this.#streams.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => s.end(r))));
  }
}

/** The log files under `dir` that match `filter`, as cluster, service and path. */
export function logFiles(dir: string, filter: LogFilter = {}): { cluster: string; service: string; path: string }[] {
  if (!existsSync(dir)) return [];
  const out: { cluster: string; service: string; path: string }[] = [];
  for (const cluster of readdirSync(dir).sort()) {
    if (filter.cluster !== undefined && cluster !== filter.cluster) continue;
    const cdir = join(dir, cluster);
    if (!statSync(cdir).isDirectory()) continue;
    for (const f of readdirSync(cdir).sort()) {
      if (!f.endsWith('.log')) continue;
      const service = f.slice(0, -'.log'.length);
      if (filter.service !== undefined && service !== filter.service) continue;
      out.push({ cluster, service, path: join(cdir, f) });
    }
  }
  return out;
}

/** Parses one line of a log file (undefined for a line in another format). */
export function parseLogLine(cluster: string, service: string, text: string): LogLine | undefined {
  const m = LINE.exec(text);
  if (!m) return undefined;
  return {
    at: m[1] as string,
    cluster,
    service,
    track: m[2] as string,
    replica: Number(m[3]),
    stream: m[4] === 'err' ? 'stderr' : 'stdout',
    line: m[5] as string,
  };
}

/**
 * Reads what the matching files gained since `offsets` (path → bytes read; updated in place), merged in
 * time order. Only whole lines are read: a line being written is read next time.
 */
export function readNewLines(dir: string, filter: LogFilter, offsets: Map<string, number>): LogLine[] {
  const lines: LogLine[] = [];
  for (const f of logFiles(dir, filter)) {
    const from = offsets.get(f.path) ?? 0;
    const size = statSync(f.path).size;
    if (size < from) offsets.set(f.path, 0); // emptied by a new run: start again
    const start = size < from ? 0 : from;
    if (size <= start) continue;
    const buf = Buffer.alloc(size - start);
    const fd = openSync(f.path, 'r');
    try {
      readSync(fd, buf, 0, buf.length, start);
    } finally {
      closeSync(fd);
    }
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) continue;
    offsets.set(f.path, start + end + 1);
    for (const text of buf.subarray(0, end).toString('utf8').split('\n')) {
      const l = parseLogLine(f.cluster, f.service, text);
      if (l) lines.push(l);
    }
  }
  // stable: lines of one file keep their order when their times are equal
  return lines.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}
