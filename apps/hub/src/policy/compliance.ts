import type { DeploymentStatus, JobRunStage, ReportedDeploymentStatus, ReportedJobRunStatus } from '@flotilla/contracts';
import type { Connection } from '../spokes/spoke.dto.js';

/**
 * Per-spoke status of a workload as the hub sees it: what the spoke last
 * reported, read against what the hub last asked of it. Pure, so the rules
 * are tested without a fleet.
 */

/** What the hub knows about one spoke when judging its workloads. */
export interface SpokeWorkloadView {
  name: string;
  connection: Connection;
  lastSeenAt: Date | null;
  desiredGeneration: number;
  /** Last envelope the agent verified and stored. */
  acceptedGeneration: number;
  /** Last generation whose reconcile finished on the spoke. */
  observedGeneration: number;
  deploymentStatuses: readonly ReportedDeploymentStatus[];
  jobStatuses: readonly ReportedJobRunStatus[];
  /** Names in the spoke's stored desired payload; null when nothing was rendered for it yet. */
  desiredDeployments: ReadonlySet<string> | null;
  desiredJobs: ReadonlySet<string> | null;
}

export const COMPLIANCE_STATES = ['Compliant', 'NonCompliant', 'Pending', 'Unknown'] as const;
export type ComplianceState = (typeof COMPLIANCE_STATES)[number];

export interface SpokeCompliance {
  spoke: string;
  state: ComplianceState;
  /** CamelCase cause, stable for scripts: SpokeOffline, GenerationBehind, Reported, ... */
  reason: string;
  message: string;
  connection: Connection;
  desiredGeneration: number;
  observedGeneration: number;
  phase: DeploymentStatus['phase'] | null;
  readyReplicas: number | null;
  desiredReplicas: number | null;
  servingVersion: string | null;
  endpoint: string | null;
  /** The fine-tuned version promoted on the spoke, which it is judged against; null when it serves the policy's rendering. */
  promotedVersion?: string | null;
}

/** Why a spoke's report cannot be trusted to describe the current desired state, if it cannot. */
function notCaughtUp(
  s: SpokeWorkloadView,
  rendered: ReadonlySet<string> | null,
  name: string,
  now: number,
): { state: 'Unknown' | 'Pending'; reason: string; message: string } | null {
  if (s.connection !== 'online') {
    const seen = s.lastSeenAt ? `last seen ${Math.round((now - s.lastSeenAt.getTime()) / 1000)}s ago` : 'never seen';
    return {
      state: 'Unknown',
      reason: s.connection === 'offline' ? 'SpokeOffline' : 'SpokeStale',
      message: `spoke is ${s.connection} (${seen}); its last report may no longer hold`,
    };
  }
  // The placement selects it but the hub has not rendered the change yet (a refresh in flight).
  if (!rendered?.has(name)) return { state: 'Pending', reason: 'NotRendered', message: 'the hub has not yet sent this workload to the spoke' };
  if (s.acceptedGeneration < s.desiredGeneration) {
    return {
      state: 'Pending',
      reason: 'GenerationBehind',
      message: `spoke has accepted generation ${s.acceptedGeneration} of ${s.desiredGeneration}`,
    };
  }
  if (s.observedGeneration < s.desiredGeneration) {
    return {
      state: 'Pending',
      reason: 'Reconciling',
      message: `spoke accepted generation ${s.desiredGeneration} and is reconciling it (last finished: ${s.observedGeneration})`,
    };
  }
  return null;
}

/** A workload status computed before the current generation says nothing about it. */
function staleStatus(status: { observedGeneration: number }, s: SpokeWorkloadView): { state: 'Pending'; reason: string; message: string } | null {
  if (status.observedGeneration === s.desiredGeneration) return null;
  return {
    state: 'Pending',
    reason: 'Reconciling',
    message: `the spoke's last status for it was computed at generation ${status.observedGeneration}, not ${s.desiredGeneration}`,
  };
}

/**
 * Compliance of deployment `name` on spoke `s`: Unknown while the spoke is
 * stale or offline; Pending until it has applied the current generation and
 * reported this deployment; then what it reported, with Failed and Degraded
 * counted as NonCompliant whatever the agent's own verdict.
 */
