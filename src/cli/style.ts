/** Terminal styling: colour only on a terminal, and never when NO_COLOR is set or output is piped. */

export interface Style {
  readonly color: boolean;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
  cyan(s: string): string;
}

function wrap(on: boolean, open: number, close: number): (s: string) => string {
  return on ? (s) => `\u001b[${open}m${s}\u001b[${close}m` : (s) => s;
}

/** A style for a stream: coloured when it is a TTY, unless NO_COLOR is set or FORCE_COLOR says otherwise. */
export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env, force?: boolean): Style {
  const color =
    force ?? (env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0' ? true : !env['NO_COLOR'] && stream.isTTY === true);
  return {
    color,
    red: wrap(color, 31, 39),
    yellow: wrap(color, 33, 39),
    green: wrap(color, 32, 39),
    cyan: wrap(color, 36, 39),
    dim: wrap(color, 2, 22),
    bold: wrap(color, 1, 22),
  };
}
