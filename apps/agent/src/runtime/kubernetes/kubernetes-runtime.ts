import type { Condition, DesiredDeployment, DesiredFineTuneJob, DesiredPayload, JobRunStatus, ModelRef } from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { FineTuneRunner, FineTuneRunnerOptions } from '../../finetune/finetune-runner.js';
import { ModelRefSchema } from '@flotilla/contracts';
import { KubeConfig } from '@kubernetes/client-node';
import { describeError, isArtifactError } from '../../artifacts/artifact-error.js';
import type { SourcePolicy } from '../../security/source-policy.js';
import type { ArtifactProvider, PreparedArtifact, RuntimeReport, WorkloadRuntime } from '../runtime.js';
import { describeDrift } from './drift.js';
import { ClientNodeKubeApi, isKubeApiError, type KubeApi } from './kube-api.js';
import { ANNOTATION_MODEL_REF, LABEL_DEPLOYMENT, LABEL_MANAGED_BY, MANAGED_BY } from './labels.js';
import {
  DEFAULT_TRITON_IMAGE,
  ManifestError,
  renderTritonDeployment,
  serviceNameFor,
  type ManifestOptions,
  type ModelVolumeStrategy,
  type ReplicaRange,
  type ServiceExposure,
} from './manifests.js';
import {
  deploymentKey,
  MANAGED_KINDS,
  refKey,
  stringRecord,
  type JsonMap,
  type LiveObject,
  type ObjectRef,
  type WorkloadKey,
} from './objects.js';
import { planKubernetes, type DesiredWorkload, type ObservedState, type Step } from './planner.js';
import { deploymentStatus } from './status.js';

/** The subset of a pino logger the runtime uses. */
export interface RuntimeLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silentLogger: RuntimeLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

/** Replicas a deployment should have at `now` (schedule windows are evaluated elsewhere and injected). */
export type ReplicasFor = (deployment: DesiredDeployment, now: Date) => ReplicaRange;

export interface KubernetesRuntimeOptions {
  /** In cluster: `kc.loadFromCluster()`; from a file: `kc.loadFromFile(path)` (see loadKubeConfig). */
  kubeConfig: KubeConfig;
  /** Namespace for everything Flotilla creates; one agent per namespace, since the label is the ledger. */
  namespace: string;
  artifacts: ArtifactProvider;
  /** Which trainer images and dataset host paths FineTuneJobs may use. */
  sources: SourcePolicy;
  tritonImage?: string;
  /** How model repositories in the agent's cache reach pods (default: hostPath, same path). */
  modelVolume?: ModelVolumeStrategy;
  /** Added to every pod's nodeSelector (e.g. pin to the node that holds a hostPath cache). */
  nodeSelector?: Record<string, string>;
  /** Node directory for fine-tuning outputs (default /var/lib/flotilla-agent/jobs). */
  jobOutputHostPath?: string;
  /** Default: the deployment's own `replicas` (min/max), ignoring its schedule. */
  replicasFor?: ReplicasFor;
  now?: () => Date;
  logger?: RuntimeLogger;
  /** How inference Services are exposed and which URL is reported for them (default ClusterIP: the cluster IP). */
  exposure?: ServiceExposure;
  /** Replaces the client-node API layer (tests of the runtime's own logic). */
  api?: KubeApi;
  /** First delay before re-opening a watch that ended (default 1 s). */
  watchRetryMs?: number;
  /**
   * Fine-tuning runs (trainer.image as Jobs): the agent's state directory
   * (job records), the spoke name (produced version names) and the run
   * limits. Without it, fine-tuning jobs are reported Failed.
   */
  fineTune?: Pick<FineTuneRunnerOptions, 'stateDir' | 'spoke' | 'datasetPolicy' | 'timeoutMs' | 'gpuCount' | 'threads' | 'stopGraceMs' | 'evaluateEntry' | 'schedulePollMs' | 'uploader'> & {
    logger?: Logger;
    /** How often a running Job, its pod and log are read (default 2 s). */
    pollMs?: number;
  };
}