export function deploymentCompliance(name: string, s: SpokeWorkloadView, now: number, promotedVersion: string | null = null): SpokeCompliance {
  // The status shown beside the verdict is whatever the spoke last said, even when it is older than the verdict's generation.
  const status = s.deploymentStatuses.find((d) => d.name === name) ?? null;
  const base = {
    spoke: s.name,
    connection: s.connection,
    desiredGeneration: s.desiredGeneration,
    observedGeneration: s.observedGeneration,
    phase: status?.phase ?? null,
    readyReplicas: status?.readyReplicas ?? null,
    desiredReplicas: status?.desiredReplicas ?? null,
    servingVersion: status?.servingVersion ?? null,
    endpoint: status?.endpoint ?? null,
    ...(promotedVersion !== null ? { promotedVersion } : {}),
  };
  const behind = notCaughtUp(s, s.desiredDeployments, name, now);
  if (behind) return { ...base, ...behind };
  if (!status) return { ...base, state: 'Pending', reason: 'NotReported', message: 'spoke has not reported this deployment yet' };
  const stale = staleStatus(status, s);
  if (stale) return { ...base, ...stale };
  if (status.phase === 'Failed' || status.phase === 'Degraded' || status.compliance === 'NonCompliant') {
    const reason = status.phase === 'Failed' || status.phase === 'Degraded' ? status.phase : 'NonCompliant';
    return { ...base, state: 'NonCompliant', reason, message: status.message || failingCondition(status) || `phase ${status.phase}` };
  }
  // A promoted spoke is compliant only once it serves the promoted version (the agent judges against what it was sent; this says so).
  if (status.compliance === 'Compliant' && promotedVersion !== null && status.servingVersion !== promotedVersion) {
    return { ...base, state: 'Pending', reason: 'PromotionPending', message: `serving ${status.servingVersion ?? 'nothing'}; promoted version ${promotedVersion} not served yet` };
  }
  if (status.compliance === 'Compliant') return { ...base, state: 'Compliant', reason: 'Reported', message: status.message };
  return { ...base, state: 'Pending', reason: status.phase, message: status.message || `phase ${status.phase}` };
}

function failingCondition(status: DeploymentStatus): string | undefined {
  const c = status.conditions.find((x) => (x.type === 'Ready' && x.status === 'False') || ((x.type === 'Degraded' || x.type === 'Stalled') && x.status === 'True'));
  return c ? `${c.type}=${c.status} ${c.reason}${c.message ? `: ${c.message}` : ''}` : undefined;
}

export const JOB_STATES = ['Succeeded', 'Running', 'Pending', 'Failed', 'Rejected', 'Unknown'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface SpokeJobRun {
  spoke: string;
  state: JobState;
  reason: string;
  message: string;
  connection: Connection;
  /** The detailed stage the spoke reported (null before any report). */
  phase: JobRunStage | null;
  datasetFingerprint: string | null;
  progress: number | null;
  metrics: Record<string, number>;
  producedVersion: string | null;
}

/** A fine-tuning job's run on one spoke, by the same rules as deployments. */
export function jobRun(name: string, s: SpokeWorkloadView, now: number): SpokeJobRun {
  const status = s.jobStatuses.find((j) => j.name === name) ?? null;
  const base = {
    spoke: s.name,
    connection: s.connection,
    phase: status ? (status.stage ?? (status.phase === 'Running' ? null : status.phase)) : null,
    datasetFingerprint: status?.datasetFingerprint ?? status?.produced?.datasetFingerprint ?? null,
    progress: status?.progress ?? null,
    metrics: status?.metrics ?? {},
    producedVersion: status?.producedVersion ?? null,
  };
  const behind = notCaughtUp(s, s.desiredJobs, name, now);
  if (behind) return { ...base, ...behind };
  if (!status) return { ...base, state: 'Pending', reason: 'NotReported', message: 'spoke has not reported this job yet' };
  const stale = staleStatus(status, s);
  if (stale) return { ...base, ...stale };
  return { ...base, state: status.phase, reason: status.phase, message: status.message };
}

/** Count of each state, every state present (zero included) so tables line up. */
export function countStates<S extends string>(states: readonly S[], items: readonly { state: S }[]): Record<S, number> {
  const counts = Object.fromEntries(states.map((s) => [s, 0])) as Record<S, number>;
  for (const i of items) counts[i.state] += 1;
  return counts;
}
