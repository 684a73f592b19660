/**
 * A client of HAProxy's runtime API (the admin `stats socket`): one command per connection, the answer
 * as text. Used to read server state and to set weights and drains live, without a reload.
 */
import { connect } from 'node:net';
import { MeridianError } from '../errors.js';
import type { HaproxyServer } from './haproxy.js';

/** Sends one command to the runtime API at `socket` (a UNIX path, or `ipv4@host:port`) and returns the answer. */
export function haproxyCommand(socket: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const tcp = /^ipv4@([^:]+):(\d+)$/.exec(socket);
    const conn = tcp ? connect(Number(tcp[2]), tcp[1] ?? '127.0.0.1') : connect(socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => conn.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    conn.on('connect', () => conn.end(`${command}\n`));
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new MeridianError('MERIDIAN_E_HAPROXY_RUNTIME', `HAProxy's runtime API at ${socket} failed on "${command}": ${err.message}`, {
          cause: err,
          hint: 'check that HAProxy runs with `stats socket … level admin` at that path (the exporter writes it from --runtime-api)',
        }),
      );
    });
  });
}

/** One server's state as `show servers state` reports it. */
export interface ServerState {
  readonly backend: string;
  readonly server: string;
  /** 0 stopped/down, 2 up (HAProxy's srv_op_state). */
  readonly up: boolean;
  readonly weight: number;
  /** In maintenance or drain by the admin. */
  readonly admin: number;
}

/** Every server's state (`show servers state`). */
export async function serversState(socket: string): Promise<ServerState[]> {
  const text = await haproxyCommand(socket, 'show servers state');
  const out: ServerState[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '' || /^\d+$/.test(line.trim())) continue;
    const f = line.split(' ');
    // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight …
    out.push({ backend: f[1] ?? '', server: f[3] ?? '', up: f[5] === '2', admin: Number(f[6] ?? 0), weight: Number(f[7] ?? 0) });
  }
  return out;
}

/** Sets a server's weight live (`set server <backend>/<server> weight <w>`); throws on HAProxy's refusal. */
export async function setServerWeight(socket: string, backend: string, server: string, weight: number): Promise<void> {
  const answer = (await haproxyCommand(socket, `set server ${backend}/${server} weight ${Math.round(weight)}`)).trim();
  if (answer !== '') throw new MeridianError('MERIDIAN_E_HAPROXY_RUNTIME', `HAProxy refused the weight of ${backend}/${server}: ${answer}`);
}

/** Puts a server into `ready`, `drain` or `maint` state live. */
export async function setServerState(socket: string, backend: string, server: string, state: 'ready' | 'drain' | 'maint'): Promise<void> {
  const answer = (await haproxyCommand(socket, `set server ${backend}/${server} state ${state}`)).trim();
  if (answer !== '') throw new MeridianError('MERIDIAN_E_HAPROXY_RUNTIME', `HAProxy refused the state of ${backend}/${server}: ${answer}`);
}

/**
 * Sets the canary share of one service on one cluster, live: in every backend that holds the cluster's
 * servers, the cluster's total weight is kept and split between its stable and canary servers (`percent`
 * to the canary). Returns the commands sent. HAProxy applies a weight to the next request it balances.
 */
export async function setCanaryWeight(
  socket: string,
  servers: readonly HaproxyServer[],
  service: string,
  cluster: string,
  percent: number,
): Promise<string[]> {
  const p = Math.min(100, Math.max(0, percent)) / 100;
  const sent: string[] = [];
  const mine = servers.filter((s) => s.service === service && s.cluster === cluster);
  for (const backend of new Set(mine.map((s) => s.backend))) {
    const group = mine.filter((s) => s.backend === backend);
    const stable = group.filter((s) => s.track !== 'canary');
    const canary = group.filter((s) => s.track === 'canary');
    if (canary.length === 0)
      throw new MeridianError(
        'MERIDIAN_E_HAPROXY_RUNTIME',
        `no canary server of ${service} in ${cluster} (backend ${backend}): export while the canary runs`,
      );
    const total = group.reduce((n, s) => n + s.weight, 0);
    for (const [list, share] of [
      [stable, 1 - p],
      [canary, p],
    ] as const) {
      for (const s of list) {
        const w = Math.min(256, Math.round((total * share) / list.length));
        await setServerWeight(socket, backend, s.server, w);
        sent.push(`set server ${backend}/${s.server} weight ${w}`);
      }
    }
  }
  return sent;
}
