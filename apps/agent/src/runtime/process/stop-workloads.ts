import path from 'node:path';
import { StateDirLock } from '../../state/state-dir-lock.js';
import { ProcessLedger } from './ledger.js';
import { isAlive, ownsProcess, sameProcess, terminateGroup } from './os-process.js';
import { findMarkedProcesses } from './workload-marker.js';

export interface StoppedWorkload {
  deployment: string;
  pid: number;
  /** SIGTERM: it ended within the grace period; SIGKILL: it had to be killed. */
  how: 'SIGTERM' | 'SIGKILL' | 'still running';
}

export interface StopWorkloadsResult {
  stopped: StoppedWorkload[];
  /** Set when the ledger was unreadable (then only the processes' marks were used). */
  ledgerProblem: string | null;
}

/**
 * `flotilla agent stop-workloads`: stops every workload process an agent
 * on `stateDir` started and left running (an agent leaves its workloads
 * running when it stops, as k3s leaves its containers): those the ledger
 * lists and any other process carrying the directory's marks (an intent
 * whose pid was never written). SIGTERM to each process group, SIGKILL after
 * `graceMs`; then the ledger lists none. Holds the state directory's lock
 * meanwhile, so it refuses (StateDirLockedError) while an agent runs there,
 * and no agent starts during it.
 */
export async function stopWorkloads(stateDir: string, opts: { graceMs: number }): Promise<StopWorkloadsResult> {
  const dir = path.resolve(stateDir);
  const lock = await StateDirLock.acquire(dir);
  try {
    const ledger = new ProcessLedger(dir);
    const { ledger: content, problem } = await ledger.read();
    const targets = new Map<number, string>();
    const marked = await findMarkedProcesses(dir);
    for (const m of marked) targets.set(m.pid, m.deployment);
    for (const entry of content.processes) {
      if (entry.pid === undefined || targets.has(entry.pid) || marked.some((m) => m.instanceId === entry.instanceId)) continue;
      // Listed but unmarked by /proc (an older agent's process, or no /proc): only if it still is ours.
      if (!(await isAlive(entry.pid)) || (await ownsProcess(entry.pid, entry.instanceId)) !== true || !(await sameProcess(entry.pid, entry.startTime))) continue;
      targets.set(entry.pid, entry.deployment);
    }
    const stopped = await Promise.all(
      [...targets].map(async ([pid, deployment]): Promise<StoppedWorkload> => ({ deployment, pid, how: await terminateGroup(pid, opts.graceMs) })),
    );
    const remaining = stopped.filter((s) => s.how === 'still running').map((s) => s.pid);
    await ledger.write(() => ({
      version: 1,
      processes: content.processes.filter((e) => e.pid !== undefined && remaining.includes(e.pid)),
      ports: content.ports,
    }));
    return { stopped: stopped.sort((a, b) => a.deployment.localeCompare(b.deployment) || a.pid - b.pid), ledgerProblem: problem };
  } finally {
    await lock.release();
  }
}
