/**
 * `meridian serve [FLEET]`: the control plane (src/server) — REST API, event stream, metrics, OFREP and
 * the dashboard — over the state store and, when it can reach one, the running fleet's control API.
 * Runs until SIGINT/SIGTERM. On loopback, makes a local admin token (in memory only, for loopback clients) and
 * prints it to a terminal (not to a log: --print-admin-token), unless --no-local-admin.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../errors.js';
import type { HttpLimits } from '../../http-limits.js';
import type { Revision } from '../../render/render.js';
import type { Recovery } from '../../spec/schema.js';
import { OidcConfig, OidcRuleError, ruleProblems } from '../../server/auth/oidc.js';
import { isLoopbackHost } from '../../server/host-check.js';
import { type FleetLink, remoteLink } from '../../server/fleet-link.js';
import { startServer, type RunningServer } from '../../server/server.js';
import { dashboardDir } from '../../server/static.js';
import { resolveActor } from '../../store/actor.js';
import type { Store } from '../../store/store.js';
import { addHttpLimitOptions, httpLimitsOf, type HttpLimitFlags } from '../http-limit-options.js';
import { type Io, write, type Result } from '../io.js';
import { storeFor } from '../state.js';
import { readUpInfo } from '../up-info.js';
import { loadAndRender } from './render.js';

interface ServeFlags extends HttpLimitFlags {
  port: string;
  host: string;
  state?: string;
  control?: string;
  oidc?: string;
  ofrepAuth?: boolean;
  dashboard: boolean;
  localAdmin: boolean;
  printAdminToken?: boolean;
  allowedHost?: string[];
  actor?: string;
}

/** Reads and checks an `--oidc` file (JSON or YAML): `{ rules: [{ issuer, audience, role, claims, identityClaim }] }`. */
export function readOidcConfig(path: string): OidcConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the OIDC configuration ${path}: ${(err as Error).message}`);
  }
  const r = OidcConfig.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new UsageError(
      `the OIDC configuration ${path} is invalid: ${problems}`,
      'write it as {"rules": [{"issuer": "https://token.actions.githubusercontent.com", "audience": "meridian", "role": "deployer", "claims": {"repository": "acme/fleet"}}]} (docs/server.md)',
    );
  }
  const loose = ruleProblems(r.data);
  if (loose.length > 0) throw new OidcRuleError(`the OIDC configuration ${path} is refused: ${loose.join('; ')}`);
  return r.data;
}

/** True for an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  return isLoopbackHost(host);
}

/**
 * Whether `serve` makes a local admin token, and whether it prints it: only on a loopback bind (it is for
 * the person at this machine), and printed only to a terminal — stdout that is a file or a pipe is a log
 * (journald, `kubectl logs`, CI), and whoever reads logs would become admin — unless asked for.
 */
export function localAdminPolicy(o: { wanted: boolean; host: string; tty: boolean; print: boolean }): {
  mint: boolean;
  why: string | null;
} {
  if (!o.wanted) return { mint: false, why: null };
  if (!isLoopback(o.host)) return { mint: false, why: `none: a local admin token is made only on a loopback address, not on ${o.host}` };
  if (!o.tty && !o.print)
    return { mint: false, why: 'not printed: stdout is not a terminal (a log); --print-admin-token prints it anyway' };
  return { mint: true, why: null };
}

/**
 * The startup lines about OFREP: its URL and whether it needs a token, and, when it is open on an address
 * beyond loopback, a note that anyone who reaches the port reads every flag.
 */
export function ofrepLines(url: string, host: string, ofrepAuth: boolean): { line: string; note: string | null } {
  const line = `${url}ofrep/v1/evaluate/flags (OFREP; ${ofrepAuth ? 'needs a token of any role' : 'open: read-only, no token (--ofrep-auth to require one)'})`;
  const note =
    ofrepAuth || isLoopback(host)
      ? null
      : 'OFREP is open beyond loopback: anyone who reaches this port reads every flag; start with --ofrep-auth and give routers MERIDIAN_FLAGS_TOKEN';
  return { line, note };
}

/** The fleet link from --control (token in MERIDIAN_CONTROL_TOKEN), else a running `meridian up` here, else none. */
function linkFor(io: Io, control: string | undefined): FleetLink | null {
  if (control !== undefined) {
    const token = io.env['MERIDIAN_CONTROL_TOKEN'];
    if (!token) {
      throw new UsageError(
        '--control needs the control API token in MERIDIAN_CONTROL_TOKEN',
        'copy it from .meridian/up.json of the `meridian up` that serves it',
      );
    }
    return remoteLink(control, token);
  }
  const info = readUpInfo(io);
  return info?.control && info.token ? remoteLink(info.control, info.token) : null;
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

/** Starts the control plane for a CLI command (`serve`, and `up` beside its fleet). */
export async function serveControlPlane(
  io: Io,
  store: Store,
  opts: {
    port: number;
    host: string;
    link: FleetLink | null;
    written: Revision | null;
    recovery?: Recovery | undefined;
    oidc?: OidcConfig | undefined;
    ofrepAuth?: boolean | undefined;
    localAdmin: boolean;
    dashboard: boolean;
    actor?: string | undefined;
    allowedHosts?: readonly string[] | undefined;
    limits?: Partial<HttpLimits> | undefined;
  },
): Promise<{ server: RunningServer; adminToken: string | null; dashboardUrl: string }> {
  const adminToken = opts.localAdmin ? `mrl_${randomBytes(24).toString('base64url')}` : null;
  const server = await startServer({
    store,
    port: opts.port,
    host: opts.host,
    link: opts.link,
    written: opts.written,
    recovery: opts.recovery,
    oidc: opts.oidc,
    ofrepAuth: opts.ofrepAuth,
    allowedHosts: opts.allowedHosts,
    localAdmin: adminToken ? { token: adminToken, id: resolveActor(opts.actor, io.env).id } : undefined,
    dashboard: opts.dashboard ? dashboardDir() : null,
    limits: opts.limits,
    log: (level, message) =>
      void io.err.write(`${level === 'info' ? io.errStyle.dim('serve') : io.errStyle.red('serve error')}: ${message}\n`),
  });
  const dashboardUrl = adminToken ? `${server.url}#token=${adminToken}` : server.url;
  return { server, adminToken, dashboardUrl };
}

