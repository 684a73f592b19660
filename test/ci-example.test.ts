/**
 * examples/ci/github-actions.yml cannot rot: this test runs its jobs as a GitHub Actions runner would —
 * each job whose `if:` holds for the event, its `run:` steps in order with bash (`shell: bash` is
 * `bash --noprofile --norc -eo pipefail`), the workflow's, job's and step's `env:` with `${{ … }}`
 * replaced by this test's values, the runner's own variables (GITHUB_STEP_SUMMARY, GITHUB_ENV,
 * GITHUB_OUTPUT, …), GITHUB_ENV carried to later steps, a failing step ending its job — against a local
 * fleet (`meridian up`), a real `meridian serve --oidc` and a local OIDC issuer whose token service stands
 * in for GitHub's (ACTIONS_ID_TOKEN_REQUEST_URL, handed only to a job with `id-token: write`).
 * `uses:` steps (checkout, setup-node) and the step `id: install` are not run: the workspace is prepared
 * here and the built CLI is `meridian` on PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { BIN, runMeridian, spawnNode, type NodeProcess } from './support/cli-kit.js';
import { type ActionsTokenService, type Issuer, startActionsTokenService, startIssuer } from './support/oidc-kit.js';
import { liveFleet, type LiveFleet } from './support/rollout-live-kit.js';
import { api, until } from './support/server-kit.js';

const WORKFLOW = join(import.meta.dirname, '..', 'examples', 'ci', 'github-actions.yml');

interface Step {
  readonly name?: string;
  readonly id?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly env?: Record<string, string>;
}
interface Job {
  readonly if?: string;
  readonly permissions?: Record<string, string>;
  readonly env?: Record<string, string>;
  readonly steps: readonly Step[];
}
interface Workflow {
  readonly env?: Record<string, string>;
  readonly defaults?: { run?: { shell?: string } };
  readonly jobs: Record<string, Job>;
}

/** One step as it ran. */
interface StepRun {
  readonly name: string;
  readonly code: number;
  readonly out: string;
  readonly outputs: Record<string, string>;
}
/** One job as it ran: its steps until the first that failed, and what they wrote to the step summary. */
interface JobRun {
  readonly job: string;
  readonly steps: StepRun[];
  readonly ok: boolean;
  readonly summary: string;
  /** The steps not run: `uses:` and the install step. */
  readonly skipped: string[];
}

type Event = 'pull_request' | 'push' | 'workflow_dispatch';

let issuer: Issuer;
let tokens: ActionsTokenService;
let live: LiveFleet;
let serve: NodeProcess;
let server = '';
let ws = '';
let binDir = '';
const REQUEST_TOKEN = 'runner-request-token';
const secrets: Record<string, string> = {};
const vars: Record<string, string> = {};

/** The event of the workflow run in progress (the ID token's `event_name`). */
let current: Event = 'push';
/** What the ID token's `event_name` says instead of {@link current}, to see a token refused. */
let claimedEvent: string | undefined;

/** The ID token's claims as GitHub writes them for a job of acme/fleet on `event`. */
function claims(event: string): Record<string, unknown> {
  return {
    sub: 'repo:acme/fleet:environment:production',
    repository: 'acme/fleet',
    repository_owner: 'acme',
    ref: 'refs/heads/main',
    event_name: event,
    actor: 'octocat',
    workflow: 'meridian',
    environment: 'production',
  };
}

/** `${{ expr }}` → its value here; an expression this test does not know fails it (teach it the new one). */
function substitute(value: string, event: Event): string {
  return value.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, expr: string) => {
    let m: RegExpExecArray | null;
    if ((m = /^secrets\.(\w+)$/.exec(expr))) return need(secrets, m[1] ?? '', expr);
    if ((m = /^vars\.(\w+)$/.exec(expr))) return need(vars, m[1] ?? '', expr);
    if (expr === 'github.event_name') return event;
    throw new Error(`the workflow uses \${{ ${expr} }}, which this test does not provide`);
  });
}
function need(from: Record<string, string>, key: string, expr: string): string {
  const v = from[key];
  if (v === undefined) throw new Error(`the workflow uses \${{ ${expr} }}, which this test does not provide`);
  return v;
}

