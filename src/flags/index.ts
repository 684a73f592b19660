/** Per-region feature flags: state, pure evaluation, the OFREP handler and the router's OFREP client. See docs/flags.md. */
export { FlagError, suggestName, unknownFlag, unknownRegion } from './errors.js';
export {
  clampPercent,
  describeGate,
  flagState,
  formatPercent,
  openPercent,
  type FlagDefinitions,
  type FlagState,
  type FlagView,
  type GateSource,
  type RegionGate,
} from './flag-state.js';
export {
  evaluateAll,
  evaluateFlag,
  flagBucket,
  isFailure,
  parseContext,
  percentBp,
  type Evaluation,
  type EvaluationContext,
  type EvaluationFailure,
  type EvaluationSuccess,
  type FlagErrorCode,
  type Reason,
} from './evaluate.js';
export { OFREP_BULK_PATH, ofrepHandler, type FlagSource, type OfrepHandler, type OfrepHandlerOptions } from './ofrep-handler.js';
export {
  bulkUrl,
  FlagPoller,
  followFlags,
  gatesFromBulk,
  type FlagGates,
  type FlagGateSink,
  type FlagPollerOptions,
  type PollOutcome,
} from './ofrep-client.js';
export { staticFlagSource, storeFlagSource } from './store-source.js';
