import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AgentMetrics,
  HealthCollector,
  parsePrometheusText,
  startMetricsServer,
  type MetricsServer,
} from '../../apps/agent/src/health/index.js';
import { writeFakeNvidiaSmi } from './fake-nvidia-smi.js';

const promtoolFound = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).error === undefined;
if (!promtoolFound) {
  // Debian's `prometheus` package provides it; without it the exposition is checked by our parser only.
  console.warn('promtool is not on PATH: skipping the `promtool check metrics` test');
}

const AGENT_METRICS = [
  'flotilla_agent_gpu_utilisation_ratio',
  'flotilla_agent_gpu_memory_used_bytes',
  'flotilla_agent_gpu_memory_total_bytes',
  'flotilla_agent_gpu_temperature_celsius',
  'flotilla_agent_gpu_power_watts',
  'flotilla_agent_host_cpu_utilisation_ratio',
  'flotilla_agent_host_memory_used_bytes',
  'flotilla_agent_host_memory_total_bytes',
  'flotilla_agent_host_disk_used_bytes',
  'flotilla_agent_host_disk_total_bytes',
  'flotilla_agent_reconcile_duration_seconds',
  'flotilla_agent_reconcile_errors_total',
  'flotilla_agent_mqtt_connected',
  'flotilla_agent_queued_reports',
];

describe('the agent /metrics endpoint', () => {
  let dir: string;
  let server: MetricsServer;
  let body: string;
  let contentType: string | null;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-metrics-'));
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'l40s-2x.query.csv', list: 'l40s-2x.list.txt' });
    const collector = new HealthCollector({ spoke: 'site-17', gpu: { kind: 'nvidia-smi', binary }, disks: [dir], metrics: new AgentMetrics() });
    collector.metrics.observeReconcile(0.3, 'success');
    collector.metrics.observeReconcile(2, 'error');
    collector.metrics.setMqttConnected(true);
    collector.metrics.setQueuedReports(5);
    await collector.collect(new AbortController().signal);
    // As the inference scraper would after two scrapes of a workload.
    collector.metrics.updateInference([{ deployment: 'bridge-defects', requestsPerSecond: 12.5, errorRatio: 0.02, latencyP50Seconds: 0.004, latencyP99Seconds: null }]);
    server = await startMetricsServer({ port: 0, registry: collector.registry });
    const res = await fetch(server.url);
    contentType = res.headers.get('content-type');
    body = await res.text();
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the Prometheus text format on loopback', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });

  it('parses cleanly and carries every agent metric and the process defaults', () => {
    const parsed = parsePrometheusText(body);

    expect(parsed.errors).toEqual([]);
    for (const name of AGENT_METRICS) expect(parsed.types.has(name)).toBe(true);
    expect(parsed.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(parsed.types.get('nodejs_heap_size_total_bytes')).toBe('gauge');
  });

  it('labels GPU series by index, uuid and product', () => {
    const util = parsePrometheusText(body).samples.filter((s) => s.name === 'flotilla_agent_gpu_utilisation_ratio');
    expect(util).toEqual([
      expect.objectContaining({ labels: { gpu: '0', uuid: expect.stringMatching(/^GPU-/), product: 'NVIDIA L40S' }, value: 0.76 }),
      expect.objectContaining({ labels: { gpu: '1', uuid: expect.stringMatching(/^GPU-/), product: 'NVIDIA L40S' }, value: 0 }),
    ]);
  });

  it('exposes the inference and self metrics it was given, and no series for unknown latency', () => {
    const samples = parsePrometheusText(body).samples;
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

    expect(value('flotilla_agent_inference_requests_per_second', { deployment: 'bridge-defects' })).toBe(12.5);
    expect(value('flotilla_agent_inference_error_ratio', { deployment: 'bridge-defects' })).toBe(0.02);
    expect(value('flotilla_agent_inference_latency_p50_seconds', { deployment: 'bridge-defects' })).toBe(0.004);
    expect(value('flotilla_agent_inference_latency_p99_seconds', { deployment: 'bridge-defects' })).toBeUndefined();
    expect(value('flotilla_agent_reconcile_errors_total')).toBe(1);
    expect(value('flotilla_agent_reconcile_duration_seconds_count', { outcome: 'success' })).toBe(1);
    expect(value('flotilla_agent_mqtt_connected')).toBe(1);
    expect(value('flotilla_agent_queued_reports')).toBe(5);
  });

  (promtoolFound ? it : it.skip)('passes `promtool check metrics` (lint findings only in prom-client defaults)', () => {
    const result = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    const findings = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.trim() !== '');

    // 0: clean; 3: lint findings. Anything else means the exposition did not parse.
    expect([0, 3]).toContain(result.status);
    expect(findings.filter((l) => l.includes('flotilla_'))).toEqual([]);
  });

  it('answers 404 elsewhere and 405 to other methods', async () => {
    expect((await fetch(server.url.replace('/metrics', '/other'))).status).toBe(404);
    const post = await fetch(server.url, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('rejects with the address when the port is taken', async () => {
    await expect(startMetricsServer({ port: server.port, registry: new AgentMetrics({ defaultMetrics: false }).registry })).rejects.toThrow(
      `cannot serve metrics on 127.0.0.1:${server.port}: port already in use`,
    );
  });
});
