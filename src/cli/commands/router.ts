/**
 * `meridian router`: a standalone router over a fleet and a static endpoints file (docs/router.md), or
 * following the control plane (`--server`), in one process or one worker per core. Runs until
 * SIGINT/SIGTERM; SIGHUP re-reads the endpoints file.
 */
import { availableParallelism } from 'node:os';
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { parseDuration } from '../../units/duration.js';
import type { RouterLog } from '../../router/router.js';
import type { RouterSettings, RunningRouter } from '../../router/router-process.js';
import { startFollowing, startStandalone, startWorkers, type StandaloneConfig } from '../../router/standalone.js';
import { addHttpLimitOptions, httpLimitsOf, sourcesOf, type HttpLimitFlags } from '../http-limit-options.js';
import { type Io, write, type Result } from '../io.js';

interface RouterFlags extends HttpLimitFlags {
  trustedSources?: string;
  adminSources?: string;
  fleet: string;
  endpoints?: string;
  port: string;
  host: string;
  adminPort?: string;
  workers: string;
  geoip?: string | false;
  healthChecks: boolean;
  traceparent: 'generate' | 'pass';
  flags?: string;
  flagsInterval: string;
  flagsToken?: string;
  otlp?: string;
  server?: string;
  token?: string;
}

function portOf(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`${flag} must be a port number (0..65535), not ${JSON.stringify(value)}`);
  return n;
}

/** The value of an option that names an HTTP server (`--flags`, `--server`): an http(s) URL, else a usage error. */
function httpUrl(option: string, what: string, value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol === 'http:' || u.protocol === 'https:') return value;
  } catch {
    // fall through
  }
  throw new UsageError(
    `${option} must be an http(s) URL of ${what}, not ${JSON.stringify(value)}`,
    `e.g. ${option} http://127.0.0.1:7070/`,
  );
}

/** The router's settings from its flags (shared by the standalone and the following router). */
function settingsOf(flags: RouterFlags): RouterSettings {
  return {
    ...(flags.geoip === false ? { geoip: null } : typeof flags.geoip === 'string' ? { geoip: flags.geoip } : {}),
    healthChecks: flags.healthChecks,
    traceparent: flags.traceparent,
    limits: httpLimitsOf(flags),
    ...(flags.trustedSources !== undefined ? { trustedSources: sourcesOf(flags.trustedSources) } : {}),
    ...(flags.adminSources !== undefined ? { adminSources: sourcesOf(flags.adminSources) } : {}),
  };
}

/** Where the admin endpoints answer, for the startup line. */
function adminLine(flags: RouterFlags, adminPort: number | null): string {
  const prefix = flags.adminSources !== undefined ? `admin under /_meridian/ from ${flags.adminSources}` : 'no admin on the traffic port';
  return adminPort !== null ? `${prefix}, admin on http://${flags.host}:${adminPort}/` : prefix;
}

