/** Where a command leaves its exit code. */
export interface Result {
  code: number;
}

/** The CLI's view of the outside world: streams, environment and clock, injectable for tests. */
import { styleFor, type Style } from './style.js';

export interface Io {
  readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly err: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  now(): Date;
  /** Styling for stdout. */
  readonly style: Style;
  /** Styling for stderr. */
  readonly errStyle: Style;
}

export function processIo(): Io {
  return {
    out: process.stdout,
    err: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    now: () => new Date(),
    style: styleFor(process.stdout),
    errStyle: styleFor(process.stderr),
  };
}

/** Writes a whole string to a stream and waits until it is flushed (so exit codes follow complete output). */
export function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
