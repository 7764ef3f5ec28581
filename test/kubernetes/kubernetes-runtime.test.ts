import {
  DeploymentStatusSchema,
  DesiredDeploymentSchema,
  JobRunStatusSchema,
  type DesiredDeployment,
  type DesiredPayload,
} from '@flotilla/contracts';
import { KubeConfig } from '@kubernetes/client-node';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  KubernetesRuntime,
  loadKubeConfig,
  type KubernetesRuntimeOptions,
} from '../../apps/agent/src/runtime/kubernetes/kubernetes-runtime.js';
import { effectiveReplicas } from '../../apps/agent/src/schedule/index.js';
import { startFakeKubeApiServer, type FakeKubeApiServer, type JsonObject } from '../support/fake-kube-apiserver/index.js';
import { testSourcePolicy } from '../support/source-policy.js';
import { FakeArtifacts } from './fake-artifacts.js';
import { waitFor } from './kube-test-helpers.js';

const NS = 'flotilla';
const DIGEST_V1 = `sha256:${'a'.repeat(64)}`;
const DIGEST_V2 = `sha256:${'b'.repeat(64)}`;
const MANAGED = 'app.kubernetes.io/managed-by=flotilla';
const sources = testSourcePolicy({ datasetRoots: ['/data'], trainerRegistries: ['registry.example/trainers'] });

function desiredDeployment(overrides: Partial<DesiredDeployment> = {}): DesiredDeployment {
  return DesiredDeploymentSchema.parse({
    name: 'bridge-defects',
    model: { name: 'bridge-defects', version: '1.0.0', digest: DIGEST_V1, uri: 'https://models.example/bridge/1.onnx', format: 'onnx' },
    runtime: 'triton',
    resources: { gpu: 1, cpu: '2', memory: '4Gi' },
    replicas: { min: 2, max: 2 },
    remediation: 'enforce',
    gpuProduct: 'NVIDIA-A2',
    ...overrides,
  });
}

function payload(deployments: DesiredDeployment[], fineTuneJobs: DesiredPayload['fineTuneJobs'] = []): DesiredPayload {
  return { settings: { telemetryIntervalSeconds: 30 }, deployments, fineTuneJobs };
}

/** Reconciles and checks the report against the wire schemas the hub parses it with. */
async function reconcileChecked(runtime: KubernetesRuntime, desired: DesiredPayload, signal: AbortSignal) {
  const report = await runtime.reconcile(desired, signal);
  for (const d of report.deployments) DeploymentStatusSchema.parse(d);
  for (const j of report.jobs) JobRunStatusSchema.parse(j);
  return report;
}

const at = <T>(obj: unknown, ...path: (string | number)[]): T =>
  path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], obj) as T;