const BUILTIN_UNSUPPORTED =
  "runtime 'builtin' is Flotilla's reference inference server, run by the process runtime; under Kubernetes " +
  "use runtime 'triton' (it serves the same Open Inference Protocol), or run this spoke's agent with the process runtime";

interface Failure {
  reason: string;
  message: string;
}

interface Prepared {
  workloads: DesiredWorkload[];
  ranges: Map<string, ReplicaRange>;
  verified: ModelRef[];
}

/** Loads a KubeConfig from inside a cluster (service account), a file, or the usual defaults ($KUBECONFIG, ~/.kube/config). */
export function loadKubeConfig(source: { inCluster: true } | { file: string; context?: string } | { defaults: true }): KubeConfig {
  const kc = new KubeConfig();
  if ('inCluster' in source) kc.loadFromCluster();
  else if ('file' in source) {
    kc.loadFromFile(source.file);
    if (source.context !== undefined) kc.setCurrentContext(source.context);
  } else kc.loadFromDefault();
  return kc;
}

/**
 * Runs desired deployments as Triton Deployments (+ Service, HPA) and
 * fine-tuning jobs as batch/v1 Jobs, by server-side apply with field manager
 * `flotilla-agent`. Each reconcile: render (after the artifact cache
 * verified each model), observe (list by the managed-by label only), plan
 * (pure), execute, observe again, report.
 */
export class KubernetesRuntime implements WorkloadRuntime {
  readonly kind = 'kubernetes' as const;
  private readonly api: KubeApi;
  private readonly manifest: ManifestOptions;
  private readonly replicasFor: ReplicasFor;
  private readonly now: () => Date;
  private readonly log: RuntimeLogger;
  private readonly conditions = new Map<string, Condition[]>();
  private readonly listeners = new Set<() => void>();
  private readonly watchAbort = new AbortController();
  private watching: Promise<void> | null = null;
  private namespaceReady = false;
  /** Loaded with the first fine-tuning job (the training code stays out of an agent that has none). */
  private runner: FineTuneRunner | null = null;

  constructor(private readonly opts: KubernetesRuntimeOptions) {
    this.log = opts.logger ?? silentLogger;
    this.api =
      opts.api ??
      new ClientNodeKubeApi({
        kubeConfig: opts.kubeConfig,
        namespace: opts.namespace,
        ...(opts.watchRetryMs !== undefined ? { watchRetryMs: opts.watchRetryMs } : {}),
        onWatchError: (kind, err) => this.log.warn({ kind, err: describeError(err) }, 'watch ended with an error; re-establishing'),
      });
    this.manifest = {
      namespace: opts.namespace,
      tritonImage: opts.tritonImage ?? DEFAULT_TRITON_IMAGE,
      modelVolume: opts.modelVolume ?? { kind: 'hostPath' },
      ...(opts.nodeSelector !== undefined ? { nodeSelector: opts.nodeSelector } : {}),
      jobOutputHostPath: opts.jobOutputHostPath ?? '/var/lib/flotilla-agent/jobs',
      ...(opts.exposure !== undefined ? { exposure: opts.exposure } : {}),
    };
    this.replicasFor = opts.replicasFor ?? ((d) => ({ min: d.replicas.min, max: d.replicas.max }));
    this.now = opts.now ?? (() => new Date());
  }

  async reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport> {
    signal.throwIfAborted();
    if (!this.namespaceReady) {
      await this.api.ensureNamespace(signal);
      this.namespaceReady = true;
    }
    const now = this.now();
    const jobs = await this.reconcileJobs(desired, signal);
    const prepared = await this.prepare(desired, now, signal);
    let observed = await this.observe(prepared.workloads, signal);
    // The runner owns the Jobs of desired fine-tuning jobs; the planner prunes the Jobs of jobs no longer desired.
    const owned = new Set(desired.fineTuneJobs.map((j) => j.name));
    observed.state.managed = observed.state.managed.filter((o) => !(o.kind === 'Job' && owned.has(o.name)));
    const steps = planKubernetes(observed.state, { workloads: prepared.workloads });
    const outcome = await this.execute(steps, signal);
    if (outcome.mutated) observed = await this.observe(prepared.workloads, signal);
    const report = { ...this.report(desired, prepared, observed, outcome, now), jobs };
    await this.retain(prepared.verified, observed.state.managed);
    return report;
  }

