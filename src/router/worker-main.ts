/**
 * Entry of a router process with its configuration in MERIDIAN_ROUTER_CONFIG: a worker started by
 * `startWorkers` or, following the control plane through its primary, by `startFollowingWorkers`
 * (node:cluster); or run directly (benchmarks) — then with `workers > 1` it is the primary and starts
 * the workers. Runs until SIGTERM or SIGINT.
 */
import cluster from 'node:cluster';
import type { RunningRouter } from './router-process.js';
import { startStandalone, startWorkers, type StandaloneConfig } from './standalone.js';
import { WORKER_CONFIG_ENV } from './workers.js';
import { isRelayedWorkerConfig, startRelayedWorker, type RelayedWorkerConfig } from './table-relay.js';

const raw = process.env[WORKER_CONFIG_ENV];
if (raw === undefined) {
  process.stderr.write(`${WORKER_CONFIG_ENV} is not set: this module is started by \`meridian router --workers N\`\n`);
  process.exit(2);
}
const config = JSON.parse(raw) as StandaloneConfig | RelayedWorkerConfig;
const log = (level: string, message: string): void => {
  if (level !== 'info') process.stderr.write(`router[${process.pid}] ${level}: ${message}\n`);
};
let running: RunningRouter;
if (isRelayedWorkerConfig(config)) running = await startRelayedWorker(config, log);
else running = cluster.isPrimary && (config.workers ?? 1) > 1 ? await startWorkers(config, log) : await startStandalone(config, log);
if (process.send === undefined) process.stdout.write(`listening ${running.port}\n`);
let stopping = false;
const stop = (): void => {
  if (stopping) process.exit(1);
  stopping = true;
  void running.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
