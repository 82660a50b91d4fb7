/** Public surface of berth's Prometheus metrics. */
export { Registry, Counter, Gauge, Histogram, CONTENT_TYPE, DEFAULT_BUCKETS, escapeLabelValue, formatValue, type Labels } from './registry.js';
export { serveMetrics, startMetricsEndpoint, parseHostPort, METRICS_ADDRESS_FILE, type MetricsEndpoint } from './http.js';
export { berthdMetrics, type BerthdMetrics, type BerthdMetricSources } from './berthd.js';
export { observePulls, type PullObservation } from './pulls.js';
