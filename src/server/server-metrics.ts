/** The control plane's own Prometheus metrics: API requests by route and status, their latency, event subscribers and events. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ServerMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'method' | 'route' | 'code'>;
  readonly duration: Histogram<'method' | 'route'>;
  readonly subscribers: Gauge;
  readonly events: Counter<'type'>;
  readonly authFailures: Counter<'reason'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry, prefix: 'meridian_server_' });
    this.requests = new Counter({
      name: 'meridian_server_http_requests_total',
      help: 'API requests answered, by method, route (the path template) and status code.',
      labelNames: ['method', 'route', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'meridian_server_http_request_duration_seconds',
      help: 'Time to answer API requests (event streams: until the headers), by method and route.',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.subscribers = new Gauge({
      name: 'meridian_server_event_subscribers',
      help: 'Open event streams (dashboards and routers).',
      registers: [registry],
    });
    this.events = new Counter({
      name: 'meridian_server_events_published_total',
      help: 'Events published on the event stream, by type.',
      labelNames: ['type'],
      registers: [registry],
    });
    this.authFailures = new Counter({
      name: 'meridian_server_auth_failures_total',
      help: 'Requests refused by authentication (401) or authorisation (403).',
      labelNames: ['reason'],
      registers: [registry],
    });
  }
}
