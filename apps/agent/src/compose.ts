import path from 'node:path';
import type { Logger } from 'pino';
import { runAgent, type AgentHandle } from './agent.js';
import { ArtifactCache } from './artifacts/index.js';
import { keptArtifactDir, spokeAuthorization } from './artifacts/spoke-artifacts.js';
import type { AgentConfig } from './config/agent-config.js';
import { HealthCollector, startMetricsServer, type MetricsServer, type WorkloadEndpoint } from './health/index.js';
import { NoneRuntime } from './runtime/none/none-runtime.js';
import { ProcessRuntime, type ProcessRuntimeOptions, type RunningWorkload } from './runtime/process/index.js';
import { LazyArtifactUploader } from './runtime/process/lazy-finetune.js';
import { ReportKeepingRuntime } from './runtime/report-keeping-runtime.js';
import { SourcePolicy } from './security/source-policy.js';
import type { WorkloadRuntime } from './runtime/runtime.js';
import { effectiveReplicas } from './schedule/index.js';
import { StateDirLock, StateDirLockedError } from './state/state-dir-lock.js';
import { hasCredentials, readCredentials } from './state/state-dir.js';

export type AgentStartErrorCode = 'NotEnrolled' | 'StateDirLocked' | 'KubeConfig' | 'MetricsPort';

