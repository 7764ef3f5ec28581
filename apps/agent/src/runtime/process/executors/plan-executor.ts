import type { Step } from '../plan.js';
import type { SupervisedProcess } from '../supervised-process.js';
import type { ExecutorDeps } from './executor-deps.js';
import { ReplaceExecutor } from './replace-executor.js';
import { StartExecutor } from './start-executor.js';
import { StopExecutor } from './stop-executor.js';

/**
 * Carries out a plan: each deployment's steps in order, deployments side
 * by side, each step by the executor of its kind. `keep` and `hold` change
 * nothing (a hold is reported in the status).
 */
export class PlanExecutor {
  private readonly start: StartExecutor;
  private readonly stop: StopExecutor;
  private readonly replace: ReplaceExecutor;

  constructor(deps: ExecutorDeps) {
    this.start = new StartExecutor(deps);
    this.stop = new StopExecutor(deps);
    this.replace = new ReplaceExecutor(deps);
  }

  /** Runs the plan; collects in `switched` the processes a new version replaced (to drain). */
  async execute(steps: Step[], signal: AbortSignal, switched: SupervisedProcess[]): Promise<void> {
    const byDeployment = new Map<string, Step[]>();
    for (const step of steps) byDeployment.set(step.deployment, [...(byDeployment.get(step.deployment) ?? []), step]);
    const results = await Promise.allSettled(
      [...byDeployment.values()].map(async (group) => {
        for (const step of group) {
          const old = await this.run(step, signal);
          if (old) switched.push(old);
        }
      }),
    );
    if (signal.aborted) throw signal.reason;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async run(step: Step, signal: AbortSignal): Promise<SupervisedProcess | undefined> {
    switch (step.kind) {
      case 'keep':
      case 'hold':
        return undefined;
      case 'stop':
        await this.stop.run(step);
        return undefined;
      case 'start':
        await this.start.run(step, signal);
        return undefined;
      case 'replace':
        return this.replace.run(step, signal);
    }
  }
}
