import { DesiredDeploymentSchema, DesiredFineTuneJobSchema, type DesiredDeployment } from '@flotilla/contracts';
import { ANNOTATION_SPEC_HASH } from './labels.js';
import {
  endpointFor,
  ManifestError,
  renderFineTuneJob,
  renderTritonDeployment,
  serviceNameFor,
  volumeFor,
  type ManifestOptions,
} from './manifests.js';
import type { JsonMap } from './objects.js';

const opts: ManifestOptions = {
  namespace: 'edge',
  tritonImage: 'nvcr.io/nvidia/tritonserver:24.08-py3',
  modelVolume: { kind: 'hostPath' },
  jobOutputHostPath: '/var/lib/flotilla-agent/jobs',
};
const artifact = { repositoryPath: '/cache/repos/abc', modelPath: '/cache/repos/abc/m/1/model.onnx', digest: `sha256:${'a'.repeat(64)}` };

function deployment(overrides: Partial<DesiredDeployment> = {}): DesiredDeployment {
  return DesiredDeploymentSchema.parse({
    name: 'web',
    model: { name: 'm', version: '1', digest: artifact.digest, uri: 'file:/m.onnx', format: 'onnx' },
    runtime: 'triton',
    resources: { gpu: 0 },
    replicas: { min: 1, max: 1 },
    remediation: 'enforce',
    ...overrides,
  });
}

const get = (obj: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], obj);

describe('renderTritonDeployment', () => {
  it('leaves GPU limits, tolerations and the product selector out for a CPU deployment', () => {
    const [dep] = renderTritonDeployment(deployment(), artifact, { min: 1, max: 1 }, opts);
    const pod = get(dep!.body, 'spec', 'template', 'spec') as JsonMap;
    expect(pod['nodeSelector']).toBeUndefined();
    expect(pod['tolerations']).toBeUndefined();
    expect(get(pod, 'containers', 0, 'resources')).toBeUndefined();
  });

  it('asks for GPUs as limits, tolerates the GPU taint and selects the product', () => {
    const [dep] = renderTritonDeployment(deployment({ resources: { gpu: 2 }, gpuProduct: 'NVIDIA-L4' }), artifact, { min: 1, max: 1 }, opts);
    const pod = get(dep!.body, 'spec', 'template', 'spec') as JsonMap;
    expect(get(pod, 'containers', 0, 'resources')).toEqual({ limits: { 'nvidia.com/gpu': '2' } });
    expect(pod['nodeSelector']).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-L4' });
    expect(pod['tolerations']).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
  });

  it('selects the product in GPU Feature Discovery\'s label form even when given as nvidia-smi prints it', () => {
    const [dep] = renderTritonDeployment(deployment({ resources: { gpu: 1 }, gpuProduct: 'NVIDIA H100 80GB HBM3' }), artifact, { min: 1, max: 1 }, opts);
    expect(get(dep!.body, 'spec', 'template', 'spec', 'nodeSelector')).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' });
  });

  it('refuses a GPU product that cannot be a node label value instead of rendering a Deployment the API server rejects', () => {
    const tooLong = `NVIDIA ${'X'.repeat(60)}`;
    expect(() => renderTritonDeployment(deployment({ resources: { gpu: 1 }, gpuProduct: tooLong }), artifact, { min: 1, max: 1 }, opts)).toThrow(
      expect.objectContaining({ name: 'ManifestError', reason: 'InvalidGpuProduct' }),
    );
    expect(() => renderTritonDeployment(deployment({ resources: { gpu: 1 }, gpuProduct: '(((' }), artifact, { min: 1, max: 1 }, opts)).toThrow(ManifestError);
  });

  it('scales on CPU utilisation when no target concurrency is given', () => {
    const objects = renderTritonDeployment(deployment({ replicas: { min: 1, max: 3 } }), artifact, { min: 1, max: 3 }, opts);
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    expect(get(hpa.body, 'spec', 'metrics')).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }]);
  });

  it('keeps one replica warm when a window allows 0..N, since an HPA cannot scale to zero', () => {
    const objects = renderTritonDeployment(deployment({ replicas: { min: 0, max: 3 } }), artifact, { min: 0, max: 3 }, opts);
    expect(get(objects.find((o) => o.kind === 'HorizontalPodAutoscaler')!.body, 'spec', 'minReplicas')).toBe(1);
  });

  it('uses the injected range, not the spec, for replicas', () => {
    const objects = renderTritonDeployment(deployment({ replicas: { min: 1, max: 5 } }), artifact, { min: 3, max: 3 }, opts);
    expect(objects.map((o) => o.kind)).toEqual(['Deployment', 'Service']);
    expect(get(objects[0]!.body, 'spec', 'replicas')).toBe(3);
  });

  it('stamps a hash of the rendering that changes with the desired spec and nothing else', () => {
    const a = renderTritonDeployment(deployment(), artifact, { min: 1, max: 1 }, opts)[0]!;
    const again = renderTritonDeployment(deployment(), artifact, { min: 1, max: 1 }, opts)[0]!;
    const other = renderTritonDeployment(deployment({ resources: { gpu: 1 } }), artifact, { min: 1, max: 1 }, opts)[0]!;
    expect(a.hash).toBe(again.hash);
    expect(a.hash).not.toBe(other.hash);
    expect(get(a.body, 'metadata', 'annotations', ANNOTATION_SPEC_HASH)).toBe(a.hash);
  });

  it('names the Service so that it is a valid DNS-1035 label', () => {
    expect(serviceNameFor('bridge')).toBe('bridge');
    expect(serviceNameFor('7eleven')).toBe('m-7eleven');
    expect(serviceNameFor(`9${'x'.repeat(62)}`)).toHaveLength(63);
    expect(endpointFor('7eleven', 'cam', 'edge')).toBe('http://m-7eleven.edge.svc:8000/v2/models/cam');
  });
});

