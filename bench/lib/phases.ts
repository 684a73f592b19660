/**
 * Child process of the benchmarks: runs the library phases of `validate` and `plan` on one fleet —
 * load, render, preflight (when src/validate/preflight exists) and the cluster diff against an empty
 * state (when src/plan/diff exists) — and prints their times and the process's peak RSS as one line
 * of JSON. A fresh process per run, so that one run's heap does not flatter the next.
 *
 * With MERIDIAN_BENCH_LIB=DIR it uses the compiled library in DIR (tsc's output: what the CLI runs,
 * with true line numbers in CPU profiles), else src/ through tsx.
 *
 *   node --import tsx bench/lib/phases.ts DIR
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as LoadModule from '../../src/spec/load.js';
import type * as RenderModule from '../../src/render/render.js';
import type { Finding } from '../../src/findings/finding.js';
import { benchSecretEnv } from '../gen-fleet.js';

/** What one run of the phases reports; a phase that is not in the library yet is null. */
export interface PhaseResult {
  readonly loadMs: number;
  readonly renderMs: number;
  readonly preflightMs: number | null;
  readonly diffMs: number | null;
  /** Unwaived errors from load, render and preflight. */
  readonly findings: number;
  readonly clusters: number;
  readonly instances: number;
  readonly maxRssMiB: number;
  readonly firstFindings: readonly string[];
}

type Preflight = (input: {
  loaded: LoadModule.LoadedFleet;
  rendered: RenderModule.RenderResult;
  now: Date;
  env: NodeJS.ProcessEnv;
}) => Promise<Finding[]>;
type DiffClusters = (recorded: Record<string, never>, revision: RenderModule.Revision) => unknown;

const lib = process.env['MERIDIAN_BENCH_LIB'];
const from = (mod: string): string => (lib ? pathToFileURL(join(resolve(lib), `${mod}.js`)).href : `../../src/${mod}.js`);

/** A function exported by a library module, or undefined when the module or the export is not there yet. */
async function optional<T>(mod: string, name: string): Promise<T | undefined> {
  try {
    const m = (await import(from(mod))) as Record<string, unknown>;
    return typeof m[name] === 'function' ? (m[name] as T) : undefined;
  } catch {
    return undefined;
  }
}

const { tryLoadFleet } = (await import(from('spec/load'))) as typeof LoadModule;
const { render } = (await import(from('render/render'))) as typeof RenderModule;
const preflight = await optional<Preflight>('validate/preflight', 'preflight');
const diffClusters = await optional<DiffClusters>('plan/diff', 'diffClusters');

const describe = (f: Finding): string => `${f.code} ${f.path ?? ''}: ${f.message}`;
const failing = (f: Finding): boolean => f.severity === 'error' && !f.waivedBy;

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: phases.ts FLEET_DIR\n');
  process.exit(2);
}
const t0 = performance.now();
const loaded = tryLoadFleet(dir);
const t1 = performance.now();
let result: PhaseResult;
if ('findings' in loaded) {
  result = {
    loadMs: t1 - t0,
    renderMs: 0,
    preflightMs: null,
    diffMs: null,
    findings: loaded.findings.length,
    clusters: 0,
    instances: 0,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    firstFindings: loaded.findings.slice(0, 5).map(describe),
  };
} else {
  const rendered = render(loaded);
  const t2 = performance.now();
  const found: Finding[] = [...rendered.findings];
  let preflightMs: number | null = null;
  if (preflight) {
    found.push(...(await preflight({ loaded, rendered, now: new Date(), env: { ...process.env, ...benchSecretEnv() } })));
    preflightMs = performance.now() - t2;
  }
  let diffMs: number | null = null;
  if (diffClusters) {
    const t3 = performance.now();
    diffClusters({}, rendered.revision);
    diffMs = performance.now() - t3;
  }
  const clusters = Object.values(rendered.revision.clusters);
  const bad = found.filter(failing);
  result = {
    loadMs: t1 - t0,
    renderMs: t2 - t1,
    preflightMs,
    diffMs,
    findings: bad.length,
    clusters: clusters.length,
    instances: clusters.reduce((n, c) => n + Object.keys(c.services).length, 0),
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    firstFindings: bad.slice(0, 5).map(describe),
  };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
