/** The router (data plane): an HTTP reverse proxy built on the routing engine. See docs/router.md. */
export { Router, type CanarySetting, type LogLevel, type RouterLog, type RouterOptions, type ServiceStats } from './router.js';
export {
  ENDPOINT_GONE_EVENTS,
  EndpointsFile,
  StaticEndpoints,
  parseEndpointsFile,
  readEndpointsFile,
  type EndpointEvent,
  type EndpointLister,
  type EndpointSource,
  type EndpointsDocument,
  type RouterEndpoint,
} from './endpoints.js';
export { MmdbGeoIp, NO_GEOIP, defaultGeoIpPath, type GeoIp } from './geoip.js';
export { AddressMatcher, LOOPBACK_SOURCES } from './address-matcher.js';
export { systemClock, type RouterClock } from './clock.js';
export { RouterError } from './errors.js';
export { ServiceMatcher, normalizeHost } from './service-matcher.js';
export { checkPolicy, httpProbe, type CheckPolicy, type Probe } from './active-health-checker.js';
export { outlierPolicy, type OutlierPolicy } from './outlier-detector.js';
export { REASONS, CODE_CLASSES, type Reason } from './router-metrics.js';
export { cookieValue, newTraceparent, validTraceparent } from './forward-headers.js';
export type { PoolOptions, UpstreamState } from './upstream.js';
export type { RouteQuery } from './admin.js';
