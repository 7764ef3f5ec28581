import type { Condition, DeploymentStatus, DesiredDeployment } from '@flotilla/contracts';
import { setCondition, truncate, type ConditionInput } from '../../status/conditions.js';
import { describeDrift } from './drift.js';
import { ANNOTATION_MODEL_VERSION } from './labels.js';
import { type ReplicaRange, type ServiceExposure, reachableEndpoint } from './manifests.js';
import { isJsonMap, stringRecord, type Json, type JsonMap, type LiveObject } from './objects.js';
import { driftOf, liveHash, type DesiredWorkload } from './planner.js';

/**
 * Status of desired deployments and jobs from what the cluster shows after a
 * reconcile: Deployment conditions and counts, pods (a crash-looping
 * container makes the deployment Degraded with the pod's reason), Job
 * conditions, and what happened to the apply.
 */

type Phase = DeploymentStatus['phase'];

/** Container states that will not fix themselves: the deployment is Degraded, not merely progressing. */
const STUCK_WAITING = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

function map(value: Json | undefined): JsonMap {
  return isJsonMap(value) ? value : {};
}

function list(value: Json | undefined): Json[] {
  return Array.isArray(value) ? value : [];
}

function num(value: Json | undefined): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function str(value: Json | undefined): string {
  return typeof value === 'string' ? value : '';
}

function podName(pod: JsonMap): string {
  return str(map(pod['metadata'])['name']);
}

interface PodProblem {
  reason: string;
  message: string;
}

/** Why pods cannot serve: a stuck container (CrashLoopBackOff...) or an unschedulable pod. */
export function podProblems(pods: JsonMap[]): { stuck: PodProblem[]; unschedulable: PodProblem[] } {
  const stuck: PodProblem[] = [];
  const unschedulable: PodProblem[] = [];
  for (const pod of pods) {
    const status = map(pod['status']);
    for (const cs of [...list(status['initContainerStatuses']), ...list(status['containerStatuses'])]) {
      const c = map(cs);
      const waiting = map(map(c['state'])['waiting']);
      const reason = str(waiting['reason']);
      if (!STUCK_WAITING.has(reason)) continue;
      const last = map(map(c['lastState'])['terminated']);
      const detail = str(waiting['message']) || (last['reason'] ? `last exit: ${str(last['reason'])} (code ${String(last['exitCode'] ?? '?')})` : '');
      const restarts = num(c['restartCount']);
      stuck.push({
        reason,
        message: `pod ${podName(pod)} container ${str(c['name'])}: ${reason}${restarts ? ` after ${restarts} restarts` : ''}${detail ? `: ${detail}` : ''}`,
      });
    }
    for (const cond of list(status['conditions'])) {
      const c = map(cond);
      if (c['type'] === 'PodScheduled' && c['status'] === 'False' && c['reason'] === 'Unschedulable') {
        unschedulable.push({ reason: 'Unschedulable', message: `pod ${podName(pod)} unschedulable: ${str(c['message'])}` });
      }
    }
  }
  return { stuck, unschedulable };
}

function podReady(pod: JsonMap): boolean {
  return list(map(pod['status'])['conditions']).some((c) => map(c)['type'] === 'Ready' && map(c)['status'] === 'True');
}

export interface ServingState {
  phase: Phase;
  reason: string;
  message: string;
  readyReplicas: number;
}

