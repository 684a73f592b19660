// Runs the CLI from bench/out/dist (the benchmark's own tsc build of src/), like bin/meridian.js runs dist/.
// Used by `validate-plan --fresh`, so the numbers are for the source as it is now, whatever dist/ holds.
const entry = new URL('../out/dist/cli/main.js', import.meta.url);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
