import { readdir, readFile } from 'node:fs/promises';

/**
 * What Linux's /proc says about processes: enough to tell a live process
 * from a zombie, a process from a later one that reused its pid, and a
 * process's environment. Every function answers `null` where /proc cannot
 * tell (not Linux, the process is gone, or it belongs to another user).
 */

export interface ProcStat {
  /** One letter: R, S, D, Z, T, X... */
  state: string;
  /** Process group; a process spawned detached leads its own (pgrp === pid). */
  pgrp: number;
  /**
   * Field 22, `starttime`: when the process started, in clock ticks since
   * boot. With the pid it names one process for the life of the machine, so
   * a recorded (pid, startTime) pair never matches a process that reused
   * the pid.
   */
  startTime: number;
}

/**
 * Clock ticks per second of `starttime`: USER_HZ, which Linux fixes at 100
 * on every architecture it exposes to user space (sysconf(_SC_CLK_TCK)).
 */
const USER_HZ = 100;

export async function readProcStat(pid: number): Promise<ProcStat | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name in parentheses may hold spaces and parentheses; the fields follow the last ")".
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  // fields[0] is field 3 (state), fields[2] field 5 (pgrp), fields[19] field 22 (starttime).
  const state = fields[0];
  const pgrp = Number(fields[2]);
  const startTime = Number(fields[19]);
  if (!state || !Number.isInteger(pgrp) || !Number.isInteger(startTime)) return null;
  return { state, pgrp, startTime };
}

/** Whether /proc is there to be asked at all (Linux). */
export async function procAvailable(): Promise<boolean> {
  return (await readProcStat(process.pid)) !== null;
}

/** How long ago the process started, from its `starttime` and the machine's uptime. */
export async function processAgeMs(pid: number): Promise<number | null> {
  const stat = await readProcStat(pid);
  if (!stat) return null;
  try {
    const uptimeSeconds = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
    if (!Number.isFinite(uptimeSeconds)) return null;
    return Math.max(0, Math.round(uptimeSeconds * 1000 - (stat.startTime * 1000) / USER_HZ));
  } catch {
    return null;
  }
}

/** The process's environment as it was at exec, or null when it cannot be read. */
export async function readEnviron(pid: number): Promise<Map<string, string> | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return null;
  }
  const env = new Map<string, string>();
  for (const pair of text.split('\0')) {
    const eq = pair.indexOf('=');
    if (eq > 0) env.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return env;
}

/** Every pid /proc lists right now (empty where there is no /proc). */
export async function listPids(): Promise<number[]> {
  try {
    return (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  } catch {
    return [];
  }
}