describe('KubernetesRuntime against the fake kube-apiserver', () => {
  let fake: FakeKubeApiServer;
  let artifacts: FakeArtifacts;
  let runtime: KubernetesRuntime;
  const signal = () => AbortSignal.timeout(20_000);

  function makeRuntime(extra: Partial<KubernetesRuntimeOptions> = {}): KubernetesRuntime {
    return new KubernetesRuntime({ kubeConfig: fake.kubeConfig, namespace: NS, artifacts, sources, watchRetryMs: 50, ...extra });
  }

  beforeEach(async () => {
    fake = await startFakeKubeApiServer();
    artifacts = new FakeArtifacts();
    runtime = makeRuntime();
  });

  afterEach(async () => {
    await runtime.close();
    await fake.close();
  });

  describe('applying a deployment', () => {
    it('creates its namespace, a Triton Deployment with GPU limits, labels and node selector, and a Service', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());

      expect(fake.store.get('Namespace', undefined, NS)).toBeDefined();
      const dep = fake.store.get('Deployment', NS, 'bridge-defects')!;
      expect(at(dep, 'metadata', 'labels')).toEqual({
        'app.kubernetes.io/managed-by': 'flotilla',
        'app.kubernetes.io/name': 'bridge-defects',
        'app.kubernetes.io/component': 'inference-server',
        'flotilla.dev/deployment': 'bridge-defects',
      });
      expect(at<string>(dep, 'metadata', 'annotations', 'flotilla.dev/spec-hash')).toMatch(/^[0-9a-f]{64}$/);
      expect(at(dep, 'spec', 'replicas')).toBe(2);
      const pod = at<JsonObject>(dep, 'spec', 'template', 'spec');
      expect(pod['nodeSelector']).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-A2' });
      const container = at<JsonObject>(pod, 'containers', 0);
      expect(container['image']).toBe('nvcr.io/nvidia/tritonserver:24.08-py3');
      expect(container['args']).toContain('--model-repository=/models');
      expect(container['resources']).toEqual({ limits: { 'nvidia.com/gpu': '1', cpu: '2', memory: '4Gi' }, requests: { cpu: '2', memory: '4Gi' } });
      expect(at(container, 'readinessProbe', 'httpGet')).toEqual({ path: '/v2/health/ready', port: 'http' });
      expect(container['volumeMounts']).toEqual([{ name: 'model-repository', mountPath: '/models', readOnly: true }]);
      expect(at(pod, 'volumes', 0, 'hostPath')).toEqual({ path: `/var/lib/flotilla-agent/artifacts/repos/${'a'.repeat(12)}`, type: 'Directory' });
      const managers = at<{ manager: string; operation: string }[]>(dep, 'metadata', 'managedFields').map((m) => [m.manager, m.operation]);
      expect(managers).toEqual([['flotilla-agent', 'Apply']]);

      const svc = fake.store.get('Service', NS, 'bridge-defects')!;
      expect(at(svc, 'spec', 'selector')).toEqual({ 'app.kubernetes.io/managed-by': 'flotilla', 'flotilla.dev/deployment': 'bridge-defects' });
      expect(at<JsonObject[]>(svc, 'spec', 'ports').map((p) => p['port'])).toEqual([8000, 8002]);
      // min == max: the Deployment holds the count, no HPA.
      expect(fake.store.get('HorizontalPodAutoscaler', NS, 'bridge-defects')).toBeUndefined();
    });

    it('adds a HorizontalPodAutoscaler on the concurrency metric and leaves replicas to it when min < max', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment({ replicas: { min: 1, max: 4, targetConcurrency: 8 } })]), signal());
      const hpa = fake.store.get('HorizontalPodAutoscaler', NS, 'bridge-defects')!;
      expect(at(hpa, 'spec')).toEqual({
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'bridge-defects' },
        minReplicas: 1,
        maxReplicas: 4,
        metrics: [{ type: 'Pods', pods: { metric: { name: 'nv_inference_pending_request_count' }, target: { type: 'AverageValue', averageValue: '8' } } }],
      });
      expect(at(hpa, 'metadata', 'labels', 'app.kubernetes.io/managed-by')).toBe('flotilla');
      const managers = at<{ manager: string; fieldsV1: Record<string, Record<string, unknown>> }[]>(
        fake.store.get('Deployment', NS, 'bridge-defects'),
        'metadata',
        'managedFields',
      );
      expect(managers.find((m) => m.manager === 'flotilla-agent')?.fieldsV1['f:spec']).not.toHaveProperty('f:replicas');
    });

    it('exposes the Service as a NodePort and reports the advertised node address with the allocated node port', async () => {
      await runtime.close();
      runtime = makeRuntime({ exposure: { type: 'NodePort', host: 'edge-17.example.net' } });
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      const svc = fake.store.get('Service', NS, 'bridge-defects') as { spec: { type: string; ports: { name: string; nodePort: number }[] } };
      expect(svc.spec.type).toBe('NodePort');
      const nodePort = svc.spec.ports.find((p) => p.name === 'http')!.nodePort;
      expect(nodePort).toBeGreaterThanOrEqual(30000);
      expect(status!.endpoint).toBe(`http://edge-17.example.net:${nodePort}/v2/models/bridge-defects`);
    });

    it('reports the configured ingress URL', async () => {
      await runtime.close();
      runtime = makeRuntime({ exposure: { type: 'Ingress', url: 'https://edge-17.example.net' } });
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      expect(status!.endpoint).toBe('https://edge-17.example.net/v2/models/bridge-defects');
    });

    it('reports the endpoint, ready replicas and serving version once the Deployment is ready', async () => {
      let [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      expect(status).toMatchObject({ phase: 'Pending', readyReplicas: 0, desiredReplicas: 2, compliance: 'Compliant' });
      // The Service's cluster IP, as the API server allocated it.
      const clusterIp = (fake.store.get('Service', NS, 'bridge-defects') as { spec: { clusterIP: string } }).spec.clusterIP;
      expect(clusterIp).toMatch(/^10\.96\./);
      expect(status!.endpoint).toBe(`http://${clusterIp}:8000/v2/models/bridge-defects`);

      fake.store.setStatus('Deployment', NS, 'bridge-defects', { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2 });
      [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      expect(status).toMatchObject({ phase: 'Ready', readyReplicas: 2, servingVersion: '1.0.0', compliance: 'Compliant' });
      expect(status!.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Serving' });
    });

    it('does not write anything when nothing changed', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      const rv = fake.store.resourceVersion();
      fake.clearRequests();
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      expect(fake.store.resourceVersion()).toBe(rv);
      expect(fake.requests().filter((r) => !['list', 'get', 'discovery'].includes(r.verb))).toEqual([]);
    });

    it('lists only by the managed-by label', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      const lists = fake.requests().filter((r) => r.verb === 'list');
      expect(lists.length).toBeGreaterThan(0);
      for (const list of lists) expect(list.query['labelSelector']).toBe(MANAGED);
    });

    it('rolls the Deployment to a new model version', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      const v2 = desiredDeployment({ model: { ...desiredDeployment().model, version: '2.0.0', digest: DIGEST_V2 } });
      await reconcileChecked(runtime, payload([v2]), signal());
      const dep = fake.store.get('Deployment', NS, 'bridge-defects')!;
      expect(at(dep, 'spec', 'template', 'metadata', 'annotations', 'flotilla.dev/model-version')).toBe('2.0.0');
      expect(at(dep, 'metadata', 'generation')).toBe(2);
      expect(artifacts.retained.map((m) => m.version)).toContain('2.0.0');
    });

    it("takes replicas from the schedule window when the agent's schedule evaluation is injected", async () => {
      const monday10 = new Date('2025-06-02T10:00:00Z');
      runtime = makeRuntime({ replicasFor: effectiveReplicas, now: () => monday10 });
      const scheduled = desiredDeployment({
        replicas: { min: 1, max: 1 },
        schedule: {
          timezone: 'UTC',
          windows: [{ days: ['mon'], start: '08:00', end: '18:00', replicas: { min: 3, max: 3 } }],
          outside: { min: 0, max: 0 },
        },
      });
      const [status] = (await reconcileChecked(runtime, payload([scheduled]), signal())).deployments;
      expect(at(fake.store.get('Deployment', NS, 'bridge-defects'), 'spec', 'replicas')).toBe(3);
      expect(status!.desiredReplicas).toBe(3);
    });

    it('scales to zero when the replica window says 0', async () => {
      runtime = makeRuntime({ replicasFor: () => ({ min: 0, max: 0 }) });
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment({ replicas: { min: 1, max: 3 } })]), signal())).deployments;
      expect(at(fake.store.get('Deployment', NS, 'bridge-defects'), 'spec', 'replicas')).toBe(0);
      expect(fake.store.get('HorizontalPodAutoscaler', NS, 'bridge-defects')).toBeUndefined();
      expect(status).toMatchObject({ phase: 'ScaledToZero', desiredReplicas: 0 });
    });
  });

  describe('drift', () => {
    const editReplicas = (n: number) =>
      fake.store.edit('Deployment', NS, 'bridge-defects', (d) => {
        (d['spec'] as JsonObject)['replicas'] = n;
      });

    it('reverts a hand edit of replicas under enforce', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      editReplicas(5);
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      const dep = fake.store.get('Deployment', NS, 'bridge-defects')!;
      expect(at(dep, 'spec', 'replicas')).toBe(2);
      expect(at<{ manager: string }[]>(dep, 'metadata', 'managedFields').map((m) => m.manager)).not.toContain('kubectl-edit');
      expect(status!.compliance).toBe('Compliant');
      expect(status!.conditions.find((c) => c.type === 'Drifted')).toMatchObject({ status: 'False', reason: 'DriftCorrected' });
      expect(status!.conditions.find((c) => c.type === 'Drifted')!.message).toContain('spec.replicas is 5, desired 2');
    });

    it('reports a hand edit of replicas as NonCompliant under inform and changes nothing', async () => {
      const informed = desiredDeployment({ remediation: 'inform' });
      await reconcileChecked(runtime, payload([informed]), signal());
      const edited = editReplicas(5);
      const [status] = (await reconcileChecked(runtime, payload([informed]), signal())).deployments;
      const dep = fake.store.get('Deployment', NS, 'bridge-defects')!;
      expect(at(dep, 'spec', 'replicas')).toBe(5);
      expect(at(dep, 'metadata', 'resourceVersion')).toBe(at(edited, 'metadata', 'resourceVersion'));
      expect(status!.compliance).toBe('NonCompliant');
      expect(status!.message).toContain('Deployment/bridge-defects: spec.replicas is 5, desired 2');
      expect(status!.conditions.find((c) => c.type === 'Drifted')).toMatchObject({ status: 'True', reason: 'DriftDetected' });
    });

    it('reports a hand edit of the image and GPU limit under inform, naming both', async () => {
      const informed = desiredDeployment({ remediation: 'inform' });
      await reconcileChecked(runtime, payload([informed]), signal());
      fake.store.edit('Deployment', NS, 'bridge-defects', (d) => {
        const c = at<JsonObject>(d, 'spec', 'template', 'spec', 'containers', 0);
        c['image'] = 'nvcr.io/nvidia/tritonserver:23.01-py3';
        (at<JsonObject>(c, 'resources', 'limits'))['nvidia.com/gpu'] = '2';
      });
      const [status] = (await reconcileChecked(runtime, payload([informed]), signal())).deployments;
      expect(status!.message).toContain('spec.template.spec.containers[name=triton].image is "nvcr.io/nvidia/tritonserver:23.01-py3"');
      expect(status!.message).toContain('containers[name=triton].resources.limits.nvidia.com/gpu is "2", desired "1"');
    });

    it('does not count labels added by others or server defaults as drift', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment({ remediation: 'inform' })]), signal());
      fake.store.edit('Deployment', NS, 'bridge-defects', (d) => {
        (at<JsonObject>(d, 'metadata', 'labels'))['team'] = 'vision';
      });
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment({ remediation: 'inform' })]), signal())).deployments;
      expect(status!.compliance).toBe('Compliant');
    });

    it('under inform, reports a desired change that collides with a hand edit instead of overwriting it', async () => {
      const informed = desiredDeployment({ remediation: 'inform' });
      await reconcileChecked(runtime, payload([informed]), signal());
      editReplicas(5);
      const [status] = (await reconcileChecked(runtime, payload([{ ...informed, replicas: { min: 3, max: 3 } }]), signal())).deployments;
      expect(at(fake.store.get('Deployment', NS, 'bridge-defects'), 'spec', 'replicas')).toBe(5);
      expect(status!.compliance).toBe('NonCompliant');
      expect(status!.conditions.find((c) => c.type === 'Applied')).toMatchObject({ status: 'False', reason: 'FieldConflict' });
      expect(status!.message).toContain('.spec.replicas');
    });
  });

  describe('the ledger', () => {
    const foreignDeployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'bridge-defects', namespace: NS, labels: { app: 'someone-elses' } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'someone-elses' } },
        template: { metadata: { labels: { app: 'someone-elses' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } },
      },
    };

    it('never touches an object of the same name without the Flotilla label and reports a conflict', async () => {
      fake.store.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
      const before = fake.store.put(foreignDeployment, { manager: 'kubectl-create' });
      fake.clearRequests();
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;

      const after = fake.store.get('Deployment', NS, 'bridge-defects');
      expect(after).toEqual(before);
      const writes = fake.requests().filter((r) => ['create', 'update', 'patch', 'delete'].includes(r.verb) && r.name === 'bridge-defects');
      expect(writes).toEqual([]);
      // Half a deployment is worse than none: the Service is not created either.
      expect(fake.store.get('Service', NS, 'bridge-defects')).toBeUndefined();
      expect(status!.phase).toBe('Failed');
      expect(status!.compliance).toBe('NonCompliant');
      expect(status!.conditions.find((c) => c.type === 'Applied')).toMatchObject({ status: 'False', reason: 'NameConflict' });
      expect(status!.message).toContain('Deployment/bridge-defects exists without the label app.kubernetes.io/managed-by=flotilla');
    });

    it('does not prune an unlabelled object when nothing of that name is desired', async () => {
      fake.store.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
      const before = fake.store.put(foreignDeployment);
      await reconcileChecked(runtime, payload([]), signal());
      expect(fake.store.get('Deployment', NS, 'bridge-defects')).toEqual(before);
    });

    it('prunes the Deployment, Service and HPA of a deployment removed from desired', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment({ replicas: { min: 1, max: 3 } }), desiredDeployment({ name: 'other' })]), signal());
      expect(fake.store.get('HorizontalPodAutoscaler', NS, 'bridge-defects')).toBeDefined();
      fake.clearRequests();
      const report = await reconcileChecked(runtime, payload([desiredDeployment({ name: 'other' })]), signal());
      for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler']) {
        expect(fake.store.get(kind, NS, 'bridge-defects')).toBeUndefined();
      }
      expect(fake.store.get('Deployment', NS, 'other')).toBeDefined();
      expect(report.deployments.map((d) => d.name)).toEqual(['other']);
      const deletes = fake.requests().filter((r) => r.verb === 'delete');
      expect(deletes.map((r) => `${r.resource}/${r.name}`).sort()).toEqual(
        ['deployments/bridge-defects', 'horizontalpodautoscalers/bridge-defects', 'services/bridge-defects'],
      );
    });

    it('prunes the HPA alone when the range stops leaving room to scale', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment({ replicas: { min: 1, max: 3 } })]), signal());
      await reconcileChecked(runtime, payload([desiredDeployment({ replicas: { min: 2, max: 2 } })]), signal());
      expect(fake.store.get('HorizontalPodAutoscaler', NS, 'bridge-defects')).toBeUndefined();
      expect(at(fake.store.get('Deployment', NS, 'bridge-defects'), 'spec', 'replicas')).toBe(2);
    });

    it('removes everything it created on close with stopWorkloads, and nothing else', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      fake.store.put({ ...foreignDeployment, metadata: { ...foreignDeployment.metadata, name: 'bystander' } });
      await runtime.close({ stopWorkloads: true });
      expect(fake.store.list('Deployment', { namespace: NS }).map((d) => at(d, 'metadata', 'name'))).toEqual(['bystander']);
      expect(fake.store.get('Service', NS, 'bridge-defects')).toBeUndefined();
    });
  });

  describe('artifacts', () => {
    it('keeps a deployment whose model failed verification unapplied, with the reason', async () => {
      artifacts.failures.set(DIGEST_V1, 'ArtifactDigestMismatch');
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      expect(fake.store.get('Deployment', NS, 'bridge-defects')).toBeUndefined();
      expect(fake.store.get('Service', NS, 'bridge-defects')).toBeUndefined();
      expect(status).toMatchObject({ phase: 'Failed', compliance: 'NonCompliant', endpoint: null, readyReplicas: 0 });
      expect(status!.conditions.find((c) => c.type === 'Applied')).toMatchObject({ status: 'False', reason: 'ArtifactDigestMismatch' });
    });

    it('keeps serving the previous verified version when the new one fails verification', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      fake.store.setStatus('Deployment', NS, 'bridge-defects', { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 2 });
      artifacts.failures.set(DIGEST_V2, 'ArtifactDigestMismatch');
      const v2 = desiredDeployment({ model: { ...desiredDeployment().model, version: '2.0.0', digest: DIGEST_V2 } });
      const [status] = (await reconcileChecked(runtime, payload([v2]), signal())).deployments;
      const dep = fake.store.get('Deployment', NS, 'bridge-defects')!;
      expect(at(dep, 'spec', 'template', 'metadata', 'annotations', 'flotilla.dev/model-version')).toBe('1.0.0');
      expect(status).toMatchObject({ phase: 'Degraded', servingVersion: '1.0.0', compliance: 'NonCompliant' });
      expect(status!.conditions.find((c) => c.type === 'Applied')).toMatchObject({ status: 'False', reason: 'ArtifactDigestMismatch' });
      // The cache must not collect what still serves.
      expect(artifacts.retained.map((m) => m.digest)).toEqual([DIGEST_V1]);
    });

    it('reports an unreachable artifact as Pending', async () => {
      artifacts.failures.set(DIGEST_V1, 'ArtifactUnavailable');
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      expect(status).toMatchObject({ phase: 'Pending' });
      expect(status!.conditions.find((c) => c.type === 'Applied')?.reason).toBe('ArtifactUnavailable');
    });
  });

  describe('pods', () => {
    it('reports a pod in CrashLoopBackOff as Degraded with the pod reason', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      fake.store.setStatus('Deployment', NS, 'bridge-defects', { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 1 });
      fake.store.put({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'bridge-defects-7d9f-abcde',
          namespace: NS,
          labels: { 'app.kubernetes.io/managed-by': 'flotilla', 'flotilla.dev/deployment': 'bridge-defects' },
          annotations: { 'flotilla.dev/model-version': '1.0.0' },
        },
        spec: { containers: [{ name: 'triton', image: 'nvcr.io/nvidia/tritonserver:24.08-py3' }] },
        status: {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'False' }],
          containerStatuses: [
            {
              name: 'triton',
              ready: false,
              restartCount: 6,
              image: 'nvcr.io/nvidia/tritonserver:24.08-py3',
              imageID: '',
              state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 2m40s restarting failed container=triton' } },
              lastState: { terminated: { reason: 'Error', exitCode: 1 } },
            },
          ],
        },
      });
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment()]), signal())).deployments;
      expect(status!.phase).toBe('Degraded');
      expect(status!.readyReplicas).toBe(1);
      expect(status!.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'CrashLoopBackOff' });
      expect(status!.message).toContain('pod bridge-defects-7d9f-abcde container triton: CrashLoopBackOff after 6 restarts');
    });
  });

  describe('runtimes and trainers not run under Kubernetes', () => {
    it('reports runtime builtin as not supported and creates nothing', async () => {
      const [status] = (await reconcileChecked(runtime, payload([desiredDeployment({ runtime: 'builtin' })]), signal())).deployments;
      expect(fake.store.get('Deployment', NS, 'bridge-defects')).toBeUndefined();
      expect(status).toMatchObject({ phase: 'Failed', compliance: 'NonCompliant' });
      expect(status!.conditions.find((c) => c.type === 'Applied')).toMatchObject({ reason: 'RuntimeNotSupported' });
      expect(status!.message).toContain("runtime 'builtin'");
    });
  });

  // Fine-tuning jobs under this runtime: test/kubernetes/kubernetes-job-trainer.test.ts.

  describe('watch and failure handling', () => {
    it('notifies onChange when someone edits a managed object', async () => {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      let changes = 0;
      runtime.onChange(() => {
        changes += 1;
      });
      // The watches start from a fresh list; wait until they are open before editing.
      await waitFor(() => fake.requests().filter((r) => r.verb === 'watch').length >= 5, 'five watches');
      fake.store.edit('Deployment', NS, 'bridge-defects', (d) => {
        (d['spec'] as JsonObject)['replicas'] = 7;
      });
      await waitFor(() => changes > 0, 'a change notification');
    });

    async function watchingRuntime(): Promise<{ changes: () => number; reset: () => void }> {
      await reconcileChecked(runtime, payload([desiredDeployment()]), signal());
      let changes = 0;
      runtime.onChange(() => {
        changes += 1;
      });
      await waitFor(() => fake.requests().filter((r) => r.verb === 'watch').length >= 5, 'five watches');
      return { changes: () => changes, reset: () => (changes = 0) };
    }

    it('resumes its watches when the API server drops them', async () => {
      const watched = await watchingRuntime();
      expect(fake.dropWatches()).toBe(5);
      await waitFor(() => fake.requests().filter((r) => r.verb === 'watch').length >= 10, 'the watches to come back');
      watched.reset();
      fake.store.edit('Service', NS, 'bridge-defects', (s) => {
        (at<JsonObject>(s, 'metadata', 'labels'))['touched'] = 'yes';
      });
      await waitFor(() => watched.changes() > 0, 'a change notification after the resume');
      const resumed = fake.requests().filter((r) => r.verb === 'watch').slice(5);
      expect(resumed.every((r) => r.query['resourceVersion'] !== undefined && r.query['labelSelector'] === MANAGED)).toBe(true);
    });

    it('relists and notifies when what happened while it was away was compacted', async () => {
      const watched = await watchingRuntime();
      // No watch is open while the edit happens, and history is gone before one reopens.
      fake.dropWatches();
      fake.store.edit('Deployment', NS, 'bridge-defects', (d) => {
        (d['spec'] as JsonObject)['replicas'] = 7;
      });
      fake.store.compact();
      watched.reset();
      fake.clearRequests();
      await waitFor(() => watched.changes() > 0, 'a change notification after the relist');
      // A stale watch was refused (410) and the runtime listed again before watching anew. Which of
      // the five watches comes back after the compaction depends on timing (one may reopen before it).
      expect(fake.requests()).toContainEqual(expect.objectContaining({ verb: 'list', query: expect.objectContaining({ limit: '1' }) }));

    });

    it('works from a kubeconfig file, as an agent outside the cluster runs', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-kubeconfig-'));
      try {
        const file = path.join(dir, 'config');
        await writeFile(file, fake.kubeconfigYaml);
        const fromFile = makeRuntime({ kubeConfig: loadKubeConfig({ file }) });
        await reconcileChecked(fromFile, payload([desiredDeployment()]), signal());
        await fromFile.close();
        expect(fake.store.get('Deployment', NS, 'bridge-defects')).toBeDefined();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('rejects when the signal is already aborted', async () => {
      const controller = new AbortController();
      controller.abort(new Error('superseded'));
      await expect(reconcileChecked(runtime, payload([desiredDeployment()]), controller.signal)).rejects.toThrow('superseded');
    });

    it('throws, for a requeue with backoff, when the API server is unreachable', async () => {
      const gone = new KubeConfig();
      gone.loadFromOptions({
        clusters: [{ name: 'c', server: fake.url, skipTLSVerify: true }],
        users: [{ name: 'u' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const orphan = new KubernetesRuntime({ kubeConfig: gone, namespace: NS, artifacts, sources });
      await fake.close();
      await expect(orphan.reconcile(payload([desiredDeployment()]), signal())).rejects.toThrow(/fetch failed/);
      await orphan.close();
      fake = await startFakeKubeApiServer();
    });
  });
});
