import {
  ObjectNameSchema,
  PROTOCOL_VERSION,
  type Capacity,
  type Telemetry,
} from '@flotilla/contracts';
import { AgentMetrics } from './agent-metrics.js';
import { DcgmExporterSource } from './dcgm.js';
import { GIB, NoGpuSource, type GpuDevice, type GpuInventory, type GpuSource } from './gpu.js';
import { HostSampler, osProbe, type HostProbe, type HostReading } from './host.js';
import { InferenceScraper, type InferenceReading, type WorkloadEndpoint } from './inference-scraper.js';
import { NvidiaSmiSource } from './nvidia-smi.js';
import type { FetchLike } from './scrape.js';

export type GpuDiscovery =
  | { kind: 'nvidia-smi'; binary?: string; timeoutMs?: number }
  | { kind: 'dcgm'; url: string; timeoutMs?: number }
  | { kind: 'none' }
  | { kind: 'custom'; source: GpuSource };

/** Bounds that keep the telemetry message small whatever the host looks like. */
export interface TelemetryLimits {
  gpus: number;
  inference: number;
  errors: number;
  errorLength: number;
}

/** The contracts' maxima; a deployment may only lower them. */
export const MAX_TELEMETRY_LIMITS: TelemetryLimits = { gpus: 64, inference: 256, errors: 16, errorLength: 512 };

export interface HealthCollectorOptions {
  spoke: string;
  gpu: GpuDiscovery;
  /** Directories whose filesystems are measured: the state directory and the artifact cache. */
  disks: readonly string[];
  /** The workloads' metrics endpoints, asked afresh at each collection. */
  workloads?: () => readonly WorkloadEndpoint[];
  fetch?: FetchLike;
  scrapeTimeoutMs?: number;
  limits?: Partial<TelemetryLimits>;
  metrics?: AgentMetrics;
  hostProbe?: HostProbe;
  now?: () => Date;
}

export interface HealthSnapshot {
  at: Date;
  host: HostReading;
  gpus: GpuDevice[];
  inference: InferenceReading[];
  errors: string[];
}

/**
 * Gathers host, GPU, workload and agent health. `collect` samples
 * everything once (concurrently) and updates the Prometheus registry;
 * `capacity` and `summary` describe the latest sample for the status report
 * and the telemetry message. Collectors never throw: what they cannot read
 * becomes an entry in `errors`.
 */
export class HealthCollector {
  readonly metrics: AgentMetrics;
  private readonly spoke: string;
  private readonly gpuSource: GpuSource;
  private readonly host: HostSampler;
  private readonly scraper: InferenceScraper;
  private readonly workloads: () => readonly WorkloadEndpoint[];
  private readonly limits: TelemetryLimits;
  private readonly now: () => Date;
  private last: HealthSnapshot;
  /** Whether the last GPU read succeeded from a real source (so the GPUs are counted). */
  private gpusCounted = false;

