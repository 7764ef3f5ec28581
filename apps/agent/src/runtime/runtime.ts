import type { DeploymentStatus, DesiredPayload, JobRunStatus, ModelRef } from '@flotilla/contracts';

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
  /** Optional (the `restart` command): stops the deployment's workload so the next reconcile starts it afresh; false when none runs. */
  restartDeployment?(deployment: string): Promise<boolean>;
  /** Optional (the `diagnostics` command): the last lines of each workload's log, at most `maxBytes` in all. */
  recentLogs?(maxBytes: number): Promise<Record<string, string[]>>;
}

export interface RuntimeReport {
  deployments: DeploymentStatus[];
  jobs: JobRunStatus[];
}

/**
 * The verified, content-addressed model cache as runtimes see it
 * (implemented in apps/agent/src/artifacts). A runtime never starts a model
 * that `ensure` did not verify.
 */
export interface ArtifactProvider {
  /**
   * Fetches the model version if it is not cached, verifies its sha256 digest,
   * and lays it out as a Triton model repository. Rejects with an
   * `ArtifactError` whose `reason` is `ArtifactDigestMismatch`,
   * `ArtifactUnavailable` (retryable: unreachable, 5xx) or `ArtifactTooLarge`.
   */
  ensure(model: ModelRef, signal: AbortSignal): Promise<PreparedArtifact>;
  /** Declares the versions still in use; everything else may be collected. */
  retain(models: ModelRef[]): Promise<void>;
}

export interface PreparedArtifact {
  /** Triton model repository root: `<repositoryPath>/<model name>/<n>/model.onnx`. */
  repositoryPath: string;
  /** The verified model file itself. */
  modelPath: string;
  digest: string;
}