/** Phase of a live Deployment and its pods. */
export function servingState(deployment: LiveObject, pods: JsonMap[], desiredReplicas: number): ServingState {
  const body = deployment.body;
  const status = map(body['status']);
  const spec = map(body['spec']);
  const meta = map(body['metadata']);
  const ready = num(status['readyReplicas']) ?? 0;
  const specReplicas = num(spec['replicas']) ?? 1;
  const conditions = list(status['conditions']).map(map);
  const condition = (type: string) => conditions.find((c) => c['type'] === type);
  const { stuck, unschedulable } = podProblems(pods);

  if (specReplicas === 0 && desiredReplicas === 0) {
    return ready === 0
      ? { phase: 'ScaledToZero', reason: 'ScaledToZero', message: 'scaled to zero replicas', readyReplicas: 0 }
      : { phase: 'Progressing', reason: 'ScalingDown', message: `scaling to zero, ${ready} still ready`, readyReplicas: ready };
  }
  if (stuck.length > 0) {
    const first = stuck[0]!;
    const more = stuck.length > 1 ? ` (and ${stuck.length - 1} more)` : '';
    return { phase: 'Degraded', reason: first.reason, message: `${first.message}${more}`, readyReplicas: ready };
  }
  const progressing = condition('Progressing');
  if (progressing?.['status'] === 'False' && progressing['reason'] === 'ProgressDeadlineExceeded') {
    return { phase: 'Failed', reason: 'ProgressDeadlineExceeded', message: str(progressing['message']) || 'rollout exceeded its progress deadline', readyReplicas: ready };
  }
  const replicaFailure = condition('ReplicaFailure');
  if (replicaFailure?.['status'] === 'True') {
    return { phase: 'Degraded', reason: 'ReplicaFailure', message: str(replicaFailure['message']) || str(replicaFailure['reason']), readyReplicas: ready };
  }
  if (unschedulable.length > 0) {
    const first = unschedulable[0]!;
    return { phase: ready > 0 ? 'Degraded' : 'Pending', reason: 'Unschedulable', message: first.message, readyReplicas: ready };
  }
  const generation = num(meta['generation']) ?? 0;
  const observed = num(status['observedGeneration']) ?? 0;
  if (observed < generation) {
    return { phase: ready > 0 ? 'Progressing' : 'Pending', reason: 'RolloutPending', message: `generation ${generation} not yet observed by the deployment controller`, readyReplicas: ready };
  }
  const updated = num(status['updatedReplicas']) ?? 0;
  const total = num(status['replicas']) ?? 0;
  if (ready >= specReplicas && updated >= specReplicas && total <= specReplicas) {
    return { phase: 'Ready', reason: 'Serving', message: `${ready}/${specReplicas} replicas ready`, readyReplicas: ready };
  }
  if (total === 0 && ready === 0) {
    return { phase: 'Pending', reason: 'PodsPending', message: 'no pods yet', readyReplicas: 0 };
  }
  return { phase: 'Progressing', reason: 'RolloutInProgress', message: `${ready}/${specReplicas} replicas ready, ${updated} updated`, readyReplicas: ready };
}

/** The model version ready pods serve (most of them, if a rollout is under way). */
export function servingVersion(deployment: LiveObject | undefined, pods: JsonMap[], state: ServingState | undefined): string | null {
  const counts = new Map<string, number>();
  for (const pod of pods.filter(podReady)) {
    const version = stringRecord(map(pod['metadata'])['annotations'])[ANNOTATION_MODEL_VERSION];
    if (version) counts.set(version, (counts.get(version) ?? 0) + 1);
  }
  if (counts.size > 0) return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  // No pod view (or pods without annotations): a fully ready Deployment serves its template's version.
  if (deployment && state?.phase === 'Ready') {
    const template = map(map(map(deployment.body['spec'])['template'])['metadata']);
    return stringRecord(template['annotations'])[ANNOTATION_MODEL_VERSION] ?? null;
  }
  return null;
}

export interface DeploymentView {
  desired: DesiredDeployment;
  workload: DesiredWorkload;
  range: ReplicaRange;
  namespace: string;
  /** How the Service is exposed, for the endpoint reported (default ClusterIP). */
  exposure?: ServiceExposure;
  live: { deployment?: LiveObject | undefined; service?: LiveObject | undefined; hpa?: LiveObject | undefined };
  pods: JsonMap[];
  /** What went wrong applying this round (API refusals, SSA conflicts, unowned names). */
  failures: { reason: string; message: string }[];
  /** Drift reverted this round under enforce. */
  corrected: string[];
}

function desiredReplicasOf(view: DeploymentView): number {
  const { range, live } = view;
  if (!(range.max > range.min && range.max > 0)) return range.min;
  const fromHpa = num(map(live.hpa?.body['status'])['desiredReplicas']);
  const fromDeployment = num(map(live.deployment?.body['spec'])['replicas']);
  return fromHpa ?? fromDeployment ?? Math.max(1, range.min);
}

