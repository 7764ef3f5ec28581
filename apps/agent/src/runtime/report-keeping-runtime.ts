import type { RuntimeReport, WorkloadRuntime } from './runtime.js';

/**
 * A runtime that keeps the last report it returned, for the health
 * collector: the report names each workload's endpoint, beside which the
 * builtin server and Triton serve Prometheus metrics.
 */
export class ReportKeepingRuntime implements WorkloadRuntime {
  private last: RuntimeReport | null = null;

  constructor(private readonly inner: WorkloadRuntime) {}

  get kind(): WorkloadRuntime['kind'] {
    return this.inner.kind;
  }

  get lastReport(): RuntimeReport | null {
    return this.last;
  }

  async reconcile(desired: Parameters<WorkloadRuntime['reconcile']>[0], signal: AbortSignal): Promise<RuntimeReport> {
    this.last = await this.inner.reconcile(desired, signal);
    return this.last;
  }

  onChange(listener: () => void): void {
    this.inner.onChange?.(listener);
  }

  get restartDeployment(): WorkloadRuntime['restartDeployment'] {
    return this.inner.restartDeployment?.bind(this.inner);
  }

  get recentLogs(): WorkloadRuntime['recentLogs'] {
    return this.inner.recentLogs?.bind(this.inner);
  }

  close(opts?: { stopWorkloads?: boolean }): Promise<void> {
    return this.inner.close(opts);
  }
}
