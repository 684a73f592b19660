/**
 * `meridian logs`: the local fleet's service logs (which `meridian up` writes to files, not to the
 * terminal), merged in time order, each line prefixed with its cluster, service and replica — coloured
 * on a terminal — and, with `-f`, followed as they grow.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { type LogLine, logFiles, readNewLines } from '../../targets/local/log-files.js';
import { type Io, write } from '../io.js';
import { readUpInfo } from '../up-info.js';
import type { Result } from './index.js';

interface LogsOptions {
  cluster?: string;
  service?: string;
  follow?: boolean;
  tail?: string;
  dir?: string;
}

/** Where a `meridian up` in this directory writes its logs (the live one's, else the default place). */
export function logsDir(io: Io): string {
  return readUpInfo(io)?.logs ?? join(io.cwd, '.meridian', 'logs');
}

const PALETTE = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94];

function colorOf(key: string): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length] as number;
}

/** One merged line as `meridian logs` prints it. */
export function formatLogLine(l: LogLine, color: boolean): string {
  const who = `${l.cluster}/${l.service}${l.track === 'stable' ? '' : `/${l.track}`}#${l.replica}`;
  const time = l.at.slice(11, 23);
  if (!color) return `${time} ${who} ${l.line}\n`;
  const line = l.stream === 'stderr' ? `\u001b[31m${l.line}\u001b[39m` : l.line;
  return `\u001b[2m${time}\u001b[22m \u001b[${colorOf(`${l.cluster}/${l.service}`)}m${who}\u001b[39m ${line}\n`;
}

export function registerLogs(program: Command, io: Io, result: Result): void {
  program
    .command('logs')
    .description("show the local fleet's service logs, merged and prefixed (`meridian up` writes them to .meridian/logs)")
    .option('-c, --cluster <name>', 'only this cluster')
    .option('-s, --service <name>', 'only this service')
    .option('-f, --follow', 'keep printing new lines as they are written (Ctrl-C stops)')
    .option('-n, --tail <n>', 'start with the last N lines (default: all)')
    .option('--dir <path>', 'the logs directory (default: the running fleet’s, else .meridian/logs)')
    .action(async (opts: LogsOptions) => {
      const dir = opts.dir ?? logsDir(io);
      const tail = opts.tail === undefined ? undefined : Number(opts.tail);
      if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
        throw new UsageError(`--tail must be a whole number, not ${JSON.stringify(opts.tail)}`);
      const filter = { cluster: opts.cluster, service: opts.service };
      if (logFiles(dir, filter).length === 0 && !opts.follow) {
        const what = [opts.cluster && `cluster ${opts.cluster}`, opts.service && `service ${opts.service}`].filter(Boolean).join(', ');
        throw new UsageError(
          `no service logs${what ? ` of ${what}` : ''} in ${dir}`,
          'start the fleet with `meridian up` in this directory (it writes the logs there), or pass --dir',
        );
      }
      const offsets = new Map<string, number>();
      const first = readNewLines(dir, filter, offsets);
      const shown = tail === undefined ? first : first.slice(Math.max(0, first.length - tail));
      await write(io.out, shown.map((l) => formatLogLine(l, io.style.color)).join(''));
      if (!opts.follow) {
        result.code = 0;
        return;
      }
      for (;;) {
        await new Promise((r) => setTimeout(r, 200));
        const more = readNewLines(dir, filter, offsets);
        if (more.length > 0) await write(io.out, more.map((l) => formatLogLine(l, io.style.color)).join(''));
      }
    });
}
