import { sleep } from '../../support/abort.js';
import { procAvailable, readEnviron, readProcStat } from '../../support/proc.js';

/**
 * Environment variable set on every process the runtime starts. Its value,
 * read back from /proc/<pid>/environ, proves that a pid from the ledger still
 * belongs to a process this runtime started and not to an unrelated process
 * that reused the pid after a reboot or a crash. (The other markers are in
 * workload-marker.ts.)
 */
export const INSTANCE_ENV = 'FLOTILLA_PROCESS_INSTANCE';

/** Whether a pid names a running process (a zombie awaiting its parent's wait() does not count). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = (await readProcStat(pid))?.state ?? null;
  return state !== 'Z' && state !== 'X';
}

/**
 * Whether the process carries our instance marker: `true` or `false` where
 * /proc can tell, `unknown` where it cannot (not Linux, or no permission),
 * in which case callers must not kill it on the ledger's word alone.
 */
export async function ownsProcess(pid: number, instanceId: string): Promise<boolean | 'unknown'> {
  if (!(await procAvailable())) return 'unknown';
  // Gone, or another user's process (ours run as the agent's user): not ours either way.
  return (await readEnviron(pid))?.get(INSTANCE_ENV) === instanceId;
}

/**
 * Whether `pid` is still the process that had `startTime` (/proc's field
 * 22): false once the pid was reused; true when nothing was recorded or
 * /proc cannot tell, leaving the decision to the instance marker.
 */
export async function sameProcess(pid: number, startTime: number | undefined): Promise<boolean> {
  if (startTime === undefined) return true;
  const stat = await readProcStat(pid);
  return stat === null || stat.startTime === startTime;
}

/**
 * Signals the process group the runtime created for the process (it is
 * spawned detached, so it leads its own group), reaching any children it has.
 * A vanished process is not an error.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH' && target === pid) return;
      // ESRCH on the group: the process may have left it; try the pid itself.
    }
  }
}

/** Polls until the pid is gone; resolves false if it still runs after `timeoutMs`. */
export async function waitForPidExit(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(50, Math.max(1, deadline - Date.now())), signal);
  }
}

/**
 * SIGTERM to the process group, SIGKILL after `graceMs` if it still runs.
 * Resolves with how it ended, for the caller's log.
 */
export async function terminateGroup(pid: number, graceMs: number, signal?: AbortSignal): Promise<'SIGTERM' | 'SIGKILL' | 'still running'> {
  signalGroup(pid, 'SIGTERM');
  if (await waitForPidExit(pid, graceMs, signal)) return 'SIGTERM';
  signalGroup(pid, 'SIGKILL');
  return (await waitForPidExit(pid, 10_000, signal)) ? 'SIGKILL' : 'still running';
}
