// Runs the CLI from src/ under tsx (for benchmarks that start `meridian` processes without a build).
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
