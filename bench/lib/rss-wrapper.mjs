// Runs `bin/meridian.js` in this process and, when it exits, writes this process's peak RSS (KiB) to
// the file named by MERIDIAN_BENCH_RSS_FILE. Used when /usr/bin/time is not installed.
//   node bench/lib/rss-wrapper.mjs path/to/bin/meridian.js ARGS...
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [bin, ...args] = process.argv.slice(2);
const out = process.env.MERIDIAN_BENCH_RSS_FILE;
process.on('exit', () => {
  if (out) writeFileSync(out, String(process.resourceUsage().maxRSS));
});
process.argv = [process.argv[0], resolve(bin), ...args];
await import(pathToFileURL(resolve(bin)).href);
