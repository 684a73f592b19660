/** Deployment drivers behind one interface; see docs/targets.md. */
export * from './target.js';
export { SecretResolutionError, TargetError } from './errors.js';
export { installShutdownHandlers, type Closable, type ShutdownOptions } from './shutdown.js';
export { LocalTarget } from './local/local-target.js';
export {
  DEFAULT_INHERITED_ENV,
  DEFAULT_LOCAL_HEALTH,
  type LocalHealthOptions,
  type LocalTargetOptions,
  type OutputLine,
} from './local/local-options.js';
export type { LocalReplicaStatus } from './local/replicas.js';
export { DEFAULT_BACKOFF, type BackoffPolicy } from '../backoff.js';
