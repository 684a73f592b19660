/**
 * `npm run bench`: runs every benchmark script in bench/ in turn — each `*.ts` directly in this folder
 * except this file and the fleet generator; helpers belong in bench/lib/ — each in its own process,
 * passing their Markdown through to stdout. Exits non-zero when any script fails.
 *
 *   npm run bench                                        # every script, with its defaults
 *   npm run bench -- validate-plan --sizes 100,1000      # one script, with arguments for it
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const NOT_BENCHES = new Set(['run.ts', 'gen-fleet.ts']);
const dir = import.meta.dirname;
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !NOT_BENCHES.has(f))
  .sort();

const [first, ...rest] = process.argv.slice(2);
const chosen = first !== undefined && !first.startsWith('-') ? first.replace(/\.ts$/, '') : undefined;
if (chosen !== undefined && !all.includes(`${chosen}.ts`)) {
  process.stderr.write(`no benchmark named ${chosen}; there are: ${all.map((f) => f.replace(/\.ts$/, '')).join(', ')}\n`);
  process.exit(2);
}
if (chosen === undefined && first !== undefined) {
  process.stderr.write('arguments go to one script: npm run bench -- NAME [ARGS...]\n');
  process.exit(2);
}
const scripts = chosen !== undefined ? [`${chosen}.ts`] : all;
const args = chosen !== undefined ? rest : [];

let failed = 0;
for (const script of scripts) {
  process.stdout.write(`\n<!-- bench/${script} -->\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(dir, script), ...args], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed += 1;
    process.stderr.write(`bench/${script} exited with ${r.status ?? r.signal}\n`);
  }
}
process.stdout.write(`\n${scripts.length - failed} of ${scripts.length} benchmark script(s) succeeded.\n`);
process.exitCode = failed > 0 ? 1 : 0;
