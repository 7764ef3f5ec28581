import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  canonicalJson,
  GPU_PRODUCT_NODE_LABEL,
  gpuProductLabelValue,
  isLabelValue,
  type DesiredDeployment,
  type DesiredFineTuneJob,
  type ModelRef,
} from '@flotilla/contracts';
import type { PreparedArtifact } from '../runtime.js';
import {
  ANNOTATION_MODEL_DIGEST,
  ANNOTATION_MODEL_REF,
  ANNOTATION_MODEL_VERSION,
  ANNOTATION_SPEC_HASH,
  LABEL_COMPONENT,
  LABEL_DEPLOYMENT,
  LABEL_JOB,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  MANAGED_BY,
} from './labels.js';
import { API_VERSION, type DesiredObject, type JsonMap, type ManagedKind } from './objects.js';

/**
 * Pure rendering of desired deployments and jobs into Kubernetes objects.
 * Nothing here talks to a cluster; the same inputs always give the same
 * objects and hashes.
 */

export const DEFAULT_TRITON_IMAGE = 'nvcr.io/nvidia/tritonserver:24.08-py3';
export const HTTP_PORT = 8000;
export const METRICS_PORT = 8002;
export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_PRODUCT_LABEL = GPU_PRODUCT_NODE_LABEL;
/**
 * The per-pod metric an HPA scales on when a deployment sets
 * `targetConcurrency`: Triton's queue depth, which the builtin server exports
 * under the same name. It reaches the HPA through a custom-metrics adapter
 * (prometheus-adapter); without `targetConcurrency` the HPA falls back to CPU
 * utilisation, which needs only metrics-server.
 */
export const CONCURRENCY_METRIC = 'nv_inference_pending_request_count';
export const CPU_FALLBACK_UTILISATION = 80;

/**
 * How the agent's model repository reaches the serving pods. The artifact
 * cache hands out paths in the agent's own filesystem; `agentRoot` is where
 * the cache lives for the agent, `hostRoot` (hostPath) where the same
 * directory is on the node, which differ when the agent itself runs in a pod
 * with the cache mounted from the host. A PersistentVolumeClaim holding the
 * cache is mounted with the repository's path below `agentRoot` as subPath.
 */
export type ModelVolumeStrategy =
  | { kind: 'hostPath'; agentRoot?: string; hostRoot?: string }
  | { kind: 'persistentVolumeClaim'; claimName: string; agentRoot: string };

export interface ManifestOptions {
  namespace: string;
  tritonImage: string;
  modelVolume: ModelVolumeStrategy;
  /** Added to every pod's nodeSelector, e.g. the node holding a hostPath cache. */
  nodeSelector?: Record<string, string>;
  /** Node directory under which each fine-tuning job writes `<job name>/`. */
  jobOutputHostPath: string;
  /** How inference Services are exposed (default ClusterIP). */
  exposure?: ServiceExposure;
}

/** ClusterIP: the Service's cluster IP; NodePort: `host` and the node port; Ingress: a URL your ingress routes `/v2/models/NAME` from. */
export type ServiceExposure = { type: 'ClusterIP' } | { type: 'NodePort'; host: string } | { type: 'Ingress'; url: string };

export interface ReplicaRange {
  min: number;
  max: number;
}

/** A desired item cannot be rendered as configured (not an error of the cluster). */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function specHash(body: JsonMap): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** Stamps the hash of the rendering into the object's annotations. */
function finish(kind: ManagedKind, name: string, body: JsonMap): DesiredObject {
  const hash = specHash(body);
  const meta = body['metadata'] as JsonMap;
  meta['annotations'] = { ...(meta['annotations'] as JsonMap | undefined), [ANNOTATION_SPEC_HASH]: hash };
  return { kind, name, body, hash };
}

/**
 * The nodeSelector value for a GPU product: the hub renders it in GPU Feature
 * Discovery's label form already; converting again (idempotent) keeps a
 * product written as nvidia-smi prints it ("NVIDIA H100 80GB HBM3", from an
 * older hub) from turning into a Deployment the API server refuses. A name
 * that cannot be a label value at all is a ManifestError naming it, not a 422.
 */
