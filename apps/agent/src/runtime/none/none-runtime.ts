import type { DesiredPayload } from '@flotilla/contracts';
import type { RuntimeReport, WorkloadRuntime } from '../runtime.js';

const NO_RUNTIME = 'no workload runtime on this spoke (runtime "none"): nothing is started';

/**
 * A runtime that runs nothing and says so: every desired deployment is
 * Pending with reason `NoRuntime`, every job Pending. Used by simulated
 * fleets and tests, where the protocol matters and the workloads do not.
 */
export class NoneRuntime implements WorkloadRuntime {
  readonly kind = 'none' as const;
  /** First time each deployment was seen, so its condition does not "transition" on every run. */
  private readonly since = new Map<string, string>();
  private readonly now: () => Date;

  constructor(opts: { now?: () => Date } = {}) {
    this.now = opts.now ?? (() => new Date());
  }

  async reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport> {
    signal.throwIfAborted();
    const wanted = new Set(desired.deployments.map((d) => d.name));
    for (const name of this.since.keys()) if (!wanted.has(name)) this.since.delete(name);
    const now = this.now().toISOString();
    return {
      deployments: desired.deployments.map((d) => {
        const since = this.since.get(d.name) ?? now;
        this.since.set(d.name, since);
        return {
          name: d.name,
          phase: 'Pending',
          readyReplicas: 0,
          desiredReplicas: d.replicas.min,
          servingVersion: null,
          endpoint: null,
          compliance: 'Pending',
          conditions: [{ type: 'Ready', status: 'False', reason: 'NoRuntime', message: NO_RUNTIME, lastTransitionTime: since }],
          message: NO_RUNTIME,
        };
      }),
      jobs: desired.fineTuneJobs.map((j) => ({
        name: j.name,
        phase: 'Pending',
        progress: 0,
        metrics: {},
        producedVersion: null,
        message: NO_RUNTIME,
      })),
    };
  }

  async close(): Promise<void> {
    this.since.clear();
  }
}
