/** Deployment drivers behind one interface; see docs/targets.md. */
export * from './target.js';
export { SecretResolutionError, TargetError } from './errors.js';
export { installShutdownHandlers, type Closable, type ShutdownOptions } from './shutdown.js';
export {
  DEFAULT_INHERITED_ENV,
  DEFAULT_LOCAL_HEALTH,
  LocalTarget,
  type LocalHealthOptions,
  type LocalReplicaStatus,
  type LocalTargetOptions,
  type OutputLine,
} from './local/local-target.js';
export { DEFAULT_BACKOFF, type BackoffPolicy } from '../backoff.js';
