import type { Condition } from '@flotilla/contracts';
import type { RuntimeReport } from '../runtime/runtime.js';

/**
 * Status conditions in the Kubernetes/Flux style: each has a type, a status,
 * a CamelCase reason, a message, and the time its status last changed.
 */

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

const MAX_MESSAGE = 2048;

export function truncate(text: string, max = MAX_MESSAGE): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

/**
 * Returns `conditions` with `next` set. `lastTransitionTime` moves only when
 * the status changes; a new reason or message alone is not a transition.
 */
export function setCondition(conditions: readonly Condition[], next: ConditionInput, now: Date): Condition[] {
  const existing = conditions.find((c) => c.type === next.type);
  const lastTransitionTime =
    existing !== undefined && existing.status === next.status ? existing.lastTransitionTime : now.toISOString();
  const condition: Condition = { ...next, message: truncate(next.message), lastTransitionTime };
  return existing === undefined
    ? [...conditions, condition]
    : conditions.map((c) => (c.type === next.type ? condition : c));
}

export interface WorkloadFacts {
  /** Generation of the applied envelope (0 before any). */
  appliedGeneration: number;
  /** Generation of the last successful reconcile (0 before any). */
  reconciledGeneration: number;
  /** Error of the latest reconcile, if it failed. */
  lastError: string | null;
  report: RuntimeReport | null;
}

const SETTLED_PHASES = new Set(['Ready', 'ScaledToZero']);
const BAD_PHASES = new Set(['Degraded', 'Failed']);

function list(items: string[]): string {
  return items.length <= 5 ? items.join(', ') : `${items.slice(0, 5).join(', ')} and ${items.length - 5} more`;
}

/** Ready, Reconciling and Degraded, derived from what the agent knows now. */
export function workloadConditions(facts: WorkloadFacts): ConditionInput[] {
  const { appliedGeneration, reconciledGeneration, lastError, report } = facts;
  if (appliedGeneration === 0) {
    return [
      { type: 'Ready', status: 'False', reason: 'NoDesiredState', message: 'waiting for the first desired state from the hub' },
      { type: 'Reconciling', status: 'False', reason: 'NoDesiredState', message: '' },
      { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' },
    ];
  }
  const behind = reconciledGeneration < appliedGeneration;
  const reconciling: ConditionInput = behind
    ? { type: 'Reconciling', status: 'True', reason: 'Progressing', message: `reconciling generation ${appliedGeneration}` }
    : { type: 'Reconciling', status: 'False', reason: 'ReconciliationSucceeded', message: `generation ${appliedGeneration} reconciled` };

  const deployments = report?.deployments ?? [];
  const jobs = report?.jobs ?? [];
  const bad = [
    ...deployments.filter((d) => BAD_PHASES.has(d.phase)).map((d) => `${d.name} (${d.phase})`),
    ...jobs.filter((j) => j.phase === 'Failed').map((j) => `job ${j.name} (Failed)`),
  ];
  const degraded: ConditionInput =
    lastError !== null
      ? { type: 'Degraded', status: 'True', reason: 'ReconcileFailed', message: lastError }
      : bad.length > 0
        ? { type: 'Degraded', status: 'True', reason: 'WorkloadsDegraded', message: list(bad) }
        : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' };

  const notReady = deployments.filter((d) => !SETTLED_PHASES.has(d.phase));
  let ready: ConditionInput;
  if (lastError !== null) {
    ready = { type: 'Ready', status: 'False', reason: 'ReconcileFailed', message: lastError };
  } else if (behind) {
    ready = { type: 'Ready', status: 'False', reason: 'Progressing', message: `generation ${appliedGeneration} not reconciled yet` };
  } else if (notReady.length > 0 || bad.length > 0) {
    const names = notReady.map((d) => `${d.name} (${d.phase})`);
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'WorkloadsNotReady',
      message: `${notReady.length} of ${deployments.length} deployments not ready${names.length > 0 ? `: ${list(names)}` : ''}${bad.length > 0 ? `; failing: ${list(bad)}` : ''}`,
    };
  } else {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: 'AllWorkloadsReady',
      message: deployments.length === 0 ? 'no deployments desired' : `${deployments.length} deployments ready`,
    };
  }
  return [ready, reconciling, degraded];
}
