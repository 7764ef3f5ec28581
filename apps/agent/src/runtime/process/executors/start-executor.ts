import type { Step } from '../plan.js';
import type { ExecutorDeps } from './executor-deps.js';
import { launchNew } from './launch-new.js';

/** `start`: the deployment has no process; one is started on its remembered port and waited for. */
export class StartExecutor {
  constructor(private readonly deps: ExecutorDeps) {}

  async run(step: Extract<Step, { kind: 'start' }>, signal: AbortSignal): Promise<void> {
    const { spec, key } = step;
    const launch = await this.deps.preparer.prepare(spec, key, signal);
    if (!launch) return;
    const p = await launchNew(this.deps, spec, key, launch, this.deps.table.portOf(spec.name), (created) => this.deps.table.setActive(created));
    if (!p) return;
    this.deps.failures.clear(spec.name);
    await this.deps.persist();
    // Ready or crashed (then supervised with backoff): either way the status says which.
    await p.whenSettled(signal);
  }
}
