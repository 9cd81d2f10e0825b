/**
 * Metrics: Prometheus series, the v1 API's JSON figures (counters, analytics windows, resource
 * usage), and the figures port through which a node keeps its figures or shares them with the
 * other nodes of its cluster.
 */
export {
  ANALYTICS_METRICS,
  AnalyticsRecorder,
  type AnalyticsReport,
  type AnalyticsSeries,
  PERIODS,
} from "./analytics.js";
export { BatchStats, mergeSnapshots, type StatsSnapshot } from "./batch-stats.js";
export { type Figures, type PeerFigures, type SettingsStore, storeFigures } from "./figures.js";
export { NodeFigures, type NodeFiguresOptions, type NodeLoad } from "./node-figures.js";
export {
  createPrometheusMetrics,
  type PrometheusMetrics,
  type RequestObservation,
} from "./prometheus.js";
export {
  createResourceMonitor,
  type ResourceMonitor,
  type ResourceReading,
} from "./resource-usage.js";
