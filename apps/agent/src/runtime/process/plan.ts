import { createHash } from 'node:crypto';
import { canonicalJson, type DesiredDeployment } from '@flotilla/contracts';
import { effectiveReplicas } from '../../schedule/index.js';

/**
 * What the process runtime plans over: a pure function from what runs and
 * what is wanted to a list of steps (balena-supervisor's `plan(current,
 * target)`). The executor in process-runtime.ts carries the steps out.
 */

/**
 * Identity of a process: deployment, model digest and a hash of everything
 * else in the spec that the process is started with. Replicas, schedule and
 * remediation are left out: they decide whether a process runs, not which.
 */
export function processKey(d: DesiredDeployment): string {
  const launchSpec = { runtime: d.runtime, model: d.model, resources: d.resources, gpuProduct: d.gpuProduct ?? null };
  const specHash = createHash('sha256').update(canonicalJson(launchSpec)).digest('hex').slice(0, 16);
  return `${d.name}/${d.model.digest}/${specHash}`;
}

export type ProcessRole = 'active' | 'draining';
export type ProcessState = 'starting' | 'ready' | 'backoff';

/** A process this runtime supervises, as the planner sees it. */
export interface ObservedProcess {
  instanceId: string;
  deployment: string;
  key: string;
  /** `active` serves the reported endpoint; `draining` was replaced and is stopped at `drainUntil`. */
  role: ProcessRole;
  state: ProcessState;
  /** Epoch ms, for `draining`. */
  drainUntil?: number;
}

/** The last failed attempt to start a key, and when to try it again. */
export interface StartFailure {
  deployment: string;
  key: string;
  reason: string;
  message: string;
  /** Epoch ms; a retryable failure (ArtifactUnavailable) is retried at once, when the core requeues. */
  retryAt: number;
}

export interface Observed {
  processes: readonly ObservedProcess[];
  failures: readonly StartFailure[];
}

export type StopWhy = 'removed' | 'scaled-to-zero' | 'drained' | 'duplicate';

export type Step =
  | { kind: 'start'; deployment: string; key: string; spec: DesiredDeployment }
  /** Start `key` beside `old`, switch the endpoint once it is ready, then drain `old`. */
  | { kind: 'replace'; deployment: string; key: string; spec: DesiredDeployment; old: ObservedProcess }
  | { kind: 'stop'; deployment: string; process: ObservedProcess; why: StopWhy }
  | { kind: 'keep'; deployment: string; process: ObservedProcess }
  /** Act on nothing for now, and say why in the status. */
  | { kind: 'hold'; deployment: string; reason: string; message: string };

/** Whether a deployment should run a process now; the process runtime runs one process or none. */
export interface Wanted {
  deployment: DesiredDeployment;
  key: string;
  /** 1 when the effective replicas allow any (max >= 1), else 0. */
  replicas: 0 | 1;
  window: number | 'outside' | 'always';
}

/** Evaluates the schedule; a schedule that cannot be evaluated is reported as an error, not guessed. */
export function wantedNow(d: DesiredDeployment, now: Date): Wanted | { deployment: DesiredDeployment; error: string } {
  try {
    const r = effectiveReplicas(d, now);
    return { deployment: d, key: processKey(d), replicas: r.max >= 1 ? 1 : 0, window: r.window };
  } catch (err) {
    return { deployment: d, error: (err as Error).message };
  }
}

/** Ready first, then the one matching the key: the process worth keeping when there are several. */
function best(processes: ObservedProcess[], key: string): ObservedProcess | undefined {
  const rank = (p: ObservedProcess) => (p.key === key ? 2 : 0) + (p.state === 'ready' ? 1 : 0);
  return [...processes].sort((a, b) => rank(b) - rank(a))[0];
}

export function planProcesses(observed: Observed, desired: readonly DesiredDeployment[], now: Date): Step[] {
  const steps: Step[] = [];
  const nowMs = now.getTime();
  const desiredNames = new Set(desired.map((d) => d.name));

  for (const p of observed.processes) {
    if (!desiredNames.has(p.deployment)) steps.push({ kind: 'stop', deployment: p.deployment, process: p, why: 'removed' });
  }

  for (const d of desired) {
    const mine = observed.processes.filter((p) => p.deployment === d.name);
    for (const p of mine.filter((p) => p.role === 'draining')) {
      steps.push(
        p.drainUntil !== undefined && p.drainUntil <= nowMs
          ? { kind: 'stop', deployment: d.name, process: p, why: 'drained' }
          : { kind: 'keep', deployment: d.name, process: p },
      );
    }
    const active = mine.filter((p) => p.role === 'active');
    const wanted = wantedNow(d, now);
    if ('error' in wanted) {
      steps.push({ kind: 'hold', deployment: d.name, reason: 'InvalidSchedule', message: wanted.error });
      for (const p of active) steps.push({ kind: 'keep', deployment: d.name, process: p });
      continue;
    }
    const inform = d.remediation === 'inform';
    const current = best(active, wanted.key);
    for (const p of active) {
      if (p !== current) steps.push({ kind: 'stop', deployment: d.name, process: p, why: 'duplicate' });
    }

    if (wanted.replicas === 0) {
      if (!current) continue;
      if (inform) {
        steps.push({ kind: 'hold', deployment: d.name, reason: 'DriftNotCorrected', message: 'the schedule wants no process but one runs; remediation is inform' });
        steps.push({ kind: 'keep', deployment: d.name, process: current });
      } else {
        steps.push({ kind: 'stop', deployment: d.name, process: current, why: 'scaled-to-zero' });
      }
      continue;
    }

    if (current && current.key === wanted.key) {
      steps.push({ kind: 'keep', deployment: d.name, process: current });
      continue;
    }
    const failure = observed.failures.find((f) => f.deployment === d.name && f.key === wanted.key);
    const hold: Step | undefined =
      failure && failure.retryAt > nowMs
        ? { kind: 'hold', deployment: d.name, reason: failure.reason, message: failure.message }
        : inform
          ? {
              kind: 'hold',
              deployment: d.name,
              reason: 'DriftNotCorrected',
              message: current
                ? `serving another model version or spec than desired (${d.model.version}); remediation is inform`
                : 'no process runs for this deployment; remediation is inform',
            }
          : undefined;
    if (hold) {
      // Whatever serves now goes on serving.
      if (current) steps.push({ kind: 'keep', deployment: d.name, process: current });
      steps.push(hold);
    } else if (current) {
      // The old process stays until the new one is ready.
      steps.push({ kind: 'replace', deployment: d.name, key: wanted.key, spec: d, old: current });
    } else {
      steps.push({ kind: 'start', deployment: d.name, key: wanted.key, spec: d });
    }
  }
  return steps;
}