/** A job's `if:` for `event`: the workflow's conditions are `github.event_name == 'x'` joined by `||`. */
function runsOn(job: Job, event: Event): boolean {
  if (job.if === undefined) return true;
  return job.if.split('||').some((part) => {
    const m = /^\s*github\.event_name\s*==\s*'([\w-]+)'\s*$/.exec(part);
    if (!m) throw new Error(`the job condition ${JSON.stringify(job.if)} is beyond this test's evaluator`);
    return m[1] === event;
  });
}

/** KEY=VALUE lines and KEY<<DELIM heredocs, as the runner reads GITHUB_ENV and GITHUB_OUTPUT. */
function readCommandFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(file)) return out;
  const lines = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const body: string[] = [];
      while (++i < lines.length && lines[i] !== heredoc[2]) body.push(lines[i] ?? '');
      out[heredoc[1] ?? ''] = body.join('\n');
    } else if (line.includes('=')) out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  return out;
}

/** Runs every job of the workflow that `event` starts, in order; a job's failing step ends that job. */
async function runWorkflow(event: Event, name: string): Promise<JobRun[]> {
  const wf = parse(readFileSync(WORKFLOW, 'utf8')) as Workflow;
  expect(wf.defaults?.run?.shell, 'the test runs steps as `shell: bash` does').toBe('bash');
  current = event;
  const runs: JobRun[] = [];
  const dir = join(live.work, 'runner', name);
  mkdirSync(dir, { recursive: true });
  for (const [jobName, job] of Object.entries(wf.jobs)) {
    if (!runsOn(job, event)) continue;
    const summary = join(dir, `${jobName}-summary.md`);
    const envFile = join(dir, `${jobName}-env`);
    writeFileSync(summary, '');
    writeFileSync(envFile, '');
    const oidc = job.permissions?.['id-token'] === 'write';
    const base: Record<string, string> = {
      PATH: `${binDir}:${process.env['PATH'] ?? ''}`,
      HOME: process.env['HOME'] ?? '/tmp',
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      GITHUB_EVENT_NAME: event,
      GITHUB_ACTOR: 'octocat',
      GITHUB_REPOSITORY: 'acme/fleet',
      GITHUB_REF: event === 'pull_request' ? 'refs/pull/7/merge' : 'refs/heads/main',
      GITHUB_WORKSPACE: ws,
      GITHUB_STEP_SUMMARY: summary,
      GITHUB_ENV: envFile,
      RUNNER_TEMP: dir,
      ...(oidc ? { ACTIONS_ID_TOKEN_REQUEST_URL: tokens.requestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN } : {}),
    };
    const envOf = (e: Record<string, string> | undefined): Record<string, string> =>
      Object.fromEntries(Object.entries(e ?? {}).map(([k, v]) => [k, substitute(String(v), event)]));
    const steps: StepRun[] = [];
    const skipped: string[] = [];
    let ok = true;
    for (const [i, step] of job.steps.entries()) {
      const label = step.name ?? step.uses ?? `#${i}`;
      if (step.uses !== undefined || step.id === 'install') {
        skipped.push(label);
        continue;
      }
      if (step.run === undefined) throw new Error(`step ${label} of ${jobName} has neither uses nor run`);
      const script = join(dir, `${jobName}-${i}.sh`);
      const output = join(dir, `${jobName}-${i}-output`);
      writeFileSync(script, substitute(step.run, event));
      writeFileSync(output, '');
      // not spawnSync: the token service the step calls runs in this process
      const r = await bash(script, {
        ...base,
        ...envOf(wf.env),
        ...envOf(job.env),
        ...readCommandFile(envFile),
        ...envOf(step.env),
        GITHUB_OUTPUT: output,
      });
      steps.push({ name: label, code: r.code, out: r.out, outputs: readCommandFile(output) });
      if (r.code !== 0) {
        ok = false;
        break;
      }
    }
    runs.push({ job: jobName, steps, ok, summary: readFileSync(summary, 'utf8'), skipped });
  }
  return runs;
}

