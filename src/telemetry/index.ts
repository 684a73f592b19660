/** Telemetry: metrics helpers for hot paths, on prom-client registries. */
export { CounterVec, GaugeVec, HistogramVec, Interner, LATENCY_BUCKETS, createRegistry, type VecOptions } from './metrics.js';
