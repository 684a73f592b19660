/** `meridian validate`: the fail-closed preflight, reported for people or for CI. Exit 0 clean, 1 findings, 2 unusable input. */
import { Option, type Command } from 'commander';
import { OUTPUTS, report, type Output } from '../../validate/report/index.js';
import { exitCodeFor } from '../../validate/exit-code.js';
import { validateFleet, type ValidateResult } from '../../validate/run.js';
import { type Io, write, type Result } from '../io.js';
import { recordedState } from '../state.js';
import { writeNamedFile } from '../options.js';
import { loadAndRender } from './render.js';

/** The preflight's result with the API servers' dry-run refusals added. */
async function withServerDryRun(r: ValidateResult, dir: string, io: Io): Promise<ValidateResult> {
  const { loaded, rendered } = loadAndRender(dir);
  const { serverDryRunFindings } = await import('../../fleet/server-dry-run.js');
  const extra = await serverDryRunFindings(loaded, rendered.revision, { env: io.env });
  const findings = [...r.findings, ...extra];
  return { ...r, findings, checks: [...r.checks, 'server-dry-run'], exitCode: exitCodeFor(findings) };
}

export function registerValidate(program: Command, io: Io, result: Result): void {
  program
    .command('validate')
    .description(
      'check a fleet before anything is deployed: schema, references, digests, versions, secrets, quotas, residency, failover, policies',
    )
    .argument('[fleet]', 'fleet directory or file', '.')
    .addOption(new Option('-o, --output <format>', 'report format').choices(OUTPUTS).default('text'))
    .option('--report <file>', 'also write the report to this file (e.g. JUnit for the CI system) and print text')
    .option('--state <store>', 'state store to read what runs now from (for version skew); default .meridian/state.db')
    .option('--no-state', 'check without the recorded state (as for a first rollout)')
    .option('--server-dry-run', "also send each kubernetes cluster's objects to its API server with dry-run; refusals are findings")
    .action(async (dir: string, opts: { output: Output; report?: string; state?: string | false; serverDryRun?: boolean }) => {
      const recorded = opts.state === false ? undefined : await recordedState(opts.state, io);
      let r = await validateFleet(dir, { now: io.now(), recorded, env: io.env });
      if (opts.serverDryRun && !r.unusable) r = await withServerDryRun(r, dir, io);
      const text = report(opts.output, r.findings, { color: opts.output === 'text' && io.style.color, checks: r.checks });
      if (opts.report !== undefined) {
        writeNamedFile('--report', opts.report, report(opts.output, r.findings, { checks: r.checks }));
        await write(io.out, report('text', r.findings, { color: io.style.color, checks: r.checks }));
      } else {
        await write(io.out, text);
      }
      result.code = r.exitCode;
    });
}