  constructor(opts: HealthCollectorOptions) {
    const name = ObjectNameSchema.safeParse(opts.spoke);
    if (!name.success) throw new RangeError(`invalid spoke name "${opts.spoke}": ${name.error.issues[0]?.message ?? 'invalid'}`);
    this.spoke = opts.spoke;
    this.metrics = opts.metrics ?? new AgentMetrics();
    this.gpuSource = gpuSourceFor(opts.gpu, opts.fetch);
    this.host = new HostSampler(opts.disks, opts.hostProbe ?? osProbe);
    this.scraper = new InferenceScraper({
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.scrapeTimeoutMs ? { timeoutMs: opts.scrapeTimeoutMs } : {}),
    });
    this.workloads = opts.workloads ?? (() => []);
    this.limits = clampLimits(opts.limits);
    this.now = opts.now ?? (() => new Date());
    const probe = opts.hostProbe ?? osProbe;
    this.last = {
      at: this.now(),
      host: {
        cpuCores: probe.cpus().length,
        cpuUtilisation: 0,
        memoryUsedBytes: 0,
        memoryTotalBytes: probe.totalmem(),
        disks: [],
        diskUsedBytes: 0,
        diskTotalBytes: 0,
      },
      gpus: [],
      inference: [],
      errors: ['health not collected yet'],
    };
  }

  get registry(): AgentMetrics['registry'] {
    return this.metrics.registry;
  }

  /** Samples everything once; resolves with the snapshot (never rejects unless `signal` aborts). */
  async collect(signal: AbortSignal): Promise<HealthSnapshot> {
    signal.throwIfAborted();
    const [host, gpu, inference] = await Promise.all([
      this.host.sample().catch((err: unknown) => ({ reading: this.last.host, errors: [`host: ${message(err)}`] })),
      this.gpuSource.read(signal).catch((err: unknown): GpuInventory => ({ gpus: [], errors: [`gpu: ${message(err)}`] })),
      this.scraper.scrape(this.workloads(), signal).catch((err: unknown) => ({ readings: [] as InferenceReading[], errors: [`inference: ${message(err)}`] })),
    ]);
    signal.throwIfAborted();
    const errors = [...host.errors, ...gpu.errors, ...inference.errors];
    this.last = { at: this.now(), host: host.reading, gpus: gpu.gpus, inference: inference.readings, errors };
    this.gpusCounted = !(this.gpuSource instanceof NoGpuSource) && gpu.errors.length === 0;
    this.metrics.updateHost(host.reading);
    this.metrics.updateGpus(gpu.gpus);
    this.metrics.updateInference(inference.readings);
    this.metrics.updateCollectorErrors(errors.length);
    return this.last;
  }

  /**
   * The appliance's physical GPUs as last read (MIG slices count with their
   * GPU), or undefined when GPUs are not probed or the last read failed: the
   * trainers' slots then treat the GPUs as one.
   */
  gpuCount(): number | undefined {
    return this.gpusCounted ? new Set(this.last.gpus.map((g) => g.index)).size : undefined;
  }

  latest(): HealthSnapshot {
    return this.last;
  }

  /**
   * What this spoke can host. A GPU in MIG mode is offered as its MIG
   * instances (each scheduled on its own, carrying the parent's index), a
   * whole GPU otherwise.
   */
  capacity(): Capacity {
    const gpus: Capacity['gpus'] = [];
    for (const gpu of this.last.gpus) {
      if (gpu.migDevices.length > 0) {
        for (const mig of gpu.migDevices) {
          gpus.push({
            index: gpu.index,
            uuid: clip(mig.uuid, 128),
            product: clip(`${gpu.product} MIG ${mig.profile}`, 128),
            memoryGiB: round2((mig.memoryTotalBytes ?? 0) / GIB),
            mig: true,
          });
        }
      } else {
        gpus.push({
          index: gpu.index,
          uuid: clip(gpu.uuid, 128),
          product: clip(gpu.product, 128),
          memoryGiB: round2((gpu.memoryTotalBytes ?? 0) / GIB),
          mig: false,
        });
      }
    }
    return {
      cpuCores: this.last.host.cpuCores,
      memoryGiB: round2(this.last.host.memoryTotalBytes / GIB),
      gpus: gpus.slice(0, 64),
    };
  }

  /**
   * The compact telemetry message: bounded lists, errors de-duplicated and
   * truncated. Readings the contract cannot carry as null (GPU utilisation
   * and memory) are sent as 0; the local /metrics leaves them absent.
   */
  summary(): Telemetry {
    const s = this.last;
    const errors = [...s.errors];
    const gpus = s.gpus.slice(0, this.limits.gpus).map((g) => ({
      index: g.index,
      uuid: clip(g.uuid, 128),
      product: clip(g.product, 128),
      utilisation: g.utilisation ?? 0,
      memoryUsedBytes: g.memoryUsedBytes ?? 0,
      memoryTotalBytes: g.memoryTotalBytes ?? 0,
      temperatureC: g.temperatureC,
      powerW: g.powerW,
    }));
    if (s.gpus.length > gpus.length) errors.push(`${s.gpus.length - gpus.length} GPUs left out of telemetry`);
    const inference: Telemetry['inference'] = [];
    let overflow = 0;
    for (const r of s.inference) {
      if (!ObjectNameSchema.safeParse(r.deployment).success) {
        errors.push(`inference: "${clip(r.deployment, 80)}" is not a deployment name`);
        continue;
      }
      if (inference.length >= this.limits.inference) {
        overflow += 1;
        continue;
      }
      inference.push({
        deployment: r.deployment,
        requestsPerSecond: nonNegative(r.requestsPerSecond),
        errorRatio: Math.min(1, nonNegative(r.errorRatio)),
        latencyP50Ms: r.latencyP50Seconds === null ? null : nonNegative(r.latencyP50Seconds * 1000),
        latencyP99Ms: r.latencyP99Seconds === null ? null : nonNegative(r.latencyP99Seconds * 1000),
      });
    }
    if (overflow > 0) errors.push(`${overflow} deployments left out of telemetry`);
    const self = this.metrics.selfReading();
    return {
      v: PROTOCOL_VERSION,
      spoke: this.spoke,
      at: s.at.toISOString(),
      host: {
        cpuUtilisation: Math.min(1, nonNegative(s.host.cpuUtilisation)),
        memoryUsedBytes: nonNegative(s.host.memoryUsedBytes),
        memoryTotalBytes: nonNegative(s.host.memoryTotalBytes),
        diskUsedBytes: nonNegative(s.host.diskUsedBytes),
        diskTotalBytes: nonNegative(s.host.diskTotalBytes),
      },
      gpus,
      inference,
      agent: {
        reconcileSeconds: nonNegative(self.reconcileSeconds),
        reconcileErrors: self.reconcileErrors,
        queuedReports: self.queuedReports,
      },
      errors: boundErrors(errors, this.limits),
    };
  }

  /** For the agent's telemetry timer: collect, then summarize. */
  async telemetry(signal: AbortSignal): Promise<Telemetry> {
    await this.collect(signal);
    return this.summary();
  }
}