function workersOf(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--workers must be a whole number ≥ 1, not ${JSON.stringify(value)}`);
  return n;
}

function flagsInterval(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0)
    throw new UsageError(`--flags-interval must be a duration like 250ms or 1s, not ${JSON.stringify(value)}`);
  return ms;
}

/** Resolves when one of the signals arrives. */
function untilSignal(signals: readonly NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      for (const x of signals) process.off(x, on);
      resolve(s);
    };
    for (const s of signals) process.on(s, on);
  });
}

export function registerRouter(program: Command, io: Io, result: Result): void {
  const cmd = program
    .command('router')
    .description('run the router (data plane) over a fleet and a static endpoints file, until interrupted')
    .option('-f, --fleet <dir>', 'fleet directory or file', '.')
    .option('-e, --endpoints <file>', 'JSON file listing the endpoints of every service in every cluster (see docs/router.md)')
    .option('-p, --port <port>', 'traffic port (0 picks a free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--admin-port <port>', 'also serve the admin endpoints (metrics, stats, debug/route) on this port')
    .option(
      '-w, --workers <n>',
      `worker processes sharing the port (this machine has ${availableParallelism()} cores); with --server the primary follows the server for all of them`,
      '1',
    )
    .option('--geoip <file>', 'MaxMind-format country database (.mmdb); default: the bundled one')
    .option('--no-geoip', 'no GeoIP: clients without a trusted country header have no home region')
    .option('--no-health-checks', 'no active health checks (passive outlier detection still runs)')
    .option('--flags <url>', 'follow flag gates from this OFREP server (e.g. the `flags` URL `meridian up` prints); see docs/flags.md')
    .option('--flags-interval <duration>', 'how often to poll --flags', '250ms')
    .option(
      '--flags-token <token>',
      'bearer token for --flags, for a `meridian serve --ofrep-auth` (default: MERIDIAN_FLAGS_TOKEN, which `ps` does not show)',
    )
    .option(
      '--server <url>',
      'follow the routing table, revision, drains and flags of this control plane (`meridian serve`) instead of --fleet/--endpoints',
    )
    .option('--token <token>', 'bearer token for --server, role viewer or more (default: MERIDIAN_SERVER_TOKEN)')
    .option(
      '--otlp <url>',
      'export a span per request over OTLP/HTTP to this collector (default: OTEL_EXPORTER_OTLP_ENDPOINT; off when unset)',
    )
    .addOption(
      new Option('--traceparent <mode>', 'requests without a valid W3C traceparent').choices(['generate', 'pass']).default('generate'),
    )
    .option(
      '--trusted-sources <list>',
      'addresses/CIDR blocks whose country header, cluster pin and X-Forwarded-* are believed, for services whose routing names no trustedSources (default: none)',
    )
    .option(
      '--admin-sources <list>',
      'addresses/CIDR blocks that may use /_meridian/* on the traffic port (default: nobody) and the admin port (default: loopback)',
    );
  addHttpLimitOptions(cmd);
  cmd.action(async (flags: RouterFlags) => {
    if (flags.server !== undefined) {
      result.code = await followServerCommand(flags, io);
      return;
    }
    if (flags.endpoints === undefined) {
      throw new UsageError(
        'meridian router needs --endpoints FILE.json',
        'write the endpoints as described in docs/router.md, e.g. {"endpoints": [{"cluster": "eu-west-1", "service": "web", "port": 9001}]}',
      );
    }
    const workers = workersOf(flags.workers);
    if (flags.flagsToken !== undefined && flags.flags === undefined)
      throw new UsageError('--flags-token is the token for --flags, which is not given', 'add --flags URL of the OFREP server');
    const flagsToken = flags.flagsToken ?? (io.env['MERIDIAN_FLAGS_TOKEN'] || undefined);
    const config: StandaloneConfig = {
      fleet: flags.fleet,
      endpoints: flags.endpoints,
      port: portOf('--port', flags.port),
      host: flags.host,
      ...(flags.adminPort !== undefined ? { adminPort: portOf('--admin-port', flags.adminPort) } : {}),
      ...settingsOf(flags),
      workers,
      ...(flags.otlp !== undefined ? { otlp: flags.otlp } : {}),
      ...(flags.flags !== undefined
        ? {
            flags: httpUrl('--flags', 'an OFREP server', flags.flags),
            flagsIntervalMs: flagsInterval(flags.flagsInterval),
            ...(flagsToken !== undefined ? { flagsToken } : {}),
          }
        : {}),
    };
    const log: RouterLog = (level, message) =>
      void io.err.write(`${level === 'info' ? io.errStyle.dim(level) : io.errStyle.red(level)}: ${message}\n`);
    const running: RunningRouter = workers > 1 ? await startWorkers(config, log) : await startStandalone(config, log);
    await write(
      io.out,
      `meridian router listening on http://${flags.host}:${running.port} (${workers} worker${workers > 1 ? 's' : ''}; ${adminLine(flags, running.adminPort)})\n`,
    );
    const signal = await untilSignal(['SIGINT', 'SIGTERM']);
    await write(io.err, `${signal}: stopping the router\n`);
    await running.close();
    result.code = 0;
  });
}

/** `meridian router --server URL`: a router that follows the control plane, in one process or N workers fed by this one. */
async function followServerCommand(flags: RouterFlags, io: Io): Promise<number> {
  const token = flags.token ?? io.env['MERIDIAN_SERVER_TOKEN'];
  if (!token)
    throw new UsageError(
      '--server needs a token',
      'pass --token T (or MERIDIAN_SERVER_TOKEN); create one with `meridian token create --role viewer --name router`',
    );
  const workers = workersOf(flags.workers);
  const log: RouterLog = (level, message) =>
    void io.err.write(`${level === 'info' ? io.errStyle.dim(level) : io.errStyle.red(level)}: ${message}\n`);
  const running = await startFollowing(
    {
      server: httpUrl('--server', 'the control plane (`meridian serve`)', flags.server ?? ''),
      token,
      port: portOf('--port', flags.port),
      host: flags.host,
      ...(flags.adminPort !== undefined ? { adminPort: portOf('--admin-port', flags.adminPort) } : {}),
      ...settingsOf(flags),
      workers,
    },
    log,
  );
  await write(
    io.out,
    `meridian router listening on http://${flags.host}:${running.port}, following ${flags.server ?? ''} (${workers} worker${workers > 1 ? 's' : ''}; ${adminLine(flags, running.adminPort)})\n`,
  );
  const signal = await untilSignal(['SIGINT', 'SIGTERM']);
  await write(io.err, `${signal}: stopping the router\n`);
  await running.close();
  return 0;
}