/**
 * The control plane beside a local fleet (`meridian up`): on `preferredPort`, or on a free port when that
 * one is taken; with an in-memory admin token in the dashboard URL, so that local use needs no setup.
 */
export async function serveBesideFleet(
  io: Io,
  store: Store,
  opts: { preferredPort: number; link: FleetLink; written: Revision; recovery: Recovery | undefined; actor?: string | undefined },
): Promise<{ server: RunningServer; adminToken: string | null; dashboardUrl: string }> {
  const common = {
    host: '127.0.0.1',
    link: opts.link,
    written: opts.written,
    recovery: opts.recovery,
    localAdmin: true,
    dashboard: true,
    actor: opts.actor,
  };
  try {
    return await serveControlPlane(io, store, { ...common, port: opts.preferredPort });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || opts.preferredPort === 0) throw err;
    return serveControlPlane(io, store, { ...common, port: 0 });
  }
}

export function registerServe(program: Command, io: Io, result: Result): void {
  addHttpLimitOptions(program.command('serve'))
    .description('run the control plane: REST API, event stream, metrics, flags (OFREP) and the dashboard, until interrupted')
    .argument('[fleet]', 'fleet directory or file (in force while the store records nothing running)')
    .option('-p, --port <port>', 'port (0 picks a free one)', '7070')
    .option(
      '--host <address>',
      'address to listen on (loopback by default; every API call needs a token either way, OFREP only with --ofrep-auth)',
      '127.0.0.1',
    )
    .option('--state <store>', 'state store (a SQLite path or postgres:// URL); default .meridian/state.db or MERIDIAN_STATE')
    .option('--control <url>', "the fleet's control API (token from MERIDIAN_CONTROL_TOKEN); default: a `meridian up` running here")
    .option('--oidc <file>', 'accept OIDC ID tokens by these rules (JSON or YAML; docs/server.md)')
    .option('--ofrep-auth', 'flag evaluation (OFREP, /ofrep/v1/) needs a bearer token too, of any role (default: open and read-only)')
    .option('--no-dashboard', 'do not serve the dashboard')
    .option('--no-local-admin', 'do not make an in-memory admin token (use `meridian token create` tokens only)')
    .option('--print-admin-token', 'print the in-memory admin token even when stdout is not a terminal (it is never made beyond loopback)')
    .option(
      '--allowed-host <name...>',
      'host names (besides localhost and loopback addresses) that the Host header may carry; on a loopback bind every other name is refused (DNS rebinding)',
    )
    .option('--actor <id>', 'who the local admin token acts as, in the audit log (default: MERIDIAN_ACTOR or the user)')
    .action(async (dir: string | undefined, flags: ServeFlags) => {
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new UsageError(`--port must be a port number (0..65535), not ${JSON.stringify(flags.port)}`);
      const fleet = dir === undefined ? null : loadAndRender(dir);
      const written = fleet?.rendered.revision ?? null;
      const oidc = flags.oidc === undefined ? undefined : readOidcConfig(flags.oidc);
      const link = linkFor(io, flags.control);
      const admin = localAdminPolicy({
        wanted: flags.localAdmin,
        host: flags.host,
        tty: io.out.isTTY === true,
        print: flags.printAdminToken === true,
      });
      const store = await storeFor(flags.state, io);
      let running: Awaited<ReturnType<typeof serveControlPlane>>;
      try {
        running = await serveControlPlane(io, store, {
          port,
          host: flags.host,
          link,
          written,
          recovery: fleet?.loaded.fleet.recovery,
          oidc,
          ofrepAuth: flags.ofrepAuth === true,
          localAdmin: admin.mint,
          dashboard: flags.dashboard,
          actor: flags.actor,
          allowedHosts: flags.allowedHost,
          limits: httpLimitsOf(flags),
        });
      } catch (err) {
        await store.close();
        await link?.close();
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          throw new UsageError(
            `port ${port} on ${flags.host} is taken`,
            'stop what listens there, or pick another with --port N (0 picks a free one); `meridian up` already runs a control plane beside its fleet',
          );
        }
        throw err;
      }
      const { server, adminToken, dashboardUrl } = running;
      const s = io.style;
      const ofrep = ofrepLines(server.url, flags.host, flags.ofrepAuth === true);
      await write(
        io.out,
        `meridian control plane on ${server.url}\n` +
          `  dashboard  ${dashboardUrl}\n` +
          `  api        ${server.url}api/v1/openapi.json\n` +
          `  events     ${server.url}api/v1/events\n` +
          `  metrics    ${server.url}metrics\n` +
          `  flags      ${ofrep.line}\n` +
          `  fleet      ${link ? link.describe : s.dim('no link to a running fleet (health and traffic are unknown; --control URL)')}\n` +
          (adminToken
            ? `  admin      ${adminToken}  ${s.dim('(in memory, until this process stops; loopback clients only)')}\n`
            : admin.why
              ? `  admin      ${admin.why}; or \`meridian token create --role admin --name NAME\`\n`
              : '') +
          (isLoopback(flags.host) ? '' : `  ${s.yellow('listening beyond loopback')}: every API call needs a token; put TLS in front\n`) +
          (ofrep.note ? `  ${s.yellow('note')}: ${ofrep.note}\n` : ''),
      );
      const signal = await untilSignal(['SIGINT', 'SIGTERM']);
      await write(io.err, `${signal}: stopping the control plane\n`);
      await server.close();
      await store.close();
      result.code = 0;
    });
}
