/** Prints findings for a human when loading a fleet fails (exit 2). */
import { formatLocation, type Finding } from '../findings/finding.js';
import { type Io, write } from './io.js';

export async function printFindings(io: Io, findings: readonly Finding[], headline: string): Promise<void> {
  const s = io.errStyle;
  const lines = [headline];
  for (const f of findings) {
    const where = formatLocation(f.location) || f.path || '';
    lines.push(`  ${s.bold(where)}  ${s.dim(f.code)}`, `    ${f.message}`);
    if (f.fix) lines.push(`    ${s.cyan('fix')}: ${f.fix}`);
  }
  await write(io.err, `${lines.join('\n')}\n`);
}