/** Runs a step's script as `shell: bash` does, in the workspace; stdout and stderr in one log, as the runner shows them. */
function bash(script: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], { cwd: ws, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

/** The job failed at its `Roll out` step: the step's exit code, the rollout's, its error code and the `::error` annotation. */
function expectFailedRollout(run: JobRun | undefined, want: { step: number; rollout: string; error: string; annotation: string }): void {
  expect(run?.ok).toBe(false);
  const s = step(run, 'Roll out');
  expect(s.code).toBe(want.step);
  expect(s.outputs['exit-code']).toBe(want.rollout);
  expect(s.out).toContain(want.error);
  expect(s.out).toMatch(new RegExp(`^::error title=meridian::${want.annotation}`, 'm'));
}

/** `meridian ARGS` in the checkout without blocking this process (the test's servers answer it). */
function runAsync(args: readonly string[], env: Record<string, string>): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ws, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: 'pipe' });
    let err = '';
    child.stdout.on('data', (c: Buffer) => (err += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, err }));
  });
}

function step(run: JobRun | undefined, name: string): StepRun {
  const s = run?.steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name} ran in ${run?.job}: ${JSON.stringify(run?.steps.map((x) => [x.name, x.code, x.out]))}`);
  return s;
}

beforeAll(async () => {
  issuer = await startIssuer();
  tokens = await startActionsTokenService(issuer, { requestToken: REQUEST_TOKEN, claims: () => claims(claimedEvent ?? current) });
  // the second wave needs a release manager's approval: the push's rollout parks there (exit 5)
  live = liveFleet('ci-example', (y) =>
    y.replace('    - name: rest\n', '    - name: rest\n      approvals: { count: 1, roles: [release-manager] }\n'),
  );
  await live.up();
  binDir = join(live.work, 'bin');
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'meridian'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
  chmodSync(join(binDir, 'meridian'), 0o755);
  // the repository's checkout: the fleet at `fleet/`
  ws = join(live.work, 'checkout');
  cpSync(live.fleet, join(ws, 'fleet'), { recursive: true });
  const state = join(live.work, '.meridian', 'state.db');
  writeFileSync(
    join(live.work, 'oidc.yaml'),
    [
      'rules:',
      `  - issuer: ${issuer.url}`,
      '    audience: meridian',
      '    role: deployer',
      '    claims: { repository: acme/fleet, ref: refs/heads/main, event_name: [push, workflow_dispatch] }',
      '    identityClaim: actor',
      '',
    ].join('\n'),
  );
  serve = spawnNode([BIN, 'serve', '--port', '0', '--oidc', 'oidc.yaml', '--state', state, '--no-local-admin', '--no-dashboard'], {
    cwd: live.work,
  });
  await until(() => /control plane on (http:\S+)/.test(serve.out()), `meridian serve to listen: ${serve.err()}`, 30_000);
  server = /control plane on (http:\S+)/.exec(serve.out())?.[1] ?? '';
  const info = live.info();
  Object.assign(secrets, { MERIDIAN_STATE: state, MERIDIAN_CONTROL_TOKEN: info.token });
  Object.assign(vars, { MERIDIAN_SERVER: server, MERIDIAN_CONTROL: info.control });
}, 90_000);

afterAll(async () => {
  if (serve) {
    serve.proc.kill('SIGTERM');
    await serve.exited;
  }
  if (live) expect(await live.down()).toEqual([]);
  live?.remove();
  await new Promise((r) => tokens?.server.close(r));
  await new Promise((r) => issuer?.server.close(r));
});

describe('examples/ci/github-actions.yml', () => {
  it('a pull request with a broken fleet: validate fails with an annotation on the file and line; plan does not run', async () => {
    const fleetYaml = join(ws, 'fleet', 'fleet.yaml');
    const good = readFileSync(fleetYaml, 'utf8');
    writeFileSync(fleetYaml, good.replace(/web:1\.0\.0@sha256:[0-9a-f]+/, 'web:1.0.0'));
    try {
      const [check, ...others] = await runWorkflow('pull_request', 'pr-broken');
      expect(others).toEqual([]);
      expect(check?.job).toBe('check');
      expect(check?.skipped).toEqual(['actions/checkout@v4', 'actions/setup-node@v4', 'Install meridian']);
      expect(check?.ok).toBe(false);
      const validate = step(check, 'Validate');
      expect(validate.code).toBe(1);
      expect(validate.out).toMatch(/^::error file=fleet\/fleet\.yaml,line=\d+,.*::.*digest/m);
      expect(check?.steps.map((s) => s.name)).toEqual(['Validate']);
      expect(check?.summary).toBe('');
    } finally {
      writeFileSync(fleetYaml, good);
    }
  }, 60_000);

  it('a pull request: validate is clean, the plan goes into the step summary', async () => {
    writeFileSync(
      join(ws, 'fleet', 'fleet.yaml'),
      readFileSync(join(ws, 'fleet', 'fleet.yaml'), 'utf8')
        .replace('version: 1.0.0', 'version: 1.1.0')
        .replace('web:1.0.0@', 'web:1.1.0@'),
    );
    const [check] = await runWorkflow('pull_request', 'pr');
    expect(check?.ok, JSON.stringify(check?.steps)).toBe(true);
    expect(step(check, 'Validate').out).not.toMatch(/^::(error|warning)/m);
    expect(check?.summary).toMatch(/^### meridian plan\n```\n/);
    expect(check?.summary).toMatch(/local-a/);
    expect(check?.summary).toMatch(/1\.0\.0 → 1\.1\.0|1\.1\.0/);
    expect(existsSync(join(ws, 'plan.json'))).toBe(true);
  }, 60_000);

  it('a push whose token the server refuses (its rule does not cover the event): the rollout step fails before anything is recorded', async () => {
    claimedEvent = 'pull_request';
    try {
      const [push] = await runWorkflow('push', 'push-refused');
      expectFailedRollout(push, {
        step: 2,
        rollout: '2',
        error: 'MERIDIAN_E_ROLLOUT_IDENTITY',
        annotation: 'meridian rollout exited with 2',
      });
    } finally {
      claimedEvent = undefined;
    }
    const store = await openSqliteStore(secrets['MERIDIAN_STATE'] ?? '');
    try {
      expect(await store.listRollouts({})).toEqual([]);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('rollout --server refuses a token whose role may not drive rollouts, and --actor beside it', async () => {
    const state = secrets['MERIDIAN_STATE'] ?? '';
    const mint = runMeridian(['token', 'create', '--role', 'viewer', '--name', 'vera', '--state', state], { cwd: ws, actor: 'admin' });
    const vera = /mrd_\S+/.exec(mint.out)?.[0] ?? '';
    expect(vera, mint.err).not.toBe('');
    const env = { MERIDIAN_SERVER_TOKEN: vera, MERIDIAN_STATE: state, MERIDIAN_CONTROL_TOKEN: live.info().token };
    const args = ['rollout', 'fleet', '--server', server, '--control', live.info().control];
    const viewer = await runAsync(args, env);
    expect(viewer.code).toBe(2);
    expect(viewer.err).toMatch(/MERIDIAN_E_ROLLOUT_IDENTITY.*vera \(token:\w+, role viewer\) may not drive rollouts/);
    const both = await runAsync([...args, '--actor', 'mallory'], env);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/MERIDIAN_E_USAGE.*--actor and --server exclude each other/);
    const store = await openSqliteStore(state);
    try {
      expect(await store.listRollouts({})).toEqual([]);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('a push to main: the rollout acts as the OIDC identity, parks at the approval (exit 5), a second push is refused (exit 6), and a run by hand resumes it (exit 0)', async () => {
    const [push, ...others] = await runWorkflow('push', 'push');
    expect(others).toEqual([]);
    expect(push?.job).toBe('rollout');
    expect(push?.ok, JSON.stringify(push?.steps)).toBe(true);
    expect(tokens.issued()).toBe(2);
    const token = readCommandFile(join(live.work, 'runner', 'push', 'rollout-env'))['MERIDIAN_SERVER_TOKEN'] ?? '';
    expect(token.split('.')).toHaveLength(3);
    const fetched = step(push, 'OIDC token for meridian serve');
    expect(fetched.out).toBe(`::add-mask::${token}\n`);
    const rollout = step(push, 'Roll out');
    expect(rollout.outputs['exit-code']).toBe('5');
    expect(rollout.out).toMatch(/^::warning title=meridian::paused/m);
    expect(rollout.out).not.toContain(token);
    expect(push?.summary).toMatch(/awaiting-approval|awaiting approval/i);

    // a second push while it waits: refused, with the holder named (exit 6)
    const [again] = await runWorkflow('push', 'push-again');
    expectFailedRollout(again, { step: 1, rollout: '6', error: 'MERIDIAN_E_ROLLOUT_LOCKED', annotation: 'refused' });

    // someone else approves the wave on the control plane (an approver's API token)
    const mint = spawnSync(
      process.execPath,
      [BIN, 'token', 'create', '--role', 'approver', '--name', 'bob', '--state', secrets['MERIDIAN_STATE'] ?? ''],
      {
        encoding: 'utf8',
        env: { ...process.env, MERIDIAN_ACTOR: 'admin' },
      },
    );
    const bob = /mrd_\S+/.exec(mint.stdout)?.[0] ?? '';
    expect(bob, mint.stderr).not.toBe('');
    const list = await api(server, 'GET', '/api/v1/rollouts', { token: bob });
    const [parked] = list.body as { id: string; state: string }[];
    expect(parked?.state).toBe('awaiting-approval');
    const id = parked?.id ?? '';
    const approved = await api(server, 'POST', `/api/v1/rollouts/${id}/approve`, { token: bob, body: { wave: 'rest' } });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);

    const [resume] = await runWorkflow('workflow_dispatch', 'resume');
    expect(resume?.ok, JSON.stringify(resume?.steps)).toBe(true);
    const resumed = step(resume, 'Roll out');
    expect(resumed.outputs['exit-code']).toBe('0');
    expect(resumed.out).toMatch(/^::notice title=meridian::promoted/m);
    expect(resume?.summary).toMatch(/promoted/);

    // the audit log names the workflow's OIDC identity for every step of the rollout, never GITHUB_ACTOR's claim
    const store = await openSqliteStore(secrets['MERIDIAN_STATE'] ?? '');
    try {
      const entries = (await store.listAudit({ limit: 500 })).filter((e) => e.subject === id || e.action.startsWith('rollout'));
      const byRollout = entries.filter((e) => e.subject === id && e.action !== 'approval.approve');
      expect(byRollout.length).toBeGreaterThan(3);
      for (const e of byRollout) expect(e.actor, e.action).toEqual({ id: 'octocat', via: `oidc:${issuer.url}` });
      expect(entries.find((e) => e.action === 'approval.approve')?.actor.id).toBe('bob');
      expect((await store.getRollout(id))?.state).toBe('promoted');
    } finally {
      await store.close();
    }
  }, 120_000);
});
