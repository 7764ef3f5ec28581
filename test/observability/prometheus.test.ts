import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { promtool, promtoolCheck } from '../support/promtool.js';
import { waitFor } from '../support/wait.js';

const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;

describe('deploy/prometheus and deploy/grafana', () => {
  test('promtool accepts the alert rules, and each alert the issue names is there', async () => {
    if (!promtool()) return console.warn('SKIPPED: promtool not installed (Debian package prometheus)');
    const r = promtoolCheck(['rules', 'deploy/prometheus/flotilla-rules.yml']);
    expect(r.code).toBe(0);
    const text = await readFile('deploy/prometheus/flotilla-rules.yml', 'utf8');
    for (const alert of ['SpokeOffline', 'SpokeStale', 'GpuMemoryHigh', 'InferenceErrorRatioHigh', 'DeploymentNonCompliant']) {
      expect(text).toContain(`alert: ${alert}`);
    }
  });

  test('every metric the dashboard and the rules query is one the hub exports', async () => {
    const hubSources = await Promise.all(
      ['apps/hub/src/metrics/fleet-metrics.ts', 'apps/hub/src/metrics/hub-metrics.ts', 'apps/hub/src/rollouts/rollout-metrics.ts'].map((f) => readFile(f, 'utf8')),
    );
    const exported = new Set([...hubSources.join('\n').matchAll(/'(flotilla_[a-z0-9_]+)'/g)].map((m) => m[1]));
    const dashboard = JSON.parse(await readFile('deploy/grafana/flotilla-fleet.json', 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr));
    const rules = await readFile('deploy/prometheus/flotilla-rules.yml', 'utf8');
    const used = new Set([...[...exprs, rules].join('\n').matchAll(/\b(flotilla_[a-z0-9_]+)\b/g)].map((m) => m[1]!));
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
  });
});

describe('a real Prometheus scraping the hub', () => {
  let t: TestHub;
  let prom: ChildProcess | null = null;
  let dir: string;

  beforeAll(async () => {
    if (!hasPrometheus) return;
    t = await startTestHub();
    for (const [name, region] of [
      ['paris-01', 'eu'],
      ['lyon-01', 'eu'],
      ['austin-01', 'us'],
    ] as const) {
      await t.hub.dataSource.query(
        `INSERT INTO spokes (name, labels, mqtt_username, presence, last_seen_at, telemetry) VALUES ($1, $2::jsonb, $3, 'online', now() + interval '1 hour', $4::jsonb)`,
        [
          name,
          JSON.stringify({ region, site: name }),
          `${name}.x`,
          JSON.stringify({
            v: 1, spoke: name, at: new Date().toISOString(),
            host: { cpuUtilisation: 0.1, memoryUsedBytes: 1, memoryTotalBytes: 2, diskUsedBytes: 1, diskTotalBytes: 2 },
            gpus: [{ index: 0, uuid: 'GPU-1', product: 'NVIDIA L40S', utilisation: 0.3, memoryUsedBytes: 1e9, memoryTotalBytes: 4.8e10, temperatureC: 50, powerW: 100 }],
            inference: [{ deployment: 'bridge-defects-inference', requestsPerSecond: 3, errorRatio: 0, latencyP50Ms: 5, latencyP99Ms: 20 }],
            agent: { reconcileSeconds: 0, reconcileErrors: 0, queuedReports: 0 }, errors: [],
          }),
        ],
      );
    }
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-prom-'));
    const port = await findFreePort();
    const hubTarget = new URL(t.hub.apiUrl).host;
    await writeFile(
      path.join(dir, 'prometheus.yml'),
      `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: flotilla-hub\n    static_configs: [{ targets: ["${hubTarget}"] }]\n`,
    );
    prom = spawn('prometheus', [`--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    (globalThis as { __promUrl?: string }).__promUrl = `http://127.0.0.1:${port}`;
  }, 60_000);

  afterAll(async () => {
    if (!hasPrometheus) return;
    prom?.kill('SIGTERM');
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('sees one series per spoke for each health metric', async () => {
    if (!hasPrometheus) return console.warn('SKIPPED: prometheus not installed (Debian package prometheus)');
    const base = (globalThis as { __promUrl?: string }).__promUrl!;
    const query = async (q: string) => {
      const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await r.json()) as { data: { result: { metric: Record<string, string> }[] } };
      return body.data.result;
    };
    await waitFor('Prometheus to scrape the hub', async () => (await query('flotilla_spoke_up')).length === 3, 30_000, 250);
    for (const metric of [
      'flotilla_spoke_up',
      'flotilla_spoke_gpu_utilisation_ratio',
      'flotilla_spoke_gpu_memory_used_bytes',
      'flotilla_spoke_inference_requests_per_second',
      'flotilla_spoke_inference_error_ratio',
      'flotilla_spoke_inference_latency_p99_seconds',
    ]) {
      const result = await query(metric);
      expect({ metric, spokes: result.map((r) => r.metric.spoke).sort() }).toEqual({ metric, spokes: ['austin-01', 'lyon-01', 'paris-01'] });
      for (const r of result) expect(r.metric.region).toMatch(/^(eu|us)$/);
    }
  });
});