export function gpuProductNodeSelectorValue(product: string): string {
  const value = gpuProductLabelValue(product);
  if (value === '' || !isLabelValue(value)) {
    throw new ManifestError(
      'InvalidGpuProduct',
      `GPU product "${product}" cannot be a node label value (as GPU Feature Discovery labels it: "${value}"); name the product as nvidia-smi reports it, at most 63 characters`,
    );
  }
  return value;
}

/** Service names must be RFC 1035 labels (start with a letter); deployment names may start with a digit. */
export function serviceNameFor(deployment: string): string {
  return /^[a-z]/.test(deployment) ? deployment : `m-${deployment}`.slice(0, 63).replace(/-+$/, '');
}

export function endpointFor(deployment: string, model: string, namespace: string): string {
  return `http://${serviceNameFor(deployment)}.${namespace}.svc:${HTTP_PORT}/v2/models/${model}`;
}

/**
 * The URL clients reach a deployment at, from its live Service: the cluster
 * IP (reachable in the cluster and on routed networks), the advertised node
 * address and node port, or the configured ingress URL. Null while the
 * cluster has not allocated what it needs (no node port yet).
 */
export function reachableEndpoint(service: JsonMap, deployment: string, model: string, namespace: string, exposure: ServiceExposure = { type: 'ClusterIP' }): string | null {
  const path = `/v2/models/${model}`;
  if (exposure.type === 'Ingress') return `${exposure.url}${path}`;
  const spec = (service['spec'] ?? {}) as JsonMap;
  if (exposure.type === 'NodePort') {
    const ports = Array.isArray(spec['ports']) ? (spec['ports'] as JsonMap[]) : [];
    const nodePort = ports.find((p) => p['name'] === 'http')?.['nodePort'];
    const host = exposure.host.includes(':') ? `[${exposure.host}]` : exposure.host;
    return typeof nodePort === 'number' && nodePort > 0 ? `http://${host}:${nodePort}${path}` : null;
  }
  const ip = spec['clusterIP'];
  if (typeof ip === 'string' && ip !== '' && ip !== 'None') return `http://${ip.includes(':') ? `[${ip}]` : ip}:${HTTP_PORT}${path}`;
  return endpointFor(deployment, model, namespace);
}

export function deploymentLabels(name: string): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_NAME]: name,
    [LABEL_COMPONENT]: 'inference-server',
    [LABEL_DEPLOYMENT]: name,
  };
}

export function deploymentSelector(name: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_DEPLOYMENT]: name };
}

function jobLabels(name: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_NAME]: name, [LABEL_COMPONENT]: 'fine-tuning', [LABEL_JOB]: name };
}

function resourceRequirements(resources: DesiredDeployment['resources'] | undefined): JsonMap {
  const limits: JsonMap = {};
  const requests: JsonMap = {};
  if (resources?.cpu !== undefined) {
    requests['cpu'] = resources.cpu;
    limits['cpu'] = resources.cpu;
  }
  if (resources?.memory !== undefined) {
    requests['memory'] = resources.memory;
    limits['memory'] = resources.memory;
  }
  // Extended resources are limits only: the scheduler sets the request equal.
  if ((resources?.gpu ?? 0) > 0) limits[GPU_RESOURCE] = String(resources!.gpu);
  const out: JsonMap = {};
  if (Object.keys(limits).length > 0) out['limits'] = limits;
  if (Object.keys(requests).length > 0) out['requests'] = requests;
  return out;
}

function gpuTolerations(gpus: number): Json[] {
  // GPU nodes are commonly tainted so that only GPU workloads land there.
  return gpus > 0 ? [{ key: GPU_RESOURCE, operator: 'Exists', effect: 'NoSchedule' }] : [];
}

type Json = JsonMap[string];

