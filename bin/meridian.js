#!/usr/bin/env node
// The `meridian` command: runs the compiled CLI in dist/ (built by `npm install` through `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(
    'meridian: the CLI is not built yet (dist/ is missing). Run `npm install` or `npm run build` in the project folder.\n',
  );
  process.exit(70);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
