import { readFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapacitySchema, TelemetrySchema } from '@flotilla/contracts';
import { InferenceMetrics } from '../../libs/inference-server/src/metrics.js';
import { AgentMetrics, HealthCollector } from '../../apps/agent/src/health/index.js';
import { FIXTURES, writeFakeNvidiaSmi } from './fake-nvidia-smi.js';

/** Serves whatever `body()` returns on /metrics, on a free loopback port. */
async function textServer(body: () => Promise<string> | string): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void Promise.resolve(body()).then((text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback URL nothing listens on. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}/metrics`;
}

describe('HealthCollector', () => {
  let dir: string;
  let stateDir: string;
  let cacheDir: string;
  const live = (): AbortSignal => new AbortController().signal;
  const timing = { requestUs: 4000, queueUs: 10, computeInputUs: 10, computeInferUs: 3900, computeOutputUs: 10 };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-health-'));
    stateDir = join(dir, 'state');
    cacheDir = join(dir, 'cache');
    await mkdir(stateDir);
    await mkdir(cacheDir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('offers MIG instances and whole GPUs as capacity, valid against the contract', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'a100-mig.query.csv', list: 'a100-mig.list.txt' });
    const collector = new HealthCollector({ spoke: 'site-17', gpu: { kind: 'nvidia-smi', binary }, disks: [stateDir, cacheDir], metrics: new AgentMetrics({ defaultMetrics: false }) });

    await collector.collect(live());
    const capacity = CapacitySchema.parse(collector.capacity());

    expect(capacity.cpuCores).toBeGreaterThan(0);
    expect(capacity.memoryGiB).toBeGreaterThan(0);
    expect(capacity.gpus.map((g) => [g.index, g.product, g.memoryGiB, g.mig])).toEqual([
      [0, 'NVIDIA A100-SXM4-80GB MIG 3g.40gb', 40, true],
      [0, 'NVIDIA A100-SXM4-80GB MIG 2g.20gb', 20, true],
      [0, 'NVIDIA A100-SXM4-80GB MIG 1g.10gb', 10, true],
      [0, 'NVIDIA A100-SXM4-80GB MIG 1g.10gb', 10, true],
      [1, 'NVIDIA A100-SXM4-80GB', 80, false],
    ]);
    expect(new Set(capacity.gpus.map((g) => g.uuid)).size).toBe(5);
    // Trainings are given physical GPUs: the MIG slices of GPU 0 count as that GPU.
    expect(collector.gpuCount()).toBe(2);
  });

  it('summarizes host, GPUs, inference and the agent itself in a message the contract accepts', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'h100-8x.query.csv', list: 'h100-8x.list.txt' });
    const inference = new InferenceMetrics();
    const labels = { model: 'bridge-defects', version: '1.0.0' };
    inference.registerModel(labels, 'cpu');
    const server = await textServer(async () => (await inference.exposition()).body);
    try {
      const collector = new HealthCollector({
        spoke: 'site-17',
        gpu: { kind: 'nvidia-smi', binary },
        disks: [stateDir, cacheDir],
        workloads: () => [{ deployment: 'bridge-defects', url: server.url, model: 'bridge-defects' }],
        metrics: new AgentMetrics({ defaultMetrics: false }),
      });
      collector.metrics.observeReconcile(0.42, 'success');
      collector.metrics.observeReconcile(1.5, 'error');
      collector.metrics.setQueuedReports(3);

      await collector.collect(live());
      expect(collector.summary().inference).toEqual([]); // one scrape is no rate yet
      for (let i = 0; i < 3; i += 1) inference.recordSuccess(labels, 1, timing);
      inference.recordFailure(labels, 800);
      await collector.collect(live());
      const summary = TelemetrySchema.parse(collector.summary());

      expect(summary).toMatchObject({ v: 1, spoke: 'site-17', errors: [], agent: { reconcileSeconds: 1.5, reconcileErrors: 1, queuedReports: 3 } });
      expect(summary.gpus).toHaveLength(8);
      expect(summary.gpus[0]).toMatchObject({ index: 0, product: 'NVIDIA H100 80GB HBM3', utilisation: 0.97, temperatureC: 64, powerW: 612.45 });
      expect(summary.host.memoryTotalBytes).toBeGreaterThan(0);
      expect(summary.host.diskTotalBytes).toBeGreaterThan(0);
      expect(summary.inference).toHaveLength(1);
      const [row] = summary.inference;
      expect(row?.deployment).toBe('bridge-defects');
      expect(row?.requestsPerSecond).toBeGreaterThan(0);
      expect(row?.errorRatio).toBeCloseTo(0.25, 9);
      // All four requests took between 0.5 ms and 5 ms: the quantiles fall in those buckets.
      expect(row?.latencyP50Ms).toBeGreaterThan(0.5);
      expect(row?.latencyP99Ms).toBeLessThanOrEqual(5);
    } finally {
      await server.close();
    }
  });

  it('reports a driver that is not loaded and an unreachable workload in errors, and the summary stays valid', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'driver-not-loaded.txt', exitCode: 9 });
    const dead = await deadUrl();
    const withWorkload = new HealthCollector({
      spoke: 'site-17',
      gpu: { kind: 'nvidia-smi', binary },
      disks: [stateDir, join(dir, 'missing-cache')],
      workloads: () => [{ deployment: 'bridge-defects', url: dead }],
      metrics: new AgentMetrics({ defaultMetrics: false }),
    });

    await withWorkload.collect(live());
    const summary = TelemetrySchema.parse(withWorkload.summary());

    expect(summary.gpus).toEqual([]);
    expect(summary.errors).toEqual([
      expect.stringMatching(/^disk .*missing-cache: ENOENT/),
      expect.stringContaining('driver not loaded'),
      expect.stringMatching(/^inference bridge-defects \(http:\/\/127\.0\.0\.1:\d+\/metrics\): fetch failed \(connect ECONNREFUSED/),
    ]);
    expect(withWorkload.capacity().gpus).toEqual([]);
  });

  it('reports a missing nvidia-smi binary as an error', async () => {
    const collector = new HealthCollector({
      spoke: 'site-17',
      gpu: { kind: 'nvidia-smi', binary: join(dir, 'absent', 'nvidia-smi') },
      disks: [stateDir],
      metrics: new AgentMetrics({ defaultMetrics: false }),
    });

    await collector.collect(live());

    expect(collector.summary().errors).toEqual([expect.stringMatching(/^nvidia-smi query: .*absent\/nvidia-smi not found$/)]);
    // A failed read does not say the appliance has no GPU: the count is unknown.
    expect(collector.gpuCount()).toBeUndefined();
  });

  it('keeps errors to 16 entries of at most 512 characters however many workloads fail', async () => {
    const dead = await deadUrl();
    const collector = new HealthCollector({
      spoke: 'site-17',
      gpu: { kind: 'none' },
      disks: [stateDir],
      workloads: () => Array.from({ length: 40 }, (_, i) => ({ deployment: `svc-${i}`, url: `${dead}?${'x'.repeat(600)}` })),
      metrics: new AgentMetrics({ defaultMetrics: false }),
    });

    await collector.collect(live());
    const summary = TelemetrySchema.parse(collector.summary());

    expect(summary.errors).toHaveLength(16);
    expect(summary.errors.every((e) => e.length <= 512)).toBe(true);
    expect(summary.errors.at(-1)).toBe('... and 25 more problems');
  });

  it('caps inference entries at the configured limit and says how many were left out', async () => {
    const bodies = ['nv_inference_request_success 0\nnv_inference_request_failure 0\n', 'nv_inference_request_success 10\nnv_inference_request_failure 0\n'];
    let call = 0;
    const server = await textServer(() => bodies[Math.min(1, Math.floor(call++ / 3))] ?? '');
    try {
      const collector = new HealthCollector({
        spoke: 'site-17',
        gpu: { kind: 'none' },
        disks: [stateDir],
        workloads: () => ['a', 'b', 'c'].map((d) => ({ deployment: d, url: server.url })),
        limits: { inference: 2 },
        metrics: new AgentMetrics({ defaultMetrics: false }),
      });

      await collector.collect(live());
      await collector.collect(live());
      const summary = TelemetrySchema.parse(collector.summary());

      expect(summary.inference.map((r) => r.deployment)).toEqual(['a', 'b']);
      expect(summary.errors).toEqual(['1 deployments left out of telemetry']);
    } finally {
      await server.close();
    }
  });

  it('reads GPUs from a DCGM exporter when configured', async () => {
    const text = await readFile(join(FIXTURES, 'dcgm-exporter-l40s.prom'), 'utf8');
    const server = await textServer(() => text);
    try {
      const collector = new HealthCollector({
        spoke: 'site-17',
        gpu: { kind: 'dcgm', url: server.url },
        disks: [stateDir],
        metrics: new AgentMetrics({ defaultMetrics: false }),
      });

      await collector.collect(live());

      expect(collector.capacity().gpus.map((g) => [g.product, g.memoryGiB])).toEqual([
        ['NVIDIA L40S', 44.99],
        ['NVIDIA L40S', 44.99],
      ]);
      expect(TelemetrySchema.parse(collector.summary()).gpus[0]).toMatchObject({ utilisation: 0.76, powerW: 261.329 });
    } finally {
      await server.close();
    }
  });

  it('reports an unreachable DCGM exporter as an error', async () => {
    const collector = new HealthCollector({ spoke: 'site-17', gpu: { kind: 'dcgm', url: await deadUrl() }, disks: [stateDir], metrics: new AgentMetrics({ defaultMetrics: false }) });

    await collector.collect(live());

    expect(collector.summary().errors).toEqual([expect.stringMatching(/^dcgm-exporter http:\/\/127\.0\.0\.1:\d+\/metrics: fetch failed \(connect ECONNREFUSED/)]);
  });

  it('says that nothing was collected yet before the first collection', () => {
    const collector = new HealthCollector({ spoke: 'site-17', gpu: { kind: 'none' }, disks: [], metrics: new AgentMetrics({ defaultMetrics: false }) });

    const summary = TelemetrySchema.parse(collector.summary());

    expect(summary.errors).toEqual(['health not collected yet']);
    expect(CapacitySchema.parse(collector.capacity()).cpuCores).toBeGreaterThan(0);
  });

  it('refuses a spoke name that is not a DNS label', () => {
    expect(() => new HealthCollector({ spoke: 'Site 17', gpu: { kind: 'none' }, disks: [] })).toThrow(/invalid spoke name "Site 17"/);
  });
});
