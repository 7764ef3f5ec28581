import { DesiredDeploymentSchema } from '@flotilla/contracts';
import { type JsonMap, type LiveObject } from './objects.js';
import type { DesiredWorkload } from './planner.js';
import { deploymentStatus, servingState, servingVersion, type DeploymentView } from './status.js';

function live(kind: LiveObject['kind'], body: JsonMap): LiveObject {
  return { kind, name: 'web', uid: 'u', labels: {}, annotations: {}, body };
}

function deployment(spec: JsonMap, status: JsonMap, generation = 1): LiveObject {
  return live('Deployment', { metadata: { name: 'web', generation }, spec, status });
}

function pod(name: string, status: JsonMap, version?: string): JsonMap {
  return { metadata: { name, ...(version ? { annotations: { 'flotilla.dev/model-version': version } } : {}) }, status };
}

const readyPod = (name: string, version: string) => pod(name, { conditions: [{ type: 'Ready', status: 'True' }] }, version);

describe('servingState', () => {
  it('is Ready when every replica is ready and updated', () => {
    const d = deployment({ replicas: 2 }, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 2 });
    expect(servingState(d, [], 2)).toMatchObject({ phase: 'Ready', readyReplicas: 2 });
  });

  it('is Progressing while old pods are still around', () => {
    const d = deployment({ replicas: 2 }, { observedGeneration: 1, replicas: 3, updatedReplicas: 2, readyReplicas: 2 });
    expect(servingState(d, [], 2).phase).toBe('Progressing');
  });

  it('is Pending until the controller observed the generation', () => {
    const d = deployment({ replicas: 2 }, { observedGeneration: 1 }, 2);
    expect(servingState(d, [], 2)).toMatchObject({ phase: 'Pending', reason: 'RolloutPending' });
  });

  it.each(['CrashLoopBackOff', 'ImagePullBackOff', 'CreateContainerConfigError'])('is Degraded with a container stuck in %s', (reason) => {
    const d = deployment({ replicas: 1 }, { observedGeneration: 1, replicas: 1 });
    const stuck = pod('web-1', { containerStatuses: [{ name: 'triton', restartCount: 3, state: { waiting: { reason, message: 'nope' } } }] });
    expect(servingState(d, [stuck], 1)).toMatchObject({ phase: 'Degraded', reason, message: `pod web-1 container triton: ${reason} after 3 restarts: nope` });
  });

  it('is Pending with the scheduler message while no pod fits', () => {
    const d = deployment({ replicas: 1 }, { observedGeneration: 1, replicas: 1 });
    const pending = pod('web-1', { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes have nvidia.com/gpu' }] });
    expect(servingState(d, [pending], 1)).toMatchObject({ phase: 'Pending', reason: 'Unschedulable', message: 'pod web-1 unschedulable: 0/1 nodes have nvidia.com/gpu' });
  });

  it('is Failed after the progress deadline', () => {
    const d = deployment({ replicas: 1 }, { observedGeneration: 1, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'took too long' }] });
    expect(servingState(d, [], 1)).toMatchObject({ phase: 'Failed', reason: 'ProgressDeadlineExceeded', message: 'took too long' });
  });

  it('is ScaledToZero at zero replicas, and Progressing while pods drain', () => {
    expect(servingState(deployment({ replicas: 0 }, { observedGeneration: 1 }), [], 0).phase).toBe('ScaledToZero');
    expect(servingState(deployment({ replicas: 0 }, { observedGeneration: 1, readyReplicas: 1 }), [], 0).phase).toBe('Progressing');
  });
});

describe('servingVersion', () => {
  it('is what most ready pods serve', () => {
    const pods = [readyPod('a', '2'), readyPod('b', '2'), readyPod('c', '1'), pod('d', {}, '3')];
    expect(servingVersion(undefined, pods, undefined)).toBe('2');
  });

  it('is null when nothing is ready', () => {
    const d = deployment({ replicas: 1 }, { observedGeneration: 1 });
    expect(servingVersion(d, [pod('a', {}, '1')], servingState(d, [], 1))).toBeNull();
  });
});

describe('deploymentStatus', () => {
  const desired = DesiredDeploymentSchema.parse({
    name: 'web',
    model: { name: 'm', version: '2', digest: `sha256:${'a'.repeat(64)}`, uri: 'file:/m', format: 'onnx' },
    runtime: 'triton',
    resources: { gpu: 1 },
    replicas: { min: 1, max: 1 },
    remediation: 'enforce',
  });
  const view = (workload: Partial<DesiredWorkload>, extra: Partial<DeploymentView> = {}): DeploymentView => ({
    desired,
    workload: { key: 'deployment/web', remediation: 'enforce', objects: [], ...workload },
    range: { min: 1, max: 1 },
    namespace: 'edge',
    live: {},
    pods: [],
    failures: [],
    corrected: [],
    ...extra,
  });
  const now = new Date('2025-01-01T00:00:00Z');

  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const blocked = view({ blocked: { reason: 'ArtifactDigestMismatch', message: 'bad digest', keepLive: true } });
    const first = deploymentStatus(blocked, [], now);
    const second = deploymentStatus(blocked, first.conditions, new Date('2025-01-01T01:00:00Z'));
    expect(second.conditions).toEqual(first.conditions);
    expect(second).toMatchObject({ phase: 'Failed', compliance: 'NonCompliant', endpoint: null });
  });

  it('reports a blocked deployment that still serves its previous version as Degraded', () => {
    const d = deployment({ replicas: 1 }, { observedGeneration: 1, replicas: 1, updatedReplicas: 1, readyReplicas: 1 });
    const status = deploymentStatus(
      view({ blocked: { reason: 'ArtifactDigestMismatch', message: 'bad digest', keepLive: true } }, { live: { deployment: d }, pods: [readyPod('p', '1')] }),
      [],
      now,
    );
    expect(status).toMatchObject({ phase: 'Degraded', servingVersion: '1', readyReplicas: 1 });
    expect(status.message).toBe('serving version 1; version 2 not applied: bad digest');
  });

  it('reports the HPA choice as the desired replicas', () => {
    const hpa = live('HorizontalPodAutoscaler', { status: { desiredReplicas: 4 } });
    const status = deploymentStatus(view({}, { range: { min: 1, max: 5 }, live: { hpa } }), [], now);
    expect(status.desiredReplicas).toBe(4);
  });
});