/** The volume (and subPath) through which a path of the agent's cache appears in a pod. */
export function volumeFor(agentPath: string, strategy: ModelVolumeStrategy, volumeName: string): { volume: JsonMap; subPath?: string } {
  const within = (root: string): string | undefined => {
    const rel = path.posix.relative(path.posix.resolve(root), path.posix.resolve(agentPath));
    return rel.startsWith('..') || path.posix.isAbsolute(rel) ? undefined : rel;
  };
  if (strategy.kind === 'persistentVolumeClaim') {
    const rel = within(strategy.agentRoot);
    if (rel === undefined) {
      throw new ManifestError('ModelPathUnmappable', `model repository ${agentPath} is not under the claim's root ${strategy.agentRoot}`);
    }
    return {
      volume: { name: volumeName, persistentVolumeClaim: { claimName: strategy.claimName, readOnly: true } },
      ...(rel !== '' ? { subPath: rel } : {}),
    };
  }
  let hostPath = agentPath;
  if (strategy.agentRoot !== undefined || strategy.hostRoot !== undefined) {
    const rel = within(strategy.agentRoot ?? '/');
    if (rel === undefined) {
      throw new ManifestError('ModelPathUnmappable', `model repository ${agentPath} is not under the agent's cache root ${strategy.agentRoot ?? '/'}`);
    }
    hostPath = path.posix.join(strategy.hostRoot ?? strategy.agentRoot ?? '/', rel);
  }
  return { volume: { name: volumeName, hostPath: { path: hostPath, type: 'Directory' } } };
}

export function modelRefAnnotation(model: ModelRef): string {
  return canonicalJson(model);
}

/**
 * Deployment, Service and (when the range leaves room to scale) a
 * HorizontalPodAutoscaler for one Triton-served deployment.
 *
 * Replicas: with min == max the Deployment carries the count and there is no
 * HPA. With max > min an HPA owns the count and the Deployment leaves
 * `replicas` out so the two never fight; HPA minReplicas is at least 1 (scale
 * to zero from an HPA needs an alpha feature gate), so a window of 0..N keeps
 * one replica warm. A window of 0..0 scales the Deployment to zero.
 */
