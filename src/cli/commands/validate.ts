/** `meridian validate`: the fail-closed preflight, reported for people or for CI. Exit 0 clean, 1 findings, 2 unusable input. */
import { Option, type Command } from 'commander';
import { OUTPUTS, report, type Output } from '../../validate/report/index.js';
import { validateFleet } from '../../validate/run.js';
import { type Io, write, type Result } from '../io.js';
import { recordedState } from '../state.js';
import { writeNamedFile } from '../options.js';

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
    .action(async (dir: string, opts: { output: Output; report?: string; state?: string | false }) => {
      const recorded = opts.state === false ? undefined : await recordedState(opts.state, io);
      const r = await validateFleet(dir, { now: io.now(), recorded, env: io.env });
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
