import type { DeploymentStatus, DesiredPayload, JobRunStatus } from '@flotilla/contracts';

/**
 * The seam between the agent core (MQTT session, envelope checks, state
 * directory) and whatever runs workloads on the appliance. The core calls
 * `reconcile` with the last applied desired payload whenever it may be out of
 * date (new envelope, timer, runtime event); a runtime must be level-based and
 * idempotent: read the world, compare with `desired`, act, report.
 *
 * Implementations: `kubernetes` (runtime/kubernetes), `process`
 * (runtime/process) and `none` (reports only, used by tests and simulated
 * fleets).
 */
export interface WorkloadRuntime {
  readonly kind: 'process' | 'kubernetes' | 'none';
  /**
   * Converge local workloads towards `desired`. Resolves with the status of
   * every desired deployment and job. Throws only for errors worth a requeue
   * with backoff (API unreachable, ...); per-workload problems are reported in
   * the returned statuses with conditions, not thrown.
   */
  reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport>;
  /** Optional: called when the runtime noticed a change by itself (watch, process exit). */
  onChange?(listener: () => void): void;
  /** Stops supervising; leaves workloads running unless `stopWorkloads` is set. */
  close(opts?: { stopWorkloads?: boolean }): Promise<void>;
}

export interface RuntimeReport {
  deployments: DeploymentStatus[];
  jobs: JobRunStatus[];
}
