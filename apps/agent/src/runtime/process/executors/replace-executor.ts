import type { Step } from '../plan.js';
import type { SupervisedProcess } from '../supervised-process.js';
import type { ExecutorDeps } from './executor-deps.js';
import { launchNew } from './launch-new.js';

/**
 * `replace`: a new version starts on a new port beside the old one, which
 * goes on serving until the new one is ready; then the endpoint switches
 * and the old process drains. Resolves with the old process when it is to
 * drain (the drain clock starts once the new endpoint is reported).
 */
export class ReplaceExecutor {
  constructor(private readonly deps: ExecutorDeps) {}

  async run(step: Extract<Step, { kind: 'replace' }>, signal: AbortSignal): Promise<SupervisedProcess | undefined> {
    const { spec, key } = step;
    const { table, failures, logger, stopGraceMs } = this.deps;
    const launch = await this.deps.preparer.prepare(spec, key, signal);
    if (!launch) return undefined;
    const candidate = await launchNew(this.deps, spec, key, launch, undefined, (created) => table.setCandidate(created));
    if (!candidate) return undefined;
    await this.deps.persist();
    let outcome: 'ready' | 'failed';
    try {
      outcome = await candidate.whenSettled(signal);
    } catch (err) {
      table.clearCandidate(candidate);
      await candidate.stop(stopGraceMs);
      await this.deps.persist();
      throw err;
    }
    if (outcome === 'failed') {
      table.clearCandidate(candidate);
      const why = candidate.lastExit?.description ?? 'it stopped';
      await candidate.stop(stopGraceMs);
      failures.record(spec.name, key, 'StartupFailed', `version ${spec.model.version} did not become ready: ${why}; see ${this.deps.factory.logFile(spec.name)}`, false);
      await this.deps.persist();
      return undefined;
    }
    const old = table.find(step.old.instanceId);
    table.setActive(candidate);
    failures.clear(spec.name);
    logger.info({ deployment: spec.name, version: spec.model.version, port: candidate.port, oldPort: old?.port }, 'new version ready; switching the endpoint');
    if (!old) {
      await this.deps.persist();
      return undefined;
    }
    if (old.state !== 'ready') {
      // Not serving anyone: nothing to drain.
      table.remove(old);
      await old.stop(stopGraceMs);
      await this.deps.persist();
      return undefined;
    }
    // Provisional: reset when the reconcile reports the new endpoint; stands if that never happens.
    old.beginDrain(this.deps.now().getTime() + this.deps.drainMs);
    table.addDraining(old);
    await this.deps.persist();
    return old;
  }
}