/** Whether live objects match the rendering: Pending (not all there yet), NonCompliant (drift) or Compliant. */
function compliance(workload: DesiredWorkload, byRef: (kind: string, name: string) => LiveObject | undefined): { compliance: DeploymentStatus['compliance']; drift: string[] } {
  let pending = false;
  const drift: string[] = [];
  for (const object of workload.objects) {
    const live = byRef(object.kind, object.name);
    if (!live || liveHash(live) !== object.hash) {
      pending = true;
      continue;
    }
    const differences = driftOf(object, live);
    if (differences.length > 0) drift.push(describeDrift(object, differences));
  }
  if (drift.length > 0) return { compliance: 'NonCompliant', drift };
  return { compliance: pending ? 'Pending' : 'Compliant', drift };
}

export function deploymentStatus(view: DeploymentView, previous: readonly Condition[], now: Date): DeploymentStatus {
  const { desired, workload, live } = view;
  const desiredReplicas = desiredReplicasOf(view);
  const serving = live.deployment ? servingState(live.deployment, view.pods, desiredReplicas) : undefined;
  const byRef = (kind: string, name: string): LiveObject | undefined =>
    [live.deployment, live.service, live.hpa].find((o) => o?.kind === kind && o.name === name);

  let phase: Phase;
  let ready: ConditionInput;
  let applied: ConditionInput;
  let comp: DeploymentStatus['compliance'];
  const messages: string[] = [];
  let drift: string[] = [];

  const blocked = workload.blocked;
  const failure = view.failures[0];
  if (blocked || failure) {
    const reason = blocked?.reason ?? failure!.reason;
    const message = blocked?.message ?? view.failures.map((f) => f.message).join('; ');
    applied = { type: 'Applied', status: 'False', reason, message };
    comp = 'NonCompliant';
    if (serving) {
      const running = servingVersion(live.deployment, view.pods, serving);
      phase = serving.phase === 'Ready' ? 'Degraded' : serving.phase;
      const what = blocked ? `version ${desired.model.version} not applied` : 'changes not applied';
      messages.push(`${running ? `serving version ${running}` : serving.message}; ${what}: ${message}`);
      ready = { type: 'Ready', status: serving.phase === 'Ready' ? 'True' : 'False', reason: serving.reason, message: serving.message };
    } else {
      phase = reason === 'ArtifactUnavailable' ? 'Pending' : 'Failed';
      messages.push(message);
      ready = { type: 'Ready', status: 'False', reason, message };
    }
  } else {
    applied = { type: 'Applied', status: 'True', reason: 'Applied', message: `applied rendering ${workload.objects[0]?.hash.slice(0, 12) ?? ''}` };
    ({ compliance: comp, drift } = compliance(workload, byRef));
    if (serving) {
      phase = serving.phase;
      ready = {
        type: 'Ready',
        status: phase === 'Ready' || phase === 'ScaledToZero' ? 'True' : 'False',
        reason: serving.reason,
        message: serving.message,
      };
      messages.push(serving.message);
    } else {
      phase = 'Pending';
      ready = { type: 'Ready', status: 'False', reason: 'NotCreated', message: 'the Deployment does not exist yet' };
      messages.push(ready.message);
    }
    if (drift.length > 0) messages.push(`live objects differ from the desired spec (remediation: inform): ${drift.join('; ')}`);
  }

  const drifted: ConditionInput =
    drift.length > 0
      ? { type: 'Drifted', status: 'True', reason: 'DriftDetected', message: drift.join('; ') }
      : view.corrected.length > 0
        ? { type: 'Drifted', status: 'False', reason: 'DriftCorrected', message: `reverted: ${view.corrected.join('; ')}` }
        : { type: 'Drifted', status: 'False', reason: 'NoDrift', message: '' };

  let conditions = [...previous];
  for (const c of [ready, applied, drifted]) conditions = setCondition(conditions, c, now);
  return {
    name: desired.name,
    phase,
    readyReplicas: serving?.readyReplicas ?? 0,
    desiredReplicas,
    servingVersion: servingVersion(live.deployment, view.pods, serving),
    endpoint: live.service ? reachableEndpoint(live.service.body, desired.name, desired.model.name, view.namespace, view.exposure) : null,
    compliance: comp,
    conditions,
    message: truncate(messages.filter((m) => m !== '').join('; ')),
  };
}