/** Why the agent could not start, in one sentence saying what to do. */
export class AgentStartError extends Error {
  override readonly name = 'AgentStartError';
  constructor(
    readonly code: AgentStartErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface StartAgentOptions {
  logger: Logger;
  /** Aborting stops the agent, like `stop()`. */
  signal?: AbortSignal;
  /** Process runtime settings beyond the configuration (tests, the local agent). */
  processRuntime?: Partial<Omit<ProcessRuntimeOptions, 'stateDir' | 'artifacts' | 'logger'>>;
}

/** An agent started by `startAgent`, with what the command that runs it needs to say. */
export interface RunningAgent {
  readonly spoke: string;
  readonly stateDir: string;
  /** The local Prometheus endpoint, or null when off. */
  readonly metricsUrl: string | null;
  /** Process runtime: the workload processes running now (they keep running once the agent stops). */
  runningWorkloads(): RunningWorkload[];
  /** Stops the agent, then its runtime (workloads keep running), its /metrics, and releases the state directory. */
  stop(): Promise<void>;
}

/** Port-in-use errors from startMetricsServer carry the listen error as their cause. */
const portTaken = (err: unknown): boolean => ((err as { cause?: NodeJS.ErrnoException }).cause?.code ?? '') === 'EADDRINUSE';

/**
 * The agent's composition root: from a validated AgentConfig, takes the
 * state directory's lock, builds the verified model cache, the workload
 * runtime over it, the health collector (GPUs, host, workloads, the agent
 * itself) and the local /metrics, then runs the agent core. What `flotilla
 * agent run` and the local agent beside the hub both call.
 */
export async function startAgent(config: AgentConfig, opts: StartAgentOptions): Promise<RunningAgent> {
  const { stateDir } = config;
  const log = opts.logger;
  if (!(await hasCredentials(stateDir))) {
    throw new AgentStartError('NotEnrolled', `${stateDir} holds no credentials: run "flotilla agent enroll --state-dir ${stateDir} ..." first`);
  }
  let lock: StateDirLock;
  try {
    lock = await StateDirLock.acquire(stateDir);
  } catch (err) {
    if (err instanceof StateDirLockedError) throw new AgentStartError('StateDirLocked', `${err.message}: one agent per state directory; stop that one first or use another --state-dir`);
    throw err;
  }
  const undo: (() => Promise<void>)[] = [() => lock.release()];
  try {
    const creds = await readCredentials(stateDir);
    // The agent's own hub is trusted wherever it is (a hub on this machine or on the site's network).
    const sources = new SourcePolicy({ ...config.sources, trustedOrigins: [new URL(creds.hubUrl).origin] });
    // The spoke's own credentials for the hub's artifact routes (upload of produced models, fetch of uploaded ones).
    const authorization = () => spokeAuthorization(creds.mqtt.username, creds.mqtt.password);
    // Produced models for output.artifact: upload go to the hub's store with those credentials (under either runtime).
    const uploader = new LazyArtifactUploader({ hubUrl: creds.hubUrl, authorization, ...(creds.caCertificate ? { ca: creds.caCertificate } : {}) });
    const cache = new ArtifactCache({
      root: path.join(stateDir, 'cache'),
      maxBytes: config.cacheMaxBytes,
      maxArtifactBytes: 20 * 1024 ** 3,
      sources,
      flotilla: { spoke: creds.spoke, hubUrl: creds.hubUrl, authorization, ...(creds.caCertificate ? { ca: creds.caCertificate } : {}), keptArtifactPath: (hex) => path.join(keptArtifactDir(stateDir, `sha256:${hex}`), 'model.onnx') },
      logger: log.child({ component: 'artifacts' }),
    });
    let processRuntime: ProcessRuntime | null = null;
    let inner: WorkloadRuntime;
    switch (config.runtime) {
      case 'none':
        inner = new NoneRuntime();
        break;
      case 'process':
        processRuntime = new ProcessRuntime({
          host: config.serve.address,
          ...(config.serve.advertiseHost ? { advertiseHost: config.serve.advertiseHost } : {}),
          ...opts.processRuntime,
          // Datasets only under the agent's --dataset-root directories (checked on the resolved path).
          // GPUs counted from the health collector's first sample (the runner is made with the first job, after it).
          fineTune: {
            gpuCount: () => collector.gpuCount(),
            ...opts.processRuntime?.fineTune,
            datasetPolicy: (resolved: string) => void sources.datasetHostPath(resolved),
            uploader,
          },
          stateDir,
          spoke: creds.spoke,
          artifacts: cache,
          logger: log.child({ component: 'process-runtime' }),
        });
        inner = processRuntime;
        break;
      case 'kubernetes': {
        // Loaded only here: @kubernetes/client-node alone is ~90 MB of RSS and seconds of start-up
        // that an appliance running the process runtime never needs.
        const { KubernetesRuntime, loadKubeConfig } = await import('./runtime/kubernetes/kubernetes-runtime.js');
        let kubeConfig;
        try {
          kubeConfig = loadKubeConfig(config.kubeconfig ? { file: config.kubeconfig } : { inCluster: true });
        } catch (err) {
          throw new AgentStartError('KubeConfig', `cannot load the Kubernetes configuration${config.kubeconfig ? ` from ${config.kubeconfig}` : ' (in-cluster)'}: ${(err as Error).message}`);
        }
        inner = new KubernetesRuntime({
          kubeConfig,
          namespace: config.namespace,
          exposure: config.exposure,
          artifacts: cache,
          sources,
          replicasFor: (d, now) => {
            const r = effectiveReplicas(d, now);
            return { min: r.min, max: r.max };
          },
          logger: log.child({ component: 'kubernetes-runtime' }),
          // Fine-tuning Jobs: records in the state directory; datasets only under the agent's --dataset-root directories.
          fineTune: { stateDir, spoke: creds.spoke, datasetPolicy: (resolved: string) => void sources.datasetHostPath(resolved), uploader, logger: log.child({ component: 'finetune' }) },
        });
        break;
      }
    }
    const runtime = new ReportKeepingRuntime(inner);
    undo.push(() => runtime.close());
    // The process runtime knows where Triton's own metrics port is; otherwise the endpoint's origin serves /metrics.
    const workloadEndpoints = (): WorkloadEndpoint[] =>
      processRuntime
        ? processRuntime.metricsEndpoints()
        : (runtime.lastReport?.deployments ?? []).flatMap((d) => {
            if (!d.endpoint) return [];
            const u = new URL(d.endpoint);
            return [{ deployment: d.name, url: `${u.protocol}//${u.host}/metrics` }];
          });
    const collector = new HealthCollector({
      spoke: creds.spoke,
      gpu: config.gpu,
      disks: [stateDir, path.join(stateDir, 'cache')],
      workloads: workloadEndpoints,
    });
    let metrics: MetricsServer | null = null;
    if (config.metrics) {
      const { port, host, orAnyFreePort } = config.metrics;
      try {
        metrics = await startMetricsServer({ port, host, registry: collector.registry });
      } catch (err) {
        if (!(orAnyFreePort && portTaken(err))) throw new AgentStartError('MetricsPort', `${(err as Error).message}; choose another with --metrics-port (0: any free port, off: none)`);
        metrics = await startMetricsServer({ port: 0, host, registry: collector.registry });
      }
      undo.push(() => (metrics as MetricsServer).close());
      log.info({ url: metrics.url }, 'agent metrics served');
    }
    // The first capacity report needs a first sample.
    await collector.collect(AbortSignal.timeout(15_000)).catch(() => undefined);
    const handle: AgentHandle = await runAgent({
      stateDir,
      runtime,
      logger: log,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(config.mqttUrlOverride ? { mqttUrlOverride: config.mqttUrlOverride } : {}),
      telemetry: () => collector.telemetry(AbortSignal.timeout(15_000)),
      capacity: async () => collector.capacity(),
      selfMetrics: collector.metrics,
    });
    let stopping: Promise<void> | null = null;
    return {
      spoke: handle.spoke,
      stateDir,
      metricsUrl: metrics?.url ?? null,
      runningWorkloads: () => processRuntime?.runningWorkloads() ?? [],
      stop: () => {
        stopping ??= (async () => {
          await handle.stop();
          await metrics?.close();
          await runtime.close();
          await lock.release();
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const u of undo.reverse()) await u().catch(() => undefined);
    throw err;
  }
}
