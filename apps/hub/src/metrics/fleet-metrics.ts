import type { DeploymentStatus, Telemetry } from '@flotilla/contracts';
import { Gauge, type Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { connectionOf, type Connection } from '../spokes/spoke.dto.js';

interface SpokeMetricsRow {
  name: string;
  region: string | null;
  site: string | null;
  presence: 'online' | 'offline';
  last_seen_at: Date | null;
  desired_generation: number;
  observed_generation: number;
  deployment_statuses: DeploymentStatus[];
  telemetry: Telemetry | null;
}

/**
 * Fleet gauges and per-spoke health series, computed at scrape time from the
 * latest snapshot each spoke reported (Postgres). Health series of a stale or
 * offline spoke are not exported — their values are not current — while
 * `flotilla_spoke_up` and `flotilla_spoke_stale` say why they are missing.
 */
export class FleetMetrics {
  private readonly g: Record<string, Gauge<string>>;

  constructor(
    private readonly ds: DataSource,
    registry: Registry,
    private readonly intervalSeconds: number,
  ) {
    const gauge = (name: string, help: string, labelNames: string[]) => new Gauge({ name, help, labelNames, registers: [registry] });
    const who = ['spoke', 'region', 'site'];
    this.g = {
      spokes: gauge('flotilla_fleet_spokes', 'Spokes by connection state', ['connection']),
      deployments: gauge('flotilla_fleet_deployment_instances', 'Deployment instances (deployment x spoke) by reported compliance', ['compliance']),
      lagSpokes: gauge('flotilla_fleet_spokes_behind', 'Spokes whose observed generation is behind the desired one', []),
      up: gauge('flotilla_spoke_up', '1 when the spoke is online and reporting, 0 when offline or stale', who),
      stale: gauge('flotilla_spoke_stale', '1 when the spoke is online but has sent nothing for 3 telemetry intervals', who),
      lastSeen: gauge('flotilla_spoke_last_seen_timestamp_seconds', 'When the hub last heard from the spoke', who),
      lag: gauge('flotilla_spoke_generation_lag', 'Desired minus observed generation', who),
      compliance: gauge('flotilla_spoke_deployment_compliant', '1 when the deployment is Compliant on the spoke, 0 otherwise', [...who, 'deployment']),
      gpuUtil: gauge('flotilla_spoke_gpu_utilisation_ratio', 'GPU utilisation (0-1)', [...who, 'gpu', 'product']),
      gpuMemUsed: gauge('flotilla_spoke_gpu_memory_used_bytes', 'GPU memory in use', [...who, 'gpu', 'product']),
      gpuMemTotal: gauge('flotilla_spoke_gpu_memory_total_bytes', 'GPU memory', [...who, 'gpu', 'product']),
      gpuTemp: gauge('flotilla_spoke_gpu_temperature_celsius', 'GPU temperature', [...who, 'gpu', 'product']),
      rate: gauge('flotilla_spoke_inference_requests_per_second', 'Inference requests per second', [...who, 'deployment']),
      errors: gauge('flotilla_spoke_inference_error_ratio', 'Share of inference requests that failed', [...who, 'deployment']),
      latencyP50: gauge('flotilla_spoke_inference_latency_p50_seconds', 'Median inference latency over the last report interval', [...who, 'deployment']),
      latencyP99: gauge('flotilla_spoke_inference_latency_p99_seconds', '99th percentile inference latency over the last report interval', [...who, 'deployment']),
      cpu: gauge('flotilla_spoke_cpu_utilisation_ratio', 'Host CPU utilisation (0-1)', who),
      memUsed: gauge('flotilla_spoke_memory_used_bytes', 'Host memory in use', who),
      diskUsed: gauge('flotilla_spoke_disk_used_bytes', 'Disk used by the agent state and cache', who),
    };
  }

  /** Refreshes every series from the database; call before rendering the registry. */
  async update(now = Date.now()): Promise<void> {
    const rows: SpokeMetricsRow[] = await this.ds.query(
      `SELECT name, labels->>'region' AS region, labels->>'site' AS site, presence, last_seen_at,
              desired_generation, observed_generation, deployment_statuses, telemetry
       FROM spokes WHERE revoked_at IS NULL`,
    );
    for (const g of Object.values(this.g)) g.reset();
    const byConnection: Record<Connection, number> = { online: 0, offline: 0, stale: 0 };
    const byCompliance: Record<string, number> = { Compliant: 0, NonCompliant: 0, Pending: 0 };
    let behind = 0;
    for (const r of rows) {
      const who = { spoke: r.name, region: r.region ?? '', site: r.site ?? r.name };
      const connection = connectionOf({ presence: r.presence, lastSeenAt: r.last_seen_at }, now, this.intervalSeconds);
      byConnection[connection]++;
      const lag = Math.max(0, r.desired_generation - r.observed_generation);
      if (lag > 0) behind++;
      this.g.up!.set(who, connection === 'online' ? 1 : 0);
      this.g.stale!.set(who, connection === 'stale' ? 1 : 0);
      this.g.lag!.set(who, lag);
      if (r.last_seen_at) this.g.lastSeen!.set(who, Math.floor(new Date(r.last_seen_at).getTime() / 1000));
      for (const d of r.deployment_statuses ?? []) {
        byCompliance[d.compliance] = (byCompliance[d.compliance] ?? 0) + 1;
        this.g.compliance!.set({ ...who, deployment: d.name }, d.compliance === 'Compliant' ? 1 : 0);
      }
      if (connection !== 'online' || !r.telemetry) continue;
      const t = r.telemetry;
      this.g.cpu!.set(who, t.host.cpuUtilisation);
      this.g.memUsed!.set(who, t.host.memoryUsedBytes);
      this.g.diskUsed!.set(who, t.host.diskUsedBytes);
      for (const gpu of t.gpus) {
        const l = { ...who, gpu: String(gpu.index), product: gpu.product };
        this.g.gpuUtil!.set(l, gpu.utilisation);
        this.g.gpuMemUsed!.set(l, gpu.memoryUsedBytes);
        this.g.gpuMemTotal!.set(l, gpu.memoryTotalBytes);
        if (gpu.temperatureC !== null) this.g.gpuTemp!.set(l, gpu.temperatureC);
      }
      for (const i of t.inference) {
        const l = { ...who, deployment: i.deployment };
        this.g.rate!.set(l, i.requestsPerSecond);
        this.g.errors!.set(l, i.errorRatio);
        if (i.latencyP50Ms !== null) this.g.latencyP50!.set(l, i.latencyP50Ms / 1000);
        if (i.latencyP99Ms !== null) this.g.latencyP99!.set(l, i.latencyP99Ms / 1000);
      }
    }
    for (const [connection, n] of Object.entries(byConnection)) this.g.spokes!.set({ connection }, n);
    for (const [compliance, n] of Object.entries(byCompliance)) this.g.deployments!.set({ compliance }, n);
    this.g.lagSpokes!.set(behind);
  }
}