export function renderTritonDeployment(
  d: DesiredDeployment,
  artifact: PreparedArtifact,
  range: ReplicaRange,
  opts: ManifestOptions,
): DesiredObject[] {
  const labels = deploymentLabels(d.name);
  const selector = deploymentSelector(d.name);
  const useHpa = range.max > range.min && range.max > 0;
  const gpus = d.resources.gpu ?? 0;
  const { volume, subPath } = volumeFor(artifact.repositoryPath, opts.modelVolume, 'model-repository');
  const nodeSelector: JsonMap = { ...opts.nodeSelector };
  if (d.gpuProduct !== undefined) nodeSelector[GPU_PRODUCT_LABEL] = gpuProductNodeSelectorValue(d.gpuProduct);
  const tolerations = gpuTolerations(gpus);
  const modelAnnotations = {
    [ANNOTATION_MODEL_VERSION]: d.model.version,
    [ANNOTATION_MODEL_DIGEST]: d.model.digest,
  };

  const container: JsonMap = {
    name: 'triton',
    image: opts.tritonImage,
    command: ['tritonserver'],
    args: ['--model-repository=/models', `--http-port=${HTTP_PORT}`, `--metrics-port=${METRICS_PORT}`, '--strict-readiness=true'],
    ports: [
      { name: 'http', containerPort: HTTP_PORT, protocol: 'TCP' },
      { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
    ],
    env: [
      { name: 'FLOTILLA_DEPLOYMENT', value: d.name },
      { name: 'FLOTILLA_MODEL', value: d.model.name },
      { name: 'FLOTILLA_MODEL_VERSION', value: d.model.version },
    ],
    readinessProbe: { httpGet: { path: '/v2/health/ready', port: 'http' }, periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: '/v2/health/live', port: 'http' }, periodSeconds: 10, failureThreshold: 6 },
    volumeMounts: [{ name: 'model-repository', mountPath: '/models', readOnly: true, ...(subPath !== undefined ? { subPath } : {}) }],
  };
  const resources = resourceRequirements(d.resources);
  if (Object.keys(resources).length > 0) container['resources'] = resources;

  const podSpec: JsonMap = { containers: [container], volumes: [volume] };
  if (Object.keys(nodeSelector).length > 0) podSpec['nodeSelector'] = nodeSelector;
  if (tolerations.length > 0) podSpec['tolerations'] = tolerations;

  const deployment = finish('Deployment', d.name, {
    apiVersion: API_VERSION.Deployment,
    kind: 'Deployment',
    metadata: {
      name: d.name,
      namespace: opts.namespace,
      labels,
      annotations: { ...modelAnnotations, [ANNOTATION_MODEL_REF]: modelRefAnnotation(d.model) },
    },
    spec: {
      ...(useHpa ? {} : { replicas: range.min }),
      selector: { matchLabels: selector },
      template: { metadata: { labels, annotations: modelAnnotations }, spec: podSpec },
    },
  });

  const service = finish('Service', serviceNameFor(d.name), {
    apiVersion: API_VERSION.Service,
    kind: 'Service',
    metadata: { name: serviceNameFor(d.name), namespace: opts.namespace, labels },
    spec: {
      type: opts.exposure?.type === 'NodePort' ? 'NodePort' : 'ClusterIP',
      selector,
      ports: [
        { name: 'http', port: HTTP_PORT, targetPort: 'http', protocol: 'TCP' },
        { name: 'metrics', port: METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  });

  const objects = [deployment, service];
  if (useHpa) {
    const metric: JsonMap =
      d.replicas.targetConcurrency !== undefined
        ? {
            type: 'Pods',
            pods: {
              metric: { name: CONCURRENCY_METRIC },
              target: { type: 'AverageValue', averageValue: String(d.replicas.targetConcurrency) },
            },
          }
        : { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: CPU_FALLBACK_UTILISATION } } };
    objects.push(
      finish('HorizontalPodAutoscaler', d.name, {
        apiVersion: API_VERSION.HorizontalPodAutoscaler,
        kind: 'HorizontalPodAutoscaler',
        metadata: { name: d.name, namespace: opts.namespace, labels },
        spec: {
          scaleTargetRef: { apiVersion: API_VERSION.Deployment, kind: 'Deployment', name: d.name },
          minReplicas: Math.max(1, range.min),
          maxReplicas: range.max,
          metrics: [metric],
        },
      }),
    );
  }
  return objects;
}

/** Where a fine-tuning run's files are on the node (the agent reads and writes the same paths). */
export interface JobRunDirs {
  /** Read-only for the trainer: hparams.json and holdout.txt. */
  input: string;
  /** Written by the trainer: model.onnx, labels.txt, metrics.json, or failure. */
  output: string;
}

/** The run's settings that are not in the desired job. */
export interface JobRunSettings {
  dirs: JobRunDirs;
  /** The job's rendered spec hash (annotation `flotilla.dev/job-spec`), so a restarted agent recognises its run. */
  jobSpecHash: string;
  datasetFingerprint: string;
  attempt: number;
  timeoutSeconds: number;
  graceSeconds: number;
}

export const ANNOTATION_JOB_SPEC = 'flotilla.dev/job-spec';
export const TRAINER_CONTAINER = 'trainer';

/**
 * One batch/v1 Job running the trainer image under the trainer contract
 * (docs/fine-tuning.md): the dataset (a hostPath, read-only: it never
 * leaves the spoke), the base model and the run's inputs mounted
 * read-only, an output hostPath the agent collects from, the contract's
 * environment, GPU limits from the job's resources, the job's timeout as
 * activeDeadlineSeconds and the stop grace period as
 * terminationGracePeriodSeconds (SIGTERM, then SIGKILL).
 */
export function renderFineTuneJob(
  job: DesiredFineTuneJob,
  trainer: { image: string; command?: string[] | undefined; hyperparameters: Record<string, number | string | boolean> },
  baseModel: PreparedArtifact,
  opts: ManifestOptions,
  run: JobRunSettings,
): DesiredObject {
  const labels = jobLabels(job.name);
  const { volume: modelVolume, subPath } = volumeFor(baseModel.repositoryPath, opts.modelVolume, 'base-model');
  const modelDir = path.posix.join('/models', path.posix.relative(baseModel.repositoryPath, path.posix.dirname(baseModel.modelPath)));
  const resources = resourceRequirements(job.resources);
  const gpus = job.resources?.gpu ?? 0;
  const d = job.dataset;
  const env: Record<string, string> = {
    FLOTILLA_JOB: job.name,
    FLOTILLA_ATTEMPT: String(run.attempt),
    FLOTILLA_DATA_DIR: '/data',
    FLOTILLA_DATASET_FORMAT: d.format,
    FLOTILLA_DATASET_FINGERPRINT: run.datasetFingerprint,
    ...(d.format !== 'imagefolder'
      ? { FLOTILLA_LABEL_COLUMN: d.labelColumn ?? 'label', ...(d.featureColumns ? { FLOTILLA_FEATURE_COLUMNS: JSON.stringify(d.featureColumns) } : { FLOTILLA_IMAGE_COLUMN: d.imageColumn ?? 'image' }) }
      : {}),
    FLOTILLA_HOLDOUT_FILE: '/flotilla/input/holdout.txt',
    FLOTILLA_HOLDOUT_FRACTION: String(job.evaluation.holdoutFraction),
    FLOTILLA_BASE_MODEL_DIR: modelDir,
    FLOTILLA_BASE_MODEL: job.baseModel.name,
    FLOTILLA_BASE_MODEL_VERSION: job.baseModel.version,
    FLOTILLA_HPARAMS: '/flotilla/input/hparams.json',
    FLOTILLA_OUTPUT_DIR: '/output',
    FLOTILLA_OUTPUT_MODEL: job.output.model,
  };
  const container: JsonMap = {
    name: TRAINER_CONTAINER,
    image: trainer.image,
    ...(trainer.command !== undefined ? { command: trainer.command } : {}),
    env: Object.entries(env).map(([name, value]) => ({ name, value })),
    volumeMounts: [
      { name: 'base-model', mountPath: '/models', readOnly: true, ...(subPath !== undefined ? { subPath } : {}) },
      { name: 'dataset', mountPath: '/data', readOnly: true },
      { name: 'run-input', mountPath: '/flotilla/input', readOnly: true },
      { name: 'output', mountPath: '/output' },
    ],
    ...(Object.keys(resources).length > 0 ? { resources } : {}),
  };
  const podSpec: JsonMap = {
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: run.graceSeconds,
    containers: [container],
    volumes: [
      modelVolume,
      { name: 'dataset', hostPath: { path: d.path, type: 'Directory' } },
      { name: 'run-input', hostPath: { path: run.dirs.input, type: 'Directory' } },
      { name: 'output', hostPath: { path: run.dirs.output, type: 'DirectoryOrCreate' } },
    ],
  };
  if (opts.nodeSelector && Object.keys(opts.nodeSelector).length > 0) podSpec['nodeSelector'] = { ...opts.nodeSelector };
  const tolerations = gpuTolerations(gpus);
  if (tolerations.length > 0) podSpec['tolerations'] = tolerations;
  return finish('Job', job.name, {
    apiVersion: API_VERSION.Job,
    kind: 'Job',
    metadata: {
      name: job.name,
      namespace: opts.namespace,
      labels,
      annotations: { [ANNOTATION_MODEL_REF]: modelRefAnnotation(job.baseModel), [ANNOTATION_JOB_SPEC]: run.jobSpecHash },
    },
    spec: {
      // A failed training run is reported, not retried blindly: it costs GPU hours.
      backoffLimit: 0,
      activeDeadlineSeconds: run.timeoutSeconds,
      template: { metadata: { labels }, spec: podSpec },
    },
  });
}
