/** `meridian traffic`: synthetic clients from chosen countries, through the router, and what they saw. */
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { runTraffic } from '../../traffic/generator.js';
import { parseMix } from '../../traffic/mix.js';
import { formatReport, summarizeReport } from '../../traffic/report.js';
import { parseDuration } from '../../units/duration.js';
import { type Io, write, type Result } from '../io.js';

export function registerTraffic(program: Command, io: Io, result: Result): void {
  program
    .command('traffic')
    .description('send synthetic requests through the router from chosen countries and print what they saw')
    .option('--url <url>', 'the router', 'http://127.0.0.1:8080/')
    .option('--rps <n>', 'requests per second', (v) => Number(v), 50)
    .option('--mix <mix>', 'client countries and weights', 'DE:30,US:40,IN:20,BR:10')
    .option('--duration <d>', 'how long (e.g. 10s, 2m)', '10s')
    .option('-n, --requests <n>', 'stop after this many requests', (v) => Number.parseInt(v, 10))
    .option('--users <n>', 'distinct users per stream (for stickiness)', (v) => Number.parseInt(v, 10), 100)
    .option('--host <host>', 'Host header to send')
    .option('--country-header <name>', 'header carrying the client country', 'x-client-country')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(
      async (opts: {
        url: string;
        rps: number;
        mix: string;
        duration: string;
        requests?: number;
        users: number;
        host?: string;
        countryHeader: string;
        output: 'text' | 'json';
      }) => {
        const durationMs = parseDuration(opts.duration);
        if (durationMs === undefined) throw new UsageError(`--duration ${opts.duration} is not a duration`, 'e.g. --duration 30s');
        if (!(opts.rps > 0 && opts.rps <= 20_000)) throw new UsageError('--rps must be between 1 and 20000');
        const ac = new AbortController();
        const stop = (): void => ac.abort();
        process.once('SIGINT', stop);
        const progress = io.err.isTTY
          ? (r: { countries: Record<string, { sent: number }> }): void =>
              void io.err.write(`\r${Object.values(r.countries).reduce((s, c) => s + c.sent, 0)} requests sent…`)
          : undefined;
        const report = await runTraffic({
          url: opts.url,
          rps: opts.rps,
          mix: parseMix(opts.mix),
          durationMs,
          ...(opts.requests !== undefined ? { requests: opts.requests } : {}),
          users: opts.users,
          countryHeader: opts.countryHeader,
          ...(opts.host !== undefined ? { host: opts.host } : {}),
          ...(progress ? { onProgress: progress } : {}),
          signal: ac.signal,
        });
        process.off('SIGINT', stop);
        if (progress) io.err.write('\r\u001b[K');
        await write(io.out, opts.output === 'json' ? `${JSON.stringify(summarizeReport(report), null, 2)}\n` : formatReport(report));
        const failed = Object.values(report.countries).some((c) => Object.keys(c.statuses).some((s) => s === 'error' || s === 'timeout'));
        result.code = failed ? 1 : 0;
      },
    );
}
