/**
 * Free loopback ports for local replicas: the kernel picks one (bind 127.0.0.1:0), we close it and hand
 * it out, and never hand the same port to two live replicas of this process.
 */
import { createServer } from 'node:net';
import { TargetError } from '../errors.js';

/** The loopback address local replicas listen on. */
export const LOOPBACK = '127.0.0.1';

function probe(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export class PortAllocator {
  readonly #inUse = new Set<number>();

  constructor(private readonly host: string = LOOPBACK) {}

  /** A port that is free now and not held by another replica of this driver. */
  async allocate(): Promise<number> {
    for (let i = 0; i < 50; i++) {
      const port = await probe(this.host);
      if (port > 0 && !this.#inUse.has(port)) {
        this.#inUse.add(port);
        return port;
      }
    }
    throw new TargetError('MERIDIAN_E_TARGET_NO_PORT', `could not find a free port on ${this.host}`, {
      hint: 'too many ports are in use on this machine; stop some processes and try again',
    });
  }

  /** Gives a port back once nothing listens on it for us any more. */
  release(port: number): void {
    this.#inUse.delete(port);
  }

  /** Ports currently handed out. */
  get allocated(): ReadonlySet<number> {
    return this.#inUse;
  }
}