describe('volumeFor', () => {
  it('mounts the same path by default', () => {
    expect(volumeFor('/cache/repos/abc', { kind: 'hostPath' }, 'v')).toEqual({ volume: { name: 'v', hostPath: { path: '/cache/repos/abc', type: 'Directory' } } });
  });

  it('maps the agent path to the node path when the agent runs in a pod', () => {
    const strategy = { kind: 'hostPath', agentRoot: '/cache', hostRoot: '/var/lib/flotilla/cache' } as const;
    expect(volumeFor('/cache/repos/abc', strategy, 'v').volume).toEqual({ name: 'v', hostPath: { path: '/var/lib/flotilla/cache/repos/abc', type: 'Directory' } });
  });

  it('mounts a claim with the repository as subPath', () => {
    const strategy = { kind: 'persistentVolumeClaim', claimName: 'models', agentRoot: '/cache' } as const;
    expect(volumeFor('/cache/repos/abc', strategy, 'v')).toEqual({
      volume: { name: 'v', persistentVolumeClaim: { claimName: 'models', readOnly: true } },
      subPath: 'repos/abc',
    });
  });

  it.each([
    [{ kind: 'hostPath', agentRoot: '/cache', hostRoot: '/h' } as const],
    [{ kind: 'persistentVolumeClaim', claimName: 'c', agentRoot: '/cache' } as const],
  ])('refuses a repository outside the cache root (%j)', (strategy) => {
    expect(() => volumeFor('/elsewhere/../etc/repo', strategy, 'v')).toThrow(ManifestError);
  });
});

describe('renderFineTuneJob', () => {
  const job = DesiredFineTuneJobSchema.parse({
    name: 'tune',
    baseModel: { name: 'm', version: '1', digest: artifact.digest, uri: 'file:/m.onnx', format: 'onnx' },
    dataset: { path: '/data/set', format: 'csv' },
    trainer: { image: 'trainer:1', command: ['train'], hyperparameters: { lr: 0.1, epochs: 2 } },
    evaluation: { metric: 'f1', holdoutFraction: 0.25, threshold: 0.8 },
    output: { model: 'm', artifact: 'keep-local' },
    promote: 'auto',
  });

  it('passes the trainer contract to the trainer and never retries a failed run by itself', () => {
    const dirs = { input: '/var/lib/flotilla-agent/jobs/tune/0123456789abcdef/input', output: '/var/lib/flotilla-agent/jobs/tune/0123456789abcdef/output' };
    const rendered = renderFineTuneJob(job, job.trainer as { image: string; command?: string[]; hyperparameters: Record<string, number> }, artifact, opts, {
      dirs,
      jobSpecHash: 'f'.repeat(64),
      datasetFingerprint: `sha256:${'c'.repeat(64)}`,
      attempt: 1,
      timeoutSeconds: 7200,
      graceSeconds: 30,
    });
    expect(get(rendered.body, 'spec', 'backoffLimit')).toBe(0);
    expect(get(rendered.body, 'spec', 'activeDeadlineSeconds')).toBe(7200);
    expect(get(rendered.body, 'spec', 'template', 'spec', 'terminationGracePeriodSeconds')).toBe(30);
    expect(get(rendered.body, 'metadata', 'annotations', 'flotilla.dev/job-spec')).toBe('f'.repeat(64));
    const container = get(rendered.body, 'spec', 'template', 'spec', 'containers', 0) as JsonMap;
    expect(container['command']).toEqual(['train']);
    const env = Object.fromEntries((container['env'] as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      FLOTILLA_JOB: 'tune',
      FLOTILLA_DATA_DIR: '/data',
      FLOTILLA_DATASET_FORMAT: 'csv',
      FLOTILLA_LABEL_COLUMN: 'label',
      FLOTILLA_IMAGE_COLUMN: 'image',
      FLOTILLA_DATASET_FINGERPRINT: `sha256:${'c'.repeat(64)}`,
      FLOTILLA_HPARAMS: '/flotilla/input/hparams.json',
      FLOTILLA_HOLDOUT_FILE: '/flotilla/input/holdout.txt',
      FLOTILLA_OUTPUT_DIR: '/output',
    });
    expect(env['FLOTILLA_BASE_MODEL_DIR']).toMatch(/^\/models/);
    expect(container['volumeMounts']).toContainEqual({ name: 'dataset', mountPath: '/data', readOnly: true });
    expect(container['volumeMounts']).toContainEqual({ name: 'run-input', mountPath: '/flotilla/input', readOnly: true });
    expect(get(rendered.body, 'spec', 'template', 'spec', 'volumes', 3)).toEqual({ name: 'output', hostPath: { path: dirs.output, type: 'DirectoryOrCreate' } });
  });
});
