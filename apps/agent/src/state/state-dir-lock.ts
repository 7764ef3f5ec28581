import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readProcStat } from '../support/proc.js';
import { ensurePrivateDir } from './atomic-write.js';

/**
 * `<stateDir>/agent.lock`: which process runs the agent on a state
 * directory. Two agents on one directory would fight over its envelope and
 * its workloads, and `flotilla agent stop-workloads` must not stop what a
 * running agent supervises. The file holds the pid and the process's start
 * time, so a lock left by a killed agent is recognised as stale (its pid
 * gone, or reused by another process) and taken over.
 */
export const LOCK_FILE = 'agent.lock';

export interface LockHolder {
  pid: number;
  /** /proc field 22 of `pid`, when /proc was there. */
  startTime?: number;
  since: string;
}

export class StateDirLockedError extends Error {
  override readonly name = 'StateDirLockedError';
  constructor(
    readonly stateDir: string,
    readonly holder: LockHolder,
  ) {
    super(`an agent (pid ${holder.pid}, running since ${holder.since}) holds ${stateDir} (${join(stateDir, LOCK_FILE)})`);
  }
}

function parseHolder(text: string): LockHolder | null {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (!Number.isInteger(v.pid) || (v.pid as number) <= 0) return null;
    return { pid: v.pid as number, since: typeof v.since === 'string' ? v.since : 'unknown', ...(Number.isInteger(v.startTime) ? { startTime: v.startTime as number } : {}) };
  } catch {
    return null;
  }
}

async function isLive(holder: LockHolder): Promise<boolean> {
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = await readProcStat(holder.pid);
  if (stat && (stat.state === 'Z' || stat.state === 'X')) return false;
  return holder.startTime === undefined || stat === null || stat.startTime === holder.startTime;
}

async function readLockText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export class StateDirLock {
  private released = false;

  private constructor(
    readonly stateDir: string,
    private readonly content: string,
  ) {}

  static file(stateDir: string): string {
    return join(stateDir, LOCK_FILE);
  }

  /** The live agent holding `stateDir`, or null (no lock, or a stale one). */
  static async holder(stateDir: string): Promise<LockHolder | null> {
    const text = await readLockText(StateDirLock.file(stateDir));
    const holder = text === null ? null : parseHolder(text);
    return holder && (await isLive(holder)) ? holder : null;
  }

  /** Takes the lock for this process, or throws StateDirLockedError naming the agent that holds it. */
  static async acquire(stateDir: string): Promise<StateDirLock> {
    await ensurePrivateDir(stateDir);
    const file = StateDirLock.file(stateDir);
    const stat = await readProcStat(process.pid);
    const content = `${JSON.stringify({ pid: process.pid, ...(stat ? { startTime: stat.startTime } : {}), since: new Date().toISOString() })}\n`;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      try {
        const handle = await open(file, 'wx', 0o600);
        try {
          await handle.writeFile(content);
          await handle.sync();
        } finally {
          await handle.close();
        }
        return new StateDirLock(stateDir, content);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const text = await readLockText(file);
      if (text === null) continue;
      const holder = parseHolder(text);
      if (holder && (await isLive(holder))) throw new StateDirLockedError(stateDir, holder);
      // Stale (its agent was killed): remove it unless another starter replaced it meanwhile.
      if ((await readLockText(file)) === text) await unlink(file).catch(() => undefined);
    }
    throw new Error(`cannot take the lock ${file}: it keeps changing; is another agent starting on ${stateDir}?`);
  }

  /** Removes the lock if it is still this process's. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const file = StateDirLock.file(this.stateDir);
    if ((await readLockText(file).catch(() => null)) === this.content) await unlink(file).catch(() => undefined);
  }
}
