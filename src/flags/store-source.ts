/** The flag source backed by the state store: the fleet's definitions with the store's settings, read on every load. */
import type { Store } from '../store/store.js';
import { flagState, type FlagDefinitions, type FlagState } from './flag-state.js';
import type { FlagSource } from './ofrep-handler.js';

/** A {@link FlagSource} that reads the operators' settings from `store` each time (one small query). */
export function storeFlagSource(store: Pick<Store, 'listFlagSettings'>, defs: FlagDefinitions): FlagSource {
  return { load: async (): Promise<FlagState> => flagState(defs, await store.listFlagSettings(defs.fleet)) };
}

/** A {@link FlagSource} over a fixed state (tests, or a fleet without a store). */
export function staticFlagSource(state: FlagState): FlagSource {
  return { load: () => Promise.resolve(state) };
}