  /**
   * Fine-tuning jobs go to the FineTuneRunner (schedule windows, one
   * training per GPU, timeouts, restart), whose trainer for `trainer.image`
   * runs a Job; builtin and command trainers are refused with the reason.
   */
  private async reconcileJobs(desired: DesiredPayload, signal: AbortSignal): Promise<JobRunStatus[]> {
    if (desired.fineTuneJobs.length === 0 && this.runner === null) return [];
    const ft = this.opts.fineTune;
    if (!ft) {
      return desired.fineTuneJobs.map((j: DesiredFineTuneJob) => ({ name: j.name, phase: 'Failed', progress: 0, metrics: {}, producedVersion: null, message: 'fine-tuning needs the agent state directory, which this Kubernetes runtime was not given' }));
    }
    if (this.runner === null) {
      const [{ FineTuneRunner }, { KubernetesJobTrainer }] = await Promise.all([import('../../finetune/finetune-runner.js'), import('./job-trainer.js')]);
      signal.throwIfAborted();
      const jobTrainer = new KubernetesJobTrainer({ api: this.api, manifest: this.manifest, sources: this.opts.sources, ...(ft.pollMs !== undefined ? { pollMs: ft.pollMs } : {}) });
      const { logger, pollMs: _pollMs, ...rest } = ft;
      this.runner = new FineTuneRunner({
        ...rest,
        artifacts: this.opts.artifacts,
        logger: logger ?? (await import('pino')).pino({ enabled: false }),
        ...(this.opts.now ? { now: this.opts.now } : {}),
        changed: () => {
          for (const l of this.listeners) l();
        },
        trainers: (job) => {
          if ('builtin' in job.trainer) {
            return { refused: `builtin trainer '${job.trainer.builtin}' runs in a child process of the agent under the process runtime; under Kubernetes give the job a trainer image (trainer.image, optional command)` };
          }
          if (!('image' in job.trainer)) {
            return { refused: 'trainer.command alone runs a program installed on the appliance, under the process runtime; under Kubernetes give the job trainer.image (+ optional command)' };
          }
          return jobTrainer;
        },
      });
    }
    return this.runner.reconcile(desired.fineTuneJobs, desired.deployments.map((d) => d.model));
  }

  /** Verifies every model through the cache and renders what it can; what it cannot is blocked with a reason. */
  private async prepare(desired: DesiredPayload, now: Date, signal: AbortSignal): Promise<Prepared> {
    const workloads: DesiredWorkload[] = [];
    const ranges = new Map<string, ReplicaRange>();
    const verified: ModelRef[] = [];
    const ensure = async (model: ModelRef): Promise<PreparedArtifact | Failure> => {
      try {
        const artifact = await this.opts.artifacts.ensure(model, signal);
        verified.push(model);
        return artifact;
      } catch (err) {
        signal.throwIfAborted();
        if (isArtifactError(err)) return { reason: err.reason, message: `model ${model.name} ${model.version}: ${err.message}` };
        return { reason: 'ArtifactUnavailable', message: `model ${model.name} ${model.version}: ${describeError(err)}` };
      }
    };
    const render = (fn: () => DesiredWorkload['objects']): DesiredWorkload['objects'] | Failure => {
      try {
        return fn();
      } catch (err) {
        if (err instanceof ManifestError) return { reason: err.reason, message: err.message };
        throw err;
      }
    };

    for (const d of desired.deployments) {
      const key = deploymentKey(d.name);
      const range = this.replicasFor(d, now);
      ranges.set(d.name, range);
      if (d.runtime === 'builtin') {
        workloads.push({ key, remediation: d.remediation, objects: [], blocked: { reason: 'RuntimeNotSupported', message: BUILTIN_UNSUPPORTED, keepLive: false } });
        continue;
      }
      const artifact = await ensure(d.model);
      if ('reason' in artifact) {
        workloads.push({ key, remediation: d.remediation, objects: [], blocked: { ...artifact, keepLive: true } });
        continue;
      }
      const objects = render(() => renderTritonDeployment(d, artifact, range, this.manifest));
      if ('reason' in objects) workloads.push({ key, remediation: d.remediation, objects: [], blocked: { ...objects, keepLive: true } });
      else workloads.push({ key, remediation: d.remediation, objects });
    }

    for (const j of desired.fineTuneJobs) verified.push(j.baseModel);
    return { workloads, ranges, verified };
  }

