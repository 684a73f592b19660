/** The routing view is one contract: the router parses what the server sends with it, and refuses what does not fit. */
import { describe, expect, it } from 'vitest';
import { parseTableView } from '../src/router/server-follower.js';
import { RoutingViewSchema, type RoutingView } from '../src/routing/view.js';
import { Routing } from '../src/server/schemas.js';

const view: RoutingView = {
  tableVersion: 3,
  revision: 'rev-a',
  at: '2026-12-07T12:00:00.000Z',
  services: { web: { 'eu-west': [{ cluster: 'eu-west-1', version: '1.0.0', share: 1 }] } },
  drained: ['us-east-1'],
  ramp: { 'eu-central': 25 },
  canary: { web: { 'eu-west-1': { weight: 5, version: '1.1.0' } } },
  flags: { 'new-checkout': { 'eu-west': { enabled: true, percent: 20 } } },
  endpoints: [
    {
      cluster: 'eu-west-1',
      service: 'web',
      track: 'stable',
      version: '1.0.0',
      host: '127.0.0.1',
      port: 4100,
      healthy: true,
      replica: 'r1',
    },
  ],
};

describe('the routing view', () => {
  it('is the schema the server answers with', () => {
    expect(Routing).toBe(RoutingViewSchema);
  });

  it('is read by the router as it was sent, without the dashboard’s shares', () => {
    const { services: _services, ...table } = view;
    expect(parseTableView(JSON.parse(JSON.stringify(view)), 'the test')).toEqual(table);
  });

  it('is refused, saying where, when it does not fit', () => {
    const bad = { ...view, endpoints: [{ ...view.endpoints[0], track: 'blue' }] };
    expect(() => parseTableView(bad, 'a table event')).toThrow(
      expect.objectContaining({
        code: 'MERIDIAN_E_ROUTER_SERVER',
        message: expect.stringMatching(/^a table event does not fit the routing view: endpoints\.0\.track: /),
      }),
    );
    expect(() => parseTableView({ ...view, tableVersion: '3' }, 'x')).toThrow(/tableVersion/);
    expect(() => parseTableView(null, 'x')).toThrow(/does not fit the routing view/);
  });
});
