import type { Step } from '../plan.js';
import type { ExecutorDeps } from './executor-deps.js';

/** `stop`: removed, scaled to zero, a duplicate, or drained: SIGTERM, then SIGKILL after the grace period. */
export class StopExecutor {
  constructor(private readonly deps: ExecutorDeps) {}

  async run(step: Extract<Step, { kind: 'stop' }>): Promise<void> {
    const p = this.deps.table.find(step.process.instanceId);
    if (!p) return;
    this.deps.logger.info({ deployment: step.deployment, pid: p.pid, why: step.why }, 'stopping workload process');
    await p.stop(this.deps.stopGraceMs);
    this.deps.table.remove(p);
    await this.deps.persist();
  }
}
