/**
 * The `meridian` command line. Thin: each command parses its flags, calls a part, prints. Errors are of
 * two kinds: a user error prints a clear message and exits with its code; anything else prints the
 * stack and asks for a report.
 */
import { Command, CommanderError } from 'commander';
import { InputError, MeridianError } from '../errors.js';
import { EXIT, exitCodeOf } from './exit-codes.js';
import { type Io, processIo, write } from './io.js';
import { printFindings } from './print-findings.js';
import { setCliRunner } from './cli-runner.js';

/** Runs the CLI with the given arguments (and commands: all by default); resolves to the exit code. */
export async function main(
  argv: readonly string[],
  io: Io = processIo(),
  register?: (program: Command, io: Io, result: { code: number }) => void,
): Promise<number> {
  const program = new Command('meridian')
    .description('Roll services out across regions and route every request to the cluster that suits it best.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => void io.out.write(s),
      writeErr: (s) => void io.err.write(s),
    })
    .exitOverride()
    // options after a command belong to it (`rollout status -o json` is the subcommand's -o, not rollout's)
    .enablePositionalOptions();
  const result = { code: EXIT.ok as number };
  if (register !== undefined) register(program, io, result);
  else await (await import('./commands/index.js')).registerCommands(program, io, result, argv);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return result.code;
  } catch (err) {
    return report(err, io, argv);
  }
}

const VERSION = '0.1.0';

setCliRunner((argv, io) => main(argv, io));

async function report(err: unknown, io: Io, argv: readonly string[]): Promise<number> {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
    return EXIT.input;
  }
  const s = io.errStyle;
  if (err instanceof InputError) {
    const asJson = argv.includes('json') && (argv.includes('--output') || argv.includes('-o'));
    if (asJson)
      await write(io.out, `${JSON.stringify({ ok: false, error: err.code, message: err.message, findings: err.findings }, null, 2)}\n`);
    else await printFindings(io, err.findings, `${s.red('error')}: ${err.message}`);
    return exitCodeOf(err);
  }
  if (err instanceof MeridianError && err.user) {
    let text = `${s.red('error')} ${s.dim(err.code)}: ${err.message}\n`;
    if (err.hint) text += `  ${s.bold('fix')}: ${err.hint}\n`;
    await write(io.err, text);
    return exitCodeOf(err);
  }
  const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
  const code = err instanceof MeridianError ? ` ${s.dim(err.code)}` : '';
  await write(
    io.err,
    `${s.red('internal error')}${code}: ${stack}\n\nThis is a bug in Meridian. Please report it with the command you ran and the output above.\n`,
  );
  return EXIT.internal;
}