  /** The ledger (objects with Flotilla's label), pods, and unlabelled objects squatting on desired names. */
  private async observe(workloads: DesiredWorkload[], signal: AbortSignal): Promise<{ state: ObservedState; pods: JsonMap[] }> {
    const managed = (await Promise.all(MANAGED_KINDS.map((kind) => this.api.listManaged(kind, signal)))).flat();
    const pods = await this.api.listPods(signal);
    const known = new Set(managed.map(refKey));
    const missing = workloads.flatMap((w) => w.objects).filter((o) => !known.has(refKey(o)));
    const found = await Promise.all(missing.map((o) => this.api.read({ kind: o.kind, name: o.name }, signal)));
    const foreign: ObjectRef[] = [];
    found.forEach((obj, i) => {
      // One created with the label between our list and read is ours; the next reconcile lists it.
      if (obj && obj.labels[LABEL_MANAGED_BY] !== MANAGED_BY) foreign.push({ kind: missing[i]!.kind, name: missing[i]!.name });
    });
    return { state: { managed, foreign }, pods };
  }

  private async execute(steps: Step[], signal: AbortSignal): Promise<{ mutated: boolean; failures: Map<WorkloadKey, Failure[]>; corrected: Map<WorkloadKey, string[]> }> {
    const failures = new Map<WorkloadKey, Failure[]>();
    const corrected = new Map<WorkloadKey, string[]>();
    const fail = (key: WorkloadKey, failure: Failure) => failures.set(key, [...(failures.get(key) ?? []), failure]);
    let mutated = false;
    for (const step of steps) {
      signal.throwIfAborted();
      switch (step.type) {
        case 'apply':
          try {
            await this.api.apply(step.object.body, step.force, signal);
            mutated = true;
            this.log.info({ object: refKey(step.object), why: step.why, force: step.force }, 'applied');
            if (step.why === 'drift' && step.differences) {
              const what = describeDrift(step.object, step.differences);
              corrected.set(step.workload, [...(corrected.get(step.workload) ?? []), what]);
              this.log.info({ object: refKey(step.object), drift: what }, 'drift reverted');
            }
          } catch (err) {
            fail(step.workload, this.classify(err, `apply ${refKey(step.object)}`));
          }
          break;
        case 'delete':
          try {
            await this.api.delete(step.target, signal);
            mutated = true;
            this.log.info({ object: refKey(step.target), why: step.why }, 'deleted');
          } catch (err) {
            const failure = this.classify(err, `delete ${refKey(step.target)}`);
            if (step.workload) fail(step.workload, failure);
            else this.log.warn({ object: refKey(step.target), err: failure.message }, 'could not prune; will retry');
          }
          break;
        case 'report-drift':
          this.log.info({ object: refKey(step.target), drift: describeDrift(step.target, step.differences) }, 'drift reported (remediation: inform)');
          break;
        case 'report-conflict':
          fail(step.workload, { reason: 'NameConflict', message: step.message });
          this.log.warn({ object: refKey(step.target) }, step.message);
          break;
      }
    }
    return { mutated, failures, corrected };
  }

