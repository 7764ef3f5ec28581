import type { DesiredDeployment } from '@flotilla/contracts';
import type { LaunchInfo } from '../launch.js';
import type { SupervisedProcess } from '../supervised-process.js';
import type { ExecutorDeps } from './executor-deps.js';

/**
 * Creates a process for `spec`, lets `place` put it in the table (so the
 * ledger's intent names it), and launches it. A port or the log file can be
 * unavailable for a while (range full, disk full): that is recorded as a
 * StartFailed failure, retried at the next reconcile, and answered null.
 */
export async function launchNew(
  deps: ExecutorDeps,
  spec: DesiredDeployment,
  key: string,
  launch: LaunchInfo,
  preferredPort: number | undefined,
  place: (p: SupervisedProcess) => void,
): Promise<SupervisedProcess | null> {
  let p: SupervisedProcess | undefined;
  try {
    p = await deps.factory.create(spec, key, launch, preferredPort);
    place(p);
    await p.launch();
    return p;
  } catch (err) {
    if (p) {
      deps.table.remove(p);
      await p.stop(deps.stopGraceMs);
    }
    deps.failures.record(spec.name, key, 'StartFailed', `cannot start a process: ${(err as Error).message}`, true);
    return null;
  }
}
