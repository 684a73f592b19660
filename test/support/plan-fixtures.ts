/** A small fleet built in code, and revisions of it, for the store and plan tests. */
import { render, type Revision } from '../../src/render/render.js';
import { Fleet, type FleetInput } from '../../src/spec/schema.js';
import { SourceMap } from '../../src/spec/source-map.js';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;

/** Three regions, four clusters, two services, three declared waves. */
export function shopInput(): FleetInput {
  return {
    apiVersion: 'meridian/v1',
    fleet: 'shop',
    regions: {
      'eu-west': { jurisdiction: 'EU', location: { lat: 53.35, lon: -6.26 }, countries: ['IE', 'GB'] },
      'eu-central': { jurisdiction: 'EU', location: { lat: 50.11, lon: 8.68 }, countries: ['DE'] },
      'us-east': { jurisdiction: 'US', location: { lat: 38.9, lon: -77.04 }, countries: ['US'] },
    },
    clusters: {
      'eu-west-1': { region: 'eu-west', driver: 'local', capacity: { rps: 400 }, labels: { tier: 'canary' } },
      'eu-west-2': { region: 'eu-west', driver: 'local', capacity: { rps: 400 } },
      'eu-central-1': { region: 'eu-central', driver: 'local', capacity: { rps: 400 } },
      'us-east-1': { region: 'us-east', driver: 'local', capacity: { rps: 800 } },
    },
    services: {
      web: {
        image: `ghcr.io/acme/web:2.4.0@${digest('1')}`,
        version: '2.4.0',
        port: 8080,
        replicas: 2,
        health: { path: '/healthz' },
        env: { LOG_LEVEL: 'info' },
        config: { CHECKOUT_TIMEOUT: '5s' },
        secrets: { DB_PASSWORD: { ref: 'vault:kv/web/db#password' } },
        resources: { cpu: '250m', memory: '256Mi' },
        requires: { api: '>=1.4.0 <2.0.0' },
      },
      api: {
        image: `ghcr.io/acme/api:1.5.0@${digest('2')}`,
        version: '1.5.0',
        port: 9090,
        placement: { exclude: { region: 'us-east' } },
      },
    },
    routing: { web: { steering: 'proximity', residency: { EU: { allow: ['EU'], mode: 'lock' } } } },
    rollout: {
      waves: [
        {
          name: 'canary',
          clusters: { labels: { tier: 'canary' } },
          steps: [{ weight: 5, pause: '30s' }, { weight: 25, pause: '30s' }, { weight: 100 }],
        },
        { name: 'europe', clusters: { jurisdiction: 'EU' }, approvals: { count: 1, roles: ['release-manager'] }, maxParallel: 2 },
        { name: 'rest', bake: '2m' },
      ],
    },
  };
}

/** Parses a fleet input (with schema defaults) and renders it. */
export function build(input: FleetInput): { fleet: Fleet; revision: Revision } {
  const fleet = Fleet.parse(input);
  const { revision, findings } = render({ fleet, sources: new SourceMap([], new Map()) });
  if (findings.length > 0) throw new Error(`fixture does not render: ${findings.map((f) => f.message).join('; ')}`);
  return { fleet, revision };
}

/** The shop fleet with web moved to 2.5.0 (new image and a new env value). */
export function shopNext(): FleetInput {
  const input = shopInput();
  const web = input.services?.['web'];
  if (!web) throw new Error('fixture');
  web.image = `ghcr.io/acme/web:2.5.0@${digest('3')}`;
  web.version = '2.5.0';
  web.env = { LOG_LEVEL: 'debug', FEATURE_X: 'on' };
  return input;
}

/** A stepping clock: every call is one second later than the last. */
export function steppingClock(start = '2026-01-01T00:00:00.000Z'): () => Date {
  let t = Date.parse(start);
  return () => new Date((t += 1000));
}