function gpuSourceFor(gpu: GpuDiscovery, fetchFn: FetchLike | undefined): GpuSource {
  switch (gpu.kind) {
    case 'nvidia-smi':
      return new NvidiaSmiSource({
        ...(gpu.binary ? { binary: gpu.binary } : {}),
        ...(gpu.timeoutMs ? { timeoutMs: gpu.timeoutMs } : {}),
      });
    case 'dcgm':
      return new DcgmExporterSource({ url: gpu.url, ...(gpu.timeoutMs ? { timeoutMs: gpu.timeoutMs } : {}), ...(fetchFn ? { fetch: fetchFn } : {}) });
    case 'none':
      return new NoGpuSource();
    case 'custom':
      return gpu.source;
  }
}

function clampLimits(limits: Partial<TelemetryLimits> = {}): TelemetryLimits {
  const pick = (k: keyof TelemetryLimits): number => {
    const v = limits[k];
    return v === undefined || !Number.isInteger(v) || v < 0 ? MAX_TELEMETRY_LIMITS[k] : Math.min(v, MAX_TELEMETRY_LIMITS[k]);
  };
  return { gpus: pick('gpus'), inference: pick('inference'), errors: pick('errors'), errorLength: Math.max(16, pick('errorLength')) };
}

/** Unique, truncated, at most `limits.errors` (the last one saying how many more there were). */
export function boundErrors(errors: readonly string[], limits: Pick<TelemetryLimits, 'errors' | 'errorLength'>): string[] {
  const unique = [...new Set(errors.map((e) => clip(e, limits.errorLength)))];
  if (unique.length <= limits.errors) return unique;
  if (limits.errors === 0) return [];
  const kept = unique.slice(0, limits.errors - 1);
  kept.push(`... and ${unique.length - kept.length} more problems`);
  return kept;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
