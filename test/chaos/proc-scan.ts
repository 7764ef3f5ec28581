import { readdir, readFile } from 'node:fs/promises';

/**
 * Finds a trial's processes on this machine by the environment variable
 * every process of the trial inherits (the harness sets it on the hub, the
 * agents and so on their children), read from /proc/<pid>/environ. That is
 * how an inference server nobody recorded is still found, and how cleanup
 * reaches everything the trial started.
 */

export const TRIAL_ENV = 'FLOTILLA_CHAOS_TRIAL';
/** Set by the agent's process runtime on every workload it starts (apps/agent/src/runtime/process/os-process.ts). */
export const INSTANCE_ENV = 'FLOTILLA_PROCESS_INSTANCE';

export interface FoundProcess {
  pid: number;
  ppid: number;
  /** Process state letter from /proc/<pid>/stat (Z: zombie). */
  state: string;
  cmdline: string[];
  env: Map<string, string>;
}

async function readProc(pid: number): Promise<FoundProcess | null> {
  try {
    const [environ, cmdline, stat] = await Promise.all([
      readFile(`/proc/${pid}/environ`, 'utf8'),
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
      readFile(`/proc/${pid}/stat`, 'utf8'),
    ]);
    const env = new Map<string, string>();
    for (const kv of environ.split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
    // The command name in parentheses may hold spaces: fields follow the last ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, ppid: Number(rest[1]), state: rest[0] ?? '?', cmdline: cmdline.split('\0').filter(Boolean), env };
  } catch {
    return null; // gone, or a kernel thread
  }
}

/** Live (non-zombie) processes whose environment has TRIAL_ENV=trialId. */
export async function trialProcesses(trialId: string): Promise<FoundProcess[]> {
  const entries = await readdir('/proc');
  const pids = entries.filter((e) => /^\d+$/.test(e)).map(Number).filter((p) => p !== process.pid);
  const found: FoundProcess[] = [];
  for (const pid of pids) {
    const p = await readProc(pid);
    if (p && p.state !== 'Z' && p.env.get(TRIAL_ENV) === trialId) found.push(p);
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGKILLs every process of the trial still alive; returns how many there were. */
export async function killTrialProcesses(trialId: string): Promise<number> {
  let killed = 0;
  for (let round = 0; round < 5; round++) {
    const left = await trialProcesses(trialId);
    if (left.length === 0) return killed;
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
        killed++;
      } catch {
        // Already gone.
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return killed;
}
