/**
 * A newcomer's first run, timed: `git clone` of this repository's HEAD into an empty temporary directory,
 * `npm install` there with an empty npm cache (every package downloaded from the registry), then `npm start`
 * read line by line for the story's milestones — the fleet up with its dashboard URL, the first traffic
 * report, the dashboard's own traffic API showing flows (what its map and charts draw), the good version
 * promoted through every wave, the bad one rolled back — and then a SIGTERM to npm and a check that no
 * process of the run is left. Every time is counted from the start of `git clone`.
 *
 * Two ways to get better-sqlite3's native binary (`--mode`):
 *   source    as this machine is: prebuild-install cannot reach GitHub, so node-gyp compiles SQLite
 *   prebuilt  as a user who reaches GitHub gets it: the release asset prebuild-install would download,
 *             built from the compiled module in this checkout's node_modules and served over loopback
 *             (bench/lib/prebuilt-host.ts) — a stand-in, not GitHub
 *   both      (default) one run of each per round, prebuilt first
 *
 * Run: `npx tsx bench/first-run.ts [--mode both|source|prebuilt] [--runs 1] [--ref HEAD] [--keep] [--json]`
 * (commit first: the clone is of a commit, not of the working tree; `--ref` clones another, e.g. main's, for a
 * before-and-after). Each run's work directory (the clone, `npm-install.log`, `npm-start.log` with every line
 * of `npm start` timed) is removed after a run that told the story, kept after one that did not or with `--keep`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { argNumber } from './lib/cli.js';
import { BINARY_HOST_ENV, startPrebuiltHost, type PrebuiltHost } from './lib/prebuilt-host.js';

type Mode = 'source' | 'prebuilt';

const root = join(import.meta.dirname, '..');
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const RUNS = argNumber('runs', 1);
const MODE = arg('mode', 'both');
const REF = arg('ref', 'HEAD');
const KEEP = process.argv.includes('--keep');
const JSON_OUT = process.argv.includes('--json');
const INSTALL_LIMIT_MS = 20 * 60_000;
const START_LIMIT_MS = 8 * 60_000;
const THREE_MINUTES_S = 180;

if (!['both', 'source', 'prebuilt'].includes(MODE)) {
  process.stderr.write(`--mode must be both, source or prebuilt, not ${MODE}\n`);
  process.exit(2);
}

/** Seconds since `t0`, one decimal. */
const since = (t0: number, t = performance.now()): number => Math.round((t - t0) / 100) / 10;
const load = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const utc = (): string => new Date().toISOString().slice(0, 19).replace('T', ' ');

/**
 * The environment of a newcomer's shell: this process's, without what npm adds to a script's (npm_*
 * settings, node_modules/.bin on PATH), so that `npm run bench` measures the same as `npx tsx`.
 */
function newcomerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && v !== undefined) env[k] = v;
  env['PATH'] = (env['PATH'] ?? '')
    .split(':')
    .filter((p) => !p.includes('node_modules/.bin'))
    .join(':');
  delete env['NO_COLOR'];
  return { ...env, ...extra };
}

interface ProcInfo {
  readonly start: string; // field 22 of /proc/PID/stat: tells a PID reused by another process apart
  readonly cmd: string;
}

function procStat(pid: number): { ppid: number; start: string } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), start: f[19] ?? '' };
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** Adds every descendant of `root` alive now to `seen`. */
function collectTree(rootPid: number, seen: Map<number, ProcInfo>): void {
  const stats = allPids()
    .map((pid) => ({ pid, s: procStat(pid) }))
    .filter((p): p is { pid: number; s: { ppid: number; start: string } } => p.s !== null);
  const tree = new Set([rootPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of stats)
      if (!tree.has(p.pid) && tree.has(p.s.ppid)) {
        tree.add(p.pid);
        grew = true;
      }
  }
  for (const p of stats) if (tree.has(p.pid) && !seen.has(p.pid)) seen.set(p.pid, { start: p.s.start, cmd: cmdline(p.pid) });
}

