/**
 * A reader for the Prometheus text exposition format (version 0.0.4), enough to take the router's
 * `/_meridian/metrics` apart into samples: names, labels and values; comments and timestamps are skipped.
 */

/** One sample line: `name{labels} value`. */
export interface ExpositionSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseNumber(text: string): number {
  switch (text) {
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return Number.NaN;
    default:
      return text.trim() === '' ? Number.NaN : Number(text);
  }
}

/** Parses exposition text; a line that is not a sample or a comment throws with its line number. */
export function parseExposition(text: string): ExpositionSample[] {
  const out: ExpositionSample[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (why: string): never => {
      throw new SyntaxError(`metrics text line ${i + 1}: ${why}: ${line.slice(0, 120)}`);
    };
    const name = NAME.exec(line)?.[0] ?? fail('no metric name');
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      for (;;) {
        rest = rest.trimStart();
        if (rest.startsWith('}')) {
          rest = rest.slice(1);
          break;
        }
        const label = LABEL.exec(rest)?.[0] ?? fail('bad label name');
        rest = rest.slice(label.length).trimStart();
        if (!rest.startsWith('="')) fail('expected =" after a label name');
        rest = rest.slice(2);
        let value = '';
        let j = 0;
        for (; j < rest.length; j++) {
          const ch = rest[j] as string;
          if (ch === '\\') {
            const next = rest[++j];
            value += next === 'n' ? '\n' : (next ?? '');
          } else if (ch === '"') break;
          else value += ch;
        }
        if (j >= rest.length) fail('unterminated label value');
        labels[label] = value;
        rest = rest.slice(j + 1).trimStart();
        if (rest.startsWith(',')) rest = rest.slice(1);
      }
    }
    const fields = rest.trim().split(/\s+/);
    const value = parseNumber(fields[0] ?? '');
    if (Number.isNaN(value) && fields[0] !== 'NaN') fail('bad sample value');
    out.push({ name, labels, value });
  });
  return out;
}
