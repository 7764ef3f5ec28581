import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { GpuDevice } from './gpu.js';
import type { HostReading } from './host.js';
import type { InferenceReading } from './inference-scraper.js';

/**
 * Hooks through which the agent core reports on itself: the reconcile loop,
 * the MQTT session and the offline report queue call these.
 */
export interface AgentSelfMetrics {
  observeReconcile(seconds: number, outcome: 'success' | 'error'): void;
  setMqttConnected(connected: boolean): void;
  setQueuedReports(count: number): void;
}

/** The latest self-metric values, for the telemetry summary. */
export interface AgentSelfReading {
  reconcileSeconds: number;
  reconcileErrors: number;
  queuedReports: number;
  mqttConnected: boolean;
}

type GpuLabels = 'gpu' | 'uuid' | 'product';

/**
 * The agent's own Prometheus registry (never the global one, so several
 * agents in one process, as in the fleet benchmark, keep their numbers
 * apart): GPU, host, inference and self metrics plus Node's process
 * defaults.
 */
export class AgentMetrics implements AgentSelfMetrics {
  readonly registry = new Registry();
  private readonly gpuUtilisation: Gauge<GpuLabels>;
  private readonly gpuMemoryUsed: Gauge<GpuLabels>;
  private readonly gpuMemoryTotal: Gauge<GpuLabels>;
  private readonly gpuTemperature: Gauge<GpuLabels>;
  private readonly gpuPower: Gauge<GpuLabels>;
  private readonly hostCpu: Gauge;
  private readonly hostCpuCores: Gauge;
  private readonly hostMemoryUsed: Gauge;
  private readonly hostMemoryTotal: Gauge;
  private readonly diskUsed: Gauge<'path'>;
  private readonly diskTotal: Gauge<'path'>;
  private readonly inferenceRps: Gauge<'deployment'>;
  private readonly inferenceErrorRatio: Gauge<'deployment'>;
  private readonly inferenceP50: Gauge<'deployment'>;
  private readonly inferenceP99: Gauge<'deployment'>;
  private readonly reconcileDuration: Histogram<'outcome'>;
  private readonly reconcileErrors: Counter;
  private readonly mqttConnected: Gauge;
  private readonly queuedReports: Gauge;
  private readonly collectorErrors: Gauge;
  private self: AgentSelfReading = { reconcileSeconds: 0, reconcileErrors: 0, queuedReports: 0, mqttConnected: false };

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> =>
      new Gauge<L>({ name, help, labelNames, registers });
    const gpuLabels = ['gpu', 'uuid', 'product'] as const;
    this.gpuUtilisation = gauge('flotilla_agent_gpu_utilisation_ratio', 'GPU utilisation, 0 to 1 (absent when the driver cannot tell, e.g. in MIG mode)', gpuLabels);
    this.gpuMemoryUsed = gauge('flotilla_agent_gpu_memory_used_bytes', 'GPU framebuffer memory in use', gpuLabels);
    this.gpuMemoryTotal = gauge('flotilla_agent_gpu_memory_total_bytes', 'GPU framebuffer memory in total', gpuLabels);
    this.gpuTemperature = gauge('flotilla_agent_gpu_temperature_celsius', 'GPU core temperature', gpuLabels);
    this.gpuPower = gauge('flotilla_agent_gpu_power_watts', 'GPU power draw', gpuLabels);
    this.hostCpu = gauge('flotilla_agent_host_cpu_utilisation_ratio', 'Busy share of host CPU time since the previous sample');
    this.hostCpuCores = gauge('flotilla_agent_host_cpu_cores', 'Logical CPUs on the host');
    this.hostMemoryUsed = gauge('flotilla_agent_host_memory_used_bytes', 'Host memory not available to new work');
    this.hostMemoryTotal = gauge('flotilla_agent_host_memory_total_bytes', 'Host memory in total');
    this.diskUsed = gauge('flotilla_agent_host_disk_used_bytes', 'Used bytes of the filesystem holding an agent directory', ['path']);
    this.diskTotal = gauge('flotilla_agent_host_disk_total_bytes', 'Size of the filesystem holding an agent directory', ['path']);
    this.inferenceRps = gauge('flotilla_agent_inference_requests_per_second', 'Inference requests per second between the last two scrapes', ['deployment']);
    this.inferenceErrorRatio = gauge('flotilla_agent_inference_error_ratio', 'Failed share of inference requests between the last two scrapes', ['deployment']);
    // Separate gauges, not a `quantile` label: that label is reserved for summaries.
    this.inferenceP50 = gauge('flotilla_agent_inference_latency_p50_seconds', 'Median inference latency between the last two scrapes', ['deployment']);
    this.inferenceP99 = gauge('flotilla_agent_inference_latency_p99_seconds', '99th percentile inference latency between the last two scrapes', ['deployment']);
    this.reconcileDuration = new Histogram({
      name: 'flotilla_agent_reconcile_duration_seconds',
      help: 'Time taken by one reconcile pass',
      labelNames: ['outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.reconcileErrors = new Counter({ name: 'flotilla_agent_reconcile_errors_total', help: 'Reconcile passes that failed', registers });
    this.mqttConnected = gauge('flotilla_agent_mqtt_connected', '1 while the MQTT session to the hub is up');
    this.queuedReports = gauge('flotilla_agent_queued_reports', 'Reports waiting for the hub connection');
    this.collectorErrors = gauge('flotilla_agent_health_collector_errors', 'Problems reported by the last health collection');
    this.mqttConnected.set(0);
    this.queuedReports.set(0);
    this.reconcileErrors.inc(0);
    // Event-loop delay sampled every 100 ms, not prom-client's default 10 ms: 100 wake-ups a second
    // cost an idle agent about 1% of a core on their own.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  observeReconcile(seconds: number, outcome: 'success' | 'error'): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.reconcileDuration.observe({ outcome }, seconds);
    this.self = { ...this.self, reconcileSeconds: seconds };
    if (outcome === 'error') {
      this.reconcileErrors.inc();
      this.self = { ...this.self, reconcileErrors: this.self.reconcileErrors + 1 };
    }
  }

  setMqttConnected(connected: boolean): void {
    this.mqttConnected.set(connected ? 1 : 0);
    this.self = { ...this.self, mqttConnected: connected };
  }

  setQueuedReports(count: number): void {
    const n = Number.isFinite(count) && count > 0 ? Math.floor(count) : 0;
    this.queuedReports.set(n);
    this.self = { ...this.self, queuedReports: n };
  }

  selfReading(): AgentSelfReading {
    return this.self;
  }

  /** Replaces the GPU series: GPUs that disappeared lose theirs, unknown readings have none. */
  updateGpus(gpus: readonly GpuDevice[]): void {
    const gauges = [this.gpuUtilisation, this.gpuMemoryUsed, this.gpuMemoryTotal, this.gpuTemperature, this.gpuPower];
    for (const g of gauges) g.reset();
    for (const gpu of gpus) {
      const labels = { gpu: String(gpu.index), uuid: gpu.uuid, product: gpu.product };
      setIfKnown(this.gpuUtilisation, labels, gpu.utilisation);
      setIfKnown(this.gpuMemoryUsed, labels, gpu.memoryUsedBytes);
      setIfKnown(this.gpuMemoryTotal, labels, gpu.memoryTotalBytes);
      setIfKnown(this.gpuTemperature, labels, gpu.temperatureC);
      setIfKnown(this.gpuPower, labels, gpu.powerW);
    }
  }

  updateHost(host: HostReading): void {
    this.hostCpu.set(host.cpuUtilisation);
    this.hostCpuCores.set(host.cpuCores);
    this.hostMemoryUsed.set(host.memoryUsedBytes);
    this.hostMemoryTotal.set(host.memoryTotalBytes);
    this.diskUsed.reset();
    this.diskTotal.reset();
    for (const d of host.disks) {
      this.diskUsed.set({ path: d.path }, d.usedBytes);
      this.diskTotal.set({ path: d.path }, d.totalBytes);
    }
  }

  updateInference(readings: readonly InferenceReading[]): void {
    for (const g of [this.inferenceRps, this.inferenceErrorRatio, this.inferenceP50, this.inferenceP99]) g.reset();
    for (const r of readings) {
      const labels = { deployment: r.deployment };
      this.inferenceRps.set(labels, r.requestsPerSecond);
      this.inferenceErrorRatio.set(labels, r.errorRatio);
      setIfKnown(this.inferenceP50, labels, r.latencyP50Seconds);
      setIfKnown(this.inferenceP99, labels, r.latencyP99Seconds);
    }
  }

  updateCollectorErrors(count: number): void {
    this.collectorErrors.set(count);
  }
}

function setIfKnown<L extends string>(gauge: Gauge<L>, labels: Partial<Record<L, string>>, value: number | null): void {
  if (value !== null && Number.isFinite(value)) gauge.set(labels, value);
}
