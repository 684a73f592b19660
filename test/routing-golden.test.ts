/**
 * Golden traffic tables: a fixed fleet (test/golden/routing/fleet.yaml) under several health matrices,
 * as JSON and as `meridian route simulate` text. A golden change is reviewed like code;
 * UPDATE_GOLDEN=1 rewrites the files.
 */

import { join } from 'node:path';
import { describe, it } from 'vitest';
import { render } from '../src/render/render.js';
import { simulatedState, type RoutingState } from '../src/routing/state.js';
import { formatTrafficTable, trafficTable } from '../src/routing/traffic-table.js';
import { loadFleet } from '../src/spec/load.js';
import { expectGolden } from './support/golden.js';

const dir = join(import.meta.dirname, 'golden', 'routing');
const revision = render(loadFleet(join(dir, 'fleet.yaml'))).revision;

function checkGolden(name: string, text: string): void {
  expectGolden(join(dir, name), text);
}

const SCENARIOS: Record<string, RoutingState> = {
  healthy: {},
  'eu-west-1-down': simulatedState({ down: ['eu-west-1'] }),
  'eu-west-down': simulatedState({ down: ['eu-west-1', 'eu-west-2'] }),
  'eu-all-down': simulatedState({ down: ['eu-west-1', 'eu-west-2', 'eu-central-1'] }),
  'eu-drained': simulatedState({ drain: ['eu-west', 'eu-central'] }),
  'us-east-degraded': simulatedState({ down: ['us-east-2'], degraded: { 'us-east-1': 0.5 } }),
  'ap-south-down': simulatedState({ down: ['ap-south-1'] }),
  'canary-eu-west-1': { canary: { web: { 'eu-west-1': { weight: 10, version: '2.5.0' } } } },
};

describe('routing golden traffic tables', () => {
  it.each(Object.keys(SCENARIOS))('%s', (name) => {
    const tt = trafficTable(revision, SCENARIOS[name] ?? {}, { version: 1 });
    checkGolden(`${name}.json`, formatTrafficTable(tt, { format: 'json' }));
    checkGolden(`${name}.txt`, formatTrafficTable(tt));
  });
});
