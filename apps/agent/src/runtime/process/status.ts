import type { Condition, DeploymentStatus, DesiredDeployment } from '@flotilla/contracts';
import { setCondition, truncate, type ConditionInput } from '../../status/conditions.js';
import type { Wanted } from './plan.js';
import type { ExitRecord, SupervisedState } from './supervised-process.js';

/** What the status needs to know of the process serving a deployment. */
export interface ProcessView {
  state: SupervisedState;
  key: string;
  port: number;
  modelName: string;
  modelVersion: string;
  restarts: number;
  lastExit: ExitRecord | undefined;
  nextRestartAt: number | undefined;
}

/** Why the desired key could not be started. */
export interface FailureView {
  key: string;
  reason: string;
  message: string;
  /** Retryable failures (ArtifactUnavailable) leave the deployment Pending, others make it Failed. */
  retryable: boolean;
}

export interface StatusInput {
  deployment: DesiredDeployment;
  wanted: Wanted | { error: string };
  active: ProcessView | undefined;
  failure: FailureView | undefined;
  holds: readonly { reason: string; message: string }[];
  /** Host for endpoint URLs, as clients reach it. */
  endpointHost: string;
  previous: readonly Condition[];
  now: Date;
}

export function endpointUrl(host: string, port: number, modelName: string): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}/v2/models/${encodeURIComponent(modelName)}`;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function crashMessage(p: ProcessView, now: Date): string {
  const exit = p.lastExit?.description ?? 'exited';
  const next = p.nextRestartAt !== undefined ? `; next restart in ${Math.max(0, Math.ceil((p.nextRestartAt - now.getTime()) / 1000))} s` : '';
  return `process ${exit}; restarted ${plural(p.restarts, 'time')}${next}`;
}

/**
 * The DeploymentStatus of one desired deployment from what the process
 * runtime knows: phase, endpoint, compliance, and Ready and Degraded
 * conditions whose transition times carry over from `previous`.
 */
export function deploymentStatus(input: StatusInput): DeploymentStatus {
  const { deployment: d, wanted, active, holds, now } = input;
  const desiredKey = 'key' in wanted ? wanted.key : undefined;
  const desiredReplicas = 'replicas' in wanted ? wanted.replicas : active ? 1 : 0;
  const failure = input.failure && input.failure.key === desiredKey ? input.failure : undefined;
  const scheduleError = holds.find((h) => h.reason === 'InvalidSchedule');
  const drift = holds.find((h) => h.reason === 'DriftNotCorrected');
  const serving = active?.state === 'ready';
  const endpoint = serving && active ? endpointUrl(input.endpointHost, active.port, active.modelName) : null;
  const servingText = serving && active ? `serving ${active.modelName} ${active.modelVersion} at ${endpoint}` : '';
  const healthy: ConditionInput = {
    type: 'Degraded',
    status: 'False',
    reason: 'AsExpected',
    message: active && active.restarts > 0 ? `restarted ${plural(active.restarts, 'time')}; last: ${active.lastExit?.description ?? 'exited'}` : '',
  };

  let phase: DeploymentStatus['phase'];
  let compliance: DeploymentStatus['compliance'];
  let ready: ConditionInput;
  let degraded: ConditionInput = healthy;

  if (scheduleError) {
    phase = serving ? 'Degraded' : 'Failed';
    compliance = 'NonCompliant';
    ready = serving
      ? { type: 'Ready', status: 'True', reason: 'Serving', message: servingText }
      : { type: 'Ready', status: 'False', reason: 'InvalidSchedule', message: scheduleError.message };
    degraded = { type: 'Degraded', status: 'True', reason: 'InvalidSchedule', message: scheduleError.message };
  } else if (!active) {
    if (desiredReplicas === 0) {
      phase = 'ScaledToZero';
      compliance = 'Compliant';
      ready = { type: 'Ready', status: 'True', reason: 'ScaledToZero', message: 'the schedule wants no replica now' };
    } else if (failure) {
      phase = failure.retryable ? 'Pending' : 'Failed';
      compliance = 'NonCompliant';
      ready = { type: 'Ready', status: 'False', reason: failure.reason, message: failure.message };
      degraded = { type: 'Degraded', status: 'True', reason: failure.reason, message: failure.message };
    } else if (drift) {
      phase = 'Pending';
      compliance = 'NonCompliant';
      ready = { type: 'Ready', status: 'False', reason: 'DriftNotCorrected', message: drift.message };
    } else {
      phase = 'Pending';
      compliance = 'Pending';
      ready = { type: 'Ready', status: 'False', reason: 'Starting', message: 'no process started yet' };
    }
  } else if (active.state === 'ready') {
    ready = { type: 'Ready', status: 'True', reason: 'Serving', message: servingText };
    if (active.key === desiredKey && desiredReplicas === 1) {
      phase = 'Ready';
      compliance = 'Compliant';
    } else if (failure) {
      // The new version cannot start; the old one goes on serving.
      phase = 'Degraded';
      compliance = 'NonCompliant';
      degraded = { type: 'Degraded', status: 'True', reason: failure.reason, message: `cannot start ${d.model.version}: ${failure.message}` };
    } else if (drift) {
      phase = 'Ready';
      compliance = 'NonCompliant';
    } else {
      phase = 'Progressing';
      compliance = 'Pending';
    }
  } else if (active.state === 'backoff') {
    const message = crashMessage(active, now);
    phase = 'Degraded';
    compliance = active.key === desiredKey ? 'Pending' : 'NonCompliant';
    ready = { type: 'Ready', status: 'False', reason: 'ProcessCrashed', message };
    degraded = { type: 'Degraded', status: 'True', reason: 'ProcessCrashed', message };
  } else {
    phase = 'Progressing';
    compliance = 'Pending';
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'Starting',
      message: active.restarts > 0 ? `restarting after: ${crashMessage(active, now)}` : 'waiting for the server to answer /v2/health/ready',
    };
    if (active.restarts > 0) degraded = { type: 'Degraded', status: 'True', reason: 'ProcessCrashed', message: crashMessage(active, now) };
  }

  let conditions = setCondition(input.previous, ready, now);
  conditions = setCondition(conditions, degraded, now);
  const message = [ready.message, degraded.status === 'True' ? degraded.message : '', drift && compliance === 'NonCompliant' ? drift.message : '']
    .filter((m, i, all) => m !== '' && all.indexOf(m) === i)
    .join('; ');

  return {
    name: d.name,
    phase,
    readyReplicas: serving ? 1 : 0,
    desiredReplicas,
    servingVersion: serving && active ? active.modelVersion : null,
    endpoint,
    compliance,
    conditions,
    message: truncate(message),
  };
}
