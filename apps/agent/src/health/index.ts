export { AgentMetrics, type AgentSelfMetrics, type AgentSelfReading } from './agent-metrics.js';
export { DcgmExporterSource, parseDcgmMetrics, type DcgmOptions } from './dcgm.js';
export { NoGpuSource, migProfileMemoryBytes, type GpuDevice, type GpuInventory, type GpuSource, type MigDevice } from './gpu.js';
export {
  HealthCollector,
  MAX_TELEMETRY_LIMITS,
  boundErrors,
  type GpuDiscovery,
  type HealthCollectorOptions,
  type HealthSnapshot,
  type TelemetryLimits,
} from './health-collector.js';
export { HostSampler, osProbe, type DiskUsage, type HostProbe, type HostReading } from './host.js';
export { countersFromSamples, histogramQuantile, inferenceRates, type InferenceCounters, type InferenceRates } from './inference-rates.js';
export { InferenceScraper, type InferenceReading, type InferenceScraperOptions, type WorkloadEndpoint } from './inference-scraper.js';
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from './metrics-server.js';
export {
  NvidiaSmiSource,
  mergeGpuOutputs,
  parseGpuList,
  parseGpuQuery,
  runCommand,
  type CommandOutput,
  type CommandRunner,
  type NvidiaSmiOptions,
} from './nvidia-smi.js';
export { parsePrometheusText, sumSamples, type MetricType, type ParsedExposition, type Sample } from './prometheus-text.js';
export { scrapeText, type FetchLike } from './scrape.js';