/** Processes left: every one seen in the run still alive (same start time), and any whose cwd or command line is in `dir`. */
function leftOver(seen: Map<number, ProcInfo>, dir: string): string[] {
  const left = new Map<number, string>();
  for (const [pid, p] of seen) if (procStat(pid)?.start === p.start) left.set(pid, p.cmd);
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    const cmd = cmdline(pid);
    if (cwd.startsWith(dir) || cmd.includes(dir)) left.set(pid, cmd);
  }
  return [...left].map(([pid, cmd]) => `${pid} ${cmd.slice(0, 100)}`);
}

// eslint-disable-next-line no-control-regex -- the escape that starts a colour
const ANSI = /\x1b\[[0-9;]*m/g;

/** The story's milestones, as `npm start` prints them (docs/demo.md). */
const MILESTONES = {
  fleetUp: /^fleet \S+ is up/,
  dashboard: /^\s*dashboard\s+(http\S+)/,
  traffic: /^traffic: \d+ requests in/,
  firstRollout: /^rollout ro-/,
  promoted: /^✓ rollout \S+ promoted/,
  rolledBack: /^↩ rollout \S+ rolled-back/,
  told: /^The story is told/,
  failed: /^The story did not go as planned/,
} as const;
type Milestone = keyof typeof MILESTONES | 'dashboardTraffic';

interface RunResult {
  mode: Mode;
  startedUtc: string;
  loadBefore: string;
  loadAfter: string;
  cloneS: number;
  install: {
    exit: number | null;
    s: number;
    sqliteBinary: 'compiled' | 'prebuilt' | 'missing';
    sqliteAtS: number | null;
    distAtS: number | null;
  };
  prebuiltRequests?: string[];
  start: { exit: number | string | null; s: number; at: Partial<Record<Milestone, number>>; firstTraffic: string; dashboardFlows: number };
  storyTold: boolean;
  withinThreeMinutes: boolean;
  afterSigterm: { npmGoneS: number | null; processesSeen: number; left: string[] };
}

/** Runs `cmd` in `cwd` to its end; resolves with its exit code (null on timeout) and output. */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, limitMs: number, log: string): Promise<number | null> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    c.stdout.on('data', (b: Buffer) => out.push(b));
    c.stderr.on('data', (b: Buffer) => out.push(b));
    const timer = setTimeout(() => c.kill('SIGTERM'), limitMs);
    c.on('close', (code) => {
      clearTimeout(timer);
      writeFileSync(log, Buffer.concat(out));
      resolve(code);
    });
  });
}

async function dashboardFlows(dashboard: string): Promise<number> {
  const url = new URL(dashboard);
  const token = /token=([^&]+)/.exec(url.hash)?.[1] ?? '';
  try {
    const res = await fetch(new URL('/api/v1/traffic', url.origin), {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(3000),
    });
    if (!res.ok) return 0;
    const body = (await res.json()) as { flows?: { rps?: number }[] };
    return (body.flows ?? []).filter((f) => (f.rps ?? 0) > 0).length;
  } catch {
    return 0;
  }
}

