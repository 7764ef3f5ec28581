import path from 'node:path';
import type { Logger } from 'pino';
import { ArtifactCache } from '../../../agent/src/artifacts/index.js';
import { HealthCollector, startMetricsServer, type GpuDiscovery, type MetricsServer, type WorkloadEndpoint } from '../../../agent/src/health/index.js';
import { NoneRuntime, type RunAgentOptions, type WorkloadRuntime } from '../../../agent/src/index.js';
import { KubernetesRuntime, loadKubeConfig } from '../../../agent/src/runtime/kubernetes/kubernetes-runtime.js';
import { ProcessRuntime } from '../../../agent/src/runtime/process/index.js';
import { effectiveReplicas } from '../../../agent/src/schedule/index.js';
import { CliError, EXIT } from '../exit-codes.js';

export type RuntimeKind = 'process' | 'kubernetes' | 'none';

export interface RuntimeOptions {
  spoke: string;
  stateDir: string;
  log: Logger;
  kubeconfig?: string;
  namespace: string;
  /** Local Prometheus endpoint of the agent; 0 = a free port, null = none. */
  metricsPort: number | null;
  metricsHost?: string;
  gpu?: GpuDiscovery;
  cacheBytes?: number;
}

export interface RuntimeSetup {
  runtime: WorkloadRuntime;
  /** Health hooks handed to runAgent. */
  extras: Pick<RunAgentOptions, 'telemetry' | 'capacity' | 'selfMetrics'>;
  metrics: MetricsServer | null;
  close(): Promise<void>;
}

/**
 * Assembles what `flotilla agent run --runtime` asks for: the verified model
 * cache, the workload runtime over it, the health collector (GPUs, host,
 * workloads, the agent itself) and the agent's local /metrics.
 */
export async function createRuntime(kind: RuntimeKind, o: RuntimeOptions): Promise<RuntimeSetup> {
  const cache = new ArtifactCache({
    root: path.join(o.stateDir, 'cache'),
    maxBytes: o.cacheBytes ?? 50 * 1024 ** 3,
    maxArtifactBytes: 20 * 1024 ** 3,
    logger: o.log.child({ component: 'artifacts' }),
  });
  let runtime: WorkloadRuntime;
  switch (kind) {
    case 'none':
      runtime = new NoneRuntime();
      break;
    case 'process': {
      const p = new ProcessRuntime({ stateDir: o.stateDir, artifacts: cache, logger: o.log.child({ component: 'process-runtime' }) });
      runtime = p;
      break;
    }
    case 'kubernetes': {
      let kubeConfig;
      try {
        kubeConfig = loadKubeConfig(o.kubeconfig ? { file: o.kubeconfig } : { inCluster: true });
      } catch (err) {
        throw new CliError(`cannot load the Kubernetes configuration${o.kubeconfig ? ` from ${o.kubeconfig}` : ' (in-cluster)'}: ${(err as Error).message}`, EXIT.invalid);
      }
      runtime = new KubernetesRuntime({
        kubeConfig,
        namespace: o.namespace,
        artifacts: cache,
        replicasFor: (d, now) => {
          const r = effectiveReplicas(d, now);
          return { min: r.min, max: r.max };
        },
        logger: o.log.child({ component: 'kubernetes-runtime' }),
      });
      break;
    }
  }
  // The latest report names each workload's endpoint; the builtin server serves Prometheus
  // metrics beside it, while the process runtime knows where Triton's metrics port is.
  let lastReport: Awaited<ReturnType<WorkloadRuntime['reconcile']>> | null = null;
  const fromRuntime = runtime instanceof ProcessRuntime ? runtime : null;
  const workloadEndpoints = (): WorkloadEndpoint[] =>
    fromRuntime ? fromRuntime.metricsEndpoints() : (lastReport?.deployments ?? []).flatMap((d) => {
      if (!d.endpoint) return [];
      const u = new URL(d.endpoint);
      return [{ deployment: d.name, url: `${u.protocol}//${u.host}/metrics` }];
    });
  const inner = runtime;
  const observed: WorkloadRuntime = {
    kind: inner.kind,
    async reconcile(desired, signal) {
      lastReport = await inner.reconcile(desired, signal);
      return lastReport;
    },
    ...(inner.onChange ? { onChange: (l: () => void) => inner.onChange!(l) } : {}),
    close: (opts) => inner.close(opts),
  };
  const collector = new HealthCollector({
    spoke: o.spoke,
    gpu: o.gpu ?? { kind: 'nvidia-smi' },
    disks: [o.stateDir, path.join(o.stateDir, 'cache')],
    workloads: workloadEndpoints,
  });
  let metrics: MetricsServer | null = null;
  if (o.metricsPort !== null) {
    metrics = await startMetricsServer({ port: o.metricsPort, host: o.metricsHost ?? '127.0.0.1', registry: collector.registry });
  }
  // The first capacity report needs a first sample.
  await collector.collect(AbortSignal.timeout(15_000)).catch(() => undefined);
  return {
    runtime: observed,
    extras: {
      telemetry: () => collector.telemetry(AbortSignal.timeout(15_000)),
      capacity: async () => collector.capacity(),
      selfMetrics: collector.metrics,
    },
    metrics,
    async close() {
      await metrics?.close();
      await observed.close();
    },
  };
}