  /** A per-workload failure, or a throw when the whole reconcile should back off and retry. */
  private classify(err: unknown, what: string): Failure {
    if (!isKubeApiError(err) || err.retryable) throw err;
    if (err.code === 409 && err.causes.some((c) => c.reason === 'FieldManagerConflict')) {
      return { reason: 'FieldConflict', message: `${what}: ${err.message} (remediation: inform does not take fields over)` };
    }
    const reason = /^[A-Za-z][A-Za-z0-9]*$/.test(err.reason) ? err.reason : 'ApplyFailed';
    return { reason, message: `${what}: ${err.message}` };
  }

  private report(
    desired: DesiredPayload,
    prepared: Prepared,
    observed: { state: ObservedState; pods: JsonMap[] },
    outcome: { failures: Map<WorkloadKey, Failure[]>; corrected: Map<WorkloadKey, string[]> },
    now: Date,
  ): RuntimeReport {
    const live = new Map(observed.state.managed.map((o) => [refKey(o), o]));
    const find = (kind: LiveObject['kind'], name: string) => live.get(`${kind}/${name}`);
    const byKey = new Map(prepared.workloads.map((w) => [w.key, w]));
    const wanted = new Set(desired.deployments.map((d) => d.name));
    for (const name of this.conditions.keys()) if (!wanted.has(name)) this.conditions.delete(name);

    const deployments = desired.deployments.map((d: DesiredDeployment) => {
      const key = deploymentKey(d.name);
      const status = deploymentStatus(
        {
          desired: d,
          workload: byKey.get(key)!,
          range: prepared.ranges.get(d.name)!,
          namespace: this.opts.namespace,
          ...(this.opts.exposure !== undefined ? { exposure: this.opts.exposure } : {}),
          live: {
            deployment: find('Deployment', d.name),
            service: find('Service', serviceNameFor(d.name)),
            hpa: find('HorizontalPodAutoscaler', d.name),
          },
          pods: observed.pods.filter((p) => stringRecord((p['metadata'] as JsonMap | undefined)?.['labels'])[LABEL_DEPLOYMENT] === d.name),
          failures: outcome.failures.get(key) ?? [],
          corrected: outcome.corrected.get(key) ?? [],
        },
        this.conditions.get(d.name) ?? [],
        now,
      );
      this.conditions.set(d.name, status.conditions);
      return status;
    });
    return { deployments, jobs: [] };
  }

  /** Keeps in the cache every version that desired state names or that a live object still runs. */
  private async retain(verified: ModelRef[], managed: LiveObject[]): Promise<void> {
    const refs = new Map<string, ModelRef>();
    for (const m of verified) refs.set(`${m.name}@${m.digest}`, m);
    for (const obj of managed) {
      const raw = obj.annotations[ANNOTATION_MODEL_REF];
      if (!raw) continue;
      try {
        const parsed = ModelRefSchema.safeParse(JSON.parse(raw));
        if (parsed.success) refs.set(`${parsed.data.name}@${parsed.data.digest}`, parsed.data);
      } catch {
        // A hand-edited annotation is not worth failing a reconcile over.
      }
    }
    try {
      await this.opts.artifacts.retain([...refs.values()]);
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not declare the model versions in use to the artifact cache');
    }
  }

  /** Registers a listener for changes the cluster reports (watches on managed objects and their pods). */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
    if (this.watching || this.watchAbort.signal.aborted) return;
    this.watching = this.api
      .watchManaged(() => {
        for (const l of this.listeners) l();
      }, this.watchAbort.signal)
      .catch((err: unknown) => {
        if (!this.watchAbort.signal.aborted) this.log.warn({ err: describeError(err) }, 'watches stopped');
      });
  }

  async close(opts: { stopWorkloads?: boolean } = {}): Promise<void> {
    await this.runner?.close();
    this.watchAbort.abort();
    await this.watching;
    this.listeners.clear();
    if (opts.stopWorkloads) {
      const signal = AbortSignal.timeout(60_000);
      const managed = (await Promise.all(MANAGED_KINDS.map((kind) => this.api.listManaged(kind, signal)))).flat();
      for (const obj of managed) await this.api.delete({ kind: obj.kind, name: obj.name, uid: obj.uid }, signal);
    }
  }
}