async function once(mode: Mode, host: PrebuiltHost | null, sha: string): Promise<RunResult> {
  const work = mkdtempSync(join(os.tmpdir(), `meridian-first-run-${mode}-`));
  const dir = join(work, 'meridian');
  const cache = join(work, 'npm-cache'); // empty: npm downloads every package, prebuild-install finds no cached binary
  mkdirSync(cache);
  const env = newcomerEnv({ npm_config_cache: cache, ...(host ? { [BINARY_HOST_ENV]: host.url } : {}) });
  const requestsBefore = host?.requests.length ?? 0;
  const startedUtc = utc();
  const loadBefore = load();
  process.stderr.write(`[${startedUtc}] ${mode}: clone into ${dir} (load ${loadBefore})\n`);

  const t0 = performance.now();
  const wall0 = Date.now();
  execFileSync('git', ['clone', '--quiet', '--no-checkout', root, dir]);
  execFileSync('git', ['-C', dir, 'checkout', '--quiet', sha]);
  const cloneS = since(t0);

  const tInstall = performance.now();
  const installExit = await run('npm', ['install'], dir, env, INSTALL_LIMIT_MS, join(work, 'npm-install.log'));
  const installS = since(tInstall);
  const node = join(dir, 'node_modules', 'better-sqlite3', 'build', 'Release');
  const sqliteBinary = !existsSync(join(node, 'better_sqlite3.node'))
    ? 'missing'
    : existsSync(join(node, 'obj.target'))
      ? 'compiled'
      : 'prebuilt';
  const mtimeS = (f: string): number | null => (existsSync(f) ? Math.round((statSync(f).ctimeMs - wall0) / 100) / 10 : null);
  const sqliteAtS = mtimeS(join(node, 'better_sqlite3.node'));
  const distAtS = mtimeS(join(dir, 'dist', 'cli', 'commands', 'summaries.json'));
  process.stderr.write(`  npm install: exit ${installExit} in ${installS} s (better-sqlite3 ${sqliteBinary})\n`);

  const at: Partial<Record<Milestone, number>> = {};
  let firstTraffic = '';
  let flows = 0;
  const seen = new Map<number, ProcInfo>();
  let startExit: number | string | null = null;
  let startS = 0;
  let npmGoneS: number | null = null;
  if (installExit === 0) {
    const tStart = performance.now();
    const npm: ChildProcess = spawn('npm', ['start'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const transcript: string[] = [];
    let dashboard = '';
    let rest = '';
    const onLine = (raw: string): void => {
      const line = raw.replace(ANSI, '');
      const t = since(t0);
      transcript.push(`${t.toFixed(1).padStart(6)} ${line}`);
      for (const [name, re] of Object.entries(MILESTONES) as [keyof typeof MILESTONES, RegExp][]) {
        const m = re.exec(line);
        if (!m || at[name] !== undefined) continue;
        at[name] = t;
        if (name === 'dashboard') dashboard = m[1] ?? '';
        if (name === 'traffic') firstTraffic = line;
      }
    };
    npm.stdout?.on('data', (b: Buffer) => {
      rest += b.toString();
      let i: number;
      while ((i = rest.indexOf('\n')) >= 0) {
        onLine(rest.slice(0, i));
        rest = rest.slice(i + 1);
      }
    });
    npm.stderr?.on('data', (b: Buffer) => transcript.push(`   err ${b.toString().trimEnd()}`));
    const exited = new Promise<void>((r) => npm.on('exit', (code, sig) => ((startExit = code ?? sig), r())));
    const deadline = tStart + START_LIMIT_MS;
    while (startExit === null && performance.now() < deadline && at.told === undefined && at.failed === undefined) {
      if (npm.pid) collectTree(npm.pid, seen);
      if (dashboard && at.dashboardTraffic === undefined) {
        flows = await dashboardFlows(dashboard);
        if (flows > 0) at.dashboardTraffic = since(t0);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (npm.pid) collectTree(npm.pid, seen);
    if (dashboard) flows = Math.max(flows, await dashboardFlows(dashboard));
    startS = since(tStart);
    // Ctrl-C's equivalent under a process manager: SIGTERM to npm, then 3 s for the rest to go
    const tTerm = performance.now();
    npm.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (startExit !== null) npmGoneS = since(tTerm);
    await new Promise((r) => setTimeout(r, 3000));
    writeFileSync(join(work, 'npm-start.log'), `${transcript.join('\n')}\n`);
  }
  const left = leftOver(seen, dir);
  const storyTold = at.told !== undefined && at.promoted !== undefined && at.rolledBack !== undefined;
  const result: RunResult = {
    mode,
    startedUtc,
    loadBefore,
    loadAfter: load(),
    cloneS,
    install: { exit: installExit, s: installS, sqliteBinary, sqliteAtS, distAtS },
    ...(host ? { prebuiltRequests: host.requests.slice(requestsBefore).map((r) => `${r.status} ${r.path}`) } : {}),
    start: { exit: startExit, s: startS, at, firstTraffic, dashboardFlows: flows },
    storyTold,
    withinThreeMinutes: storyTold && (at.told ?? Infinity) <= THREE_MINUTES_S && at.dashboardTraffic !== undefined,
    afterSigterm: { npmGoneS, processesSeen: seen.size, left },
  };
  process.stderr.write(
    `  story ${storyTold ? 'told' : 'NOT told'} at ${at.told ?? at.failed ?? '-'} s since clone; ${left.length} process(es) left; logs in ${work}\n`,
  );
  if (!KEEP && storyTold && left.length === 0) rmSync(work, { recursive: true, force: true }); // a failed run keeps its logs
  return result;
}

function table(results: RunResult[]): string {
  const cell = (n: number | null | undefined): string => (n === undefined || n === null ? '–' : `${n.toFixed(1)} s`);
  const head = '| | ' + results.map((r, i) => `run ${i + 1}: ${r.mode} (${r.startedUtc.slice(11, 16)} UTC)`).join(' | ') + ' |';
  const rows: [string, (r: RunResult) => string][] = [
    ['load average (1, 5, 15 min) before', (r) => r.loadBefore],
    ['load average after', (r) => r.loadAfter],
    ['`git clone` + checkout', (r) => cell(r.cloneS)],
    ['`npm install` (exit)', (r) => `${cell(r.install.s)} (${r.install.exit})`],
    ['  better-sqlite3 binary', (r) => `${r.install.sqliteBinary}, written at ${cell(r.install.sqliteAtS)}`],
    ['  `prepare` (tsc) done at', (r) => cell(r.install.distAtS)],
    ['fleet up', (r) => cell(r.start.at.fleetUp)],
    ['dashboard URL printed', (r) => cell(r.start.at.dashboard)],
    ["dashboard's traffic API shows flows", (r) => cell(r.start.at.dashboardTraffic)],
    ['first traffic report', (r) => cell(r.start.at.traffic)],
    ['first rollout starts', (r) => cell(r.start.at.firstRollout)],
    ['good version promoted (every wave)', (r) => cell(r.start.at.promoted)],
    ['bad version rolled back', (r) => cell(r.start.at.rolledBack)],
    ['story told', (r) => (r.storyTold ? `**${cell(r.start.at.told)}**` : `not told (${cell(r.start.at.failed)})`)],
    ['within 3 minutes', (r) => (r.withinThreeMinutes ? 'yes' : 'no')],
    ['SIGTERM to npm: npm gone in', (r) => cell(r.afterSigterm.npmGoneS)],
    ['processes seen / left 3 s later', (r) => `${r.afterSigterm.processesSeen} / ${r.afterSigterm.left.length}`],
  ];
  return [
    head,
    `| --- |${results.map(() => ' ---: |').join('')}`,
    ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(' | ')} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  const sha = execFileSync('git', ['-C', root, 'rev-parse', REF], { encoding: 'utf8' }).trim();
  const modes: Mode[] = MODE === 'both' ? ['prebuilt', 'source'] : [MODE as Mode];
  let host: PrebuiltHost | null = null;
  const hostDir = mkdtempSync(join(os.tmpdir(), 'meridian-prebuilt-host-'));
  if (modes.includes('prebuilt')) host = await startPrebuiltHost(join(root, 'node_modules', 'better-sqlite3'), hostDir);
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  const locked = lock.packages['node_modules/better-sqlite3']?.version;
  if (host && locked !== host.version) throw new Error(`the compiled better-sqlite3 is ${host.version}, the lock file wants ${locked}`);
  const results: RunResult[] = [];
  try {
    for (let i = 0; i < RUNS; i++) for (const mode of modes) results.push(await once(mode, mode === 'prebuilt' ? host : null, sha));
  } finally {
    await host?.close();
    rmSync(hostDir, { recursive: true, force: true });
  }
  if (JSON_OUT) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }
  const out = [
    `### First run from a fresh clone (\`bench/first-run.ts\`), ${sha.slice(0, 7)}`,
    '',
    `- command: \`npx tsx bench/first-run.ts ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, npm ${execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim()}`,
    ...(host
      ? [
          `- prebuilt stand-in: ${host.asset} (${(host.bytes / 2 ** 20).toFixed(1)} MiB) served at ${host.url}/v${host.version}/ (${BINARY_HOST_ENV})`,
        ]
      : []),
    "- times in seconds since `git clone` began, except `npm install`'s own duration",
    '',
    table(results),
    '',
    ...results.flatMap((r, i) => [
      `run ${i + 1}: first traffic report: ${r.start.firstTraffic || '–'}`,
      ...(r.prebuiltRequests ? [`run ${i + 1}: the stand-in host served: ${r.prebuiltRequests.join(', ') || 'nothing'}`] : []),
      ...(r.afterSigterm.left.length > 0 ? [`run ${i + 1}: left: ${r.afterSigterm.left.join('; ')}`] : []),
    ]),
    '',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  process.exitCode = results.every((r) => r.storyTold && r.afterSigterm.left.length === 0) ? 0 : 1;
}

await main();
