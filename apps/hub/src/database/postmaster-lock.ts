import { execFile } from 'node:child_process';
import { readFile, readlink, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError } from './postgres-user.js';

const run = promisify(execFile);

/** What `postmaster.pid` in a data directory says (its first line is the pid; line 8 the status pg_ctl waits on). */
export interface PostmasterLock {
  pid: number;
  /** starting, stopping, ready or standby; null while the postmaster has not written it yet. */
  status: string | null;
}

export async function readPostmasterLock(dataDir: string): Promise<PostmasterLock | null> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, status: lines[7]?.trim() || null };
}

/** True while `pid` runs (a zombie that nobody reaped counts as gone). */
export async function processRuns(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  // Field 3, after the parenthesised command name, is the state.
  return stat === null || stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** The parent of `pid`, from /proc or ps; null when neither can tell. */
async function parentOf(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat !== null) return Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10);
  try {
    return Number.parseInt((await run('ps', ['-o', 'ppid=', '-p', String(pid)])).stdout.trim(), 10);
  } catch {
    return null;
  }
}

/** The directory `pid` runs in (a postmaster runs in its data directory); null when it cannot be read. */
async function workingDirectoryOf(pid: number): Promise<string | null> {
  return readlink(`/proc/${pid}/cwd`).catch(() => null);
}

/** Sends a signal to a process that may have exited meanwhile. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await processRuns(pid))) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !(await processRuns(pid));
}

/**
 * Makes a data directory startable after a crash. A `postmaster.pid` naming
 * a process that no longer runs is removed. A postmaster still running on
 * this data directory is the orphan of a hub killed without stopping it
 * (SIGKILL, OOM): it is stopped with a fast shutdown (SIGINT, then SIGQUIT),
 * unless the hub that started it is still alive (its pid is in `ownerFile`
 * and it is still the postmaster's parent), which means another hub uses
 * this FLOTILLA_HOME. Anything it cannot tell apart ends in one sentence
 * saying what to do.
 */
export async function recoverPostmaster(dataDir: string, ownerFile: string, log: { warn(msg: string): void }): Promise<void> {
  const lock = await readPostmasterLock(dataDir);
  if (!lock) return;
  const lockFile = path.join(dataDir, 'postmaster.pid');
  if (!(await processRuns(lock.pid))) {
    await rm(lockFile, { force: true });
    log.warn(`removed the stale ${lockFile} (pid ${lock.pid} no longer runs): the last hub stopped without shutting Postgres down`);
    return;
  }
  const cwd = await workingDirectoryOf(lock.pid);
  if (cwd === null) {
    throw new EmbeddedPostgresError(
      `${lockFile} names pid ${lock.pid}, which still runs; if it is an old Postgres of this hub stop it (kill -INT ${lock.pid}), otherwise delete that file, and start again`,
    );
  }
  const ours = await realpath(dataDir).catch(() => dataDir);
  if (cwd !== ours) {
    // The pid was reused by an unrelated process: the lock is stale.
    await rm(lockFile, { force: true });
    log.warn(`removed the stale ${lockFile} (pid ${lock.pid} is now another program)`);
    return;
  }
  const owner = Number.parseInt(await readFile(ownerFile, 'utf8').catch(() => ''), 10);
  const parent = await parentOf(lock.pid);
  const ownerAlive = Number.isInteger(owner) && owner !== process.pid && parent === owner && (await processRuns(owner));
  const unknownParent = !Number.isInteger(owner) && parent !== null && parent !== 1 && parent !== process.pid;
  if (ownerAlive || unknownParent) {
    throw new EmbeddedPostgresError(
      `another Flotilla hub (pid ${parent}) is running with this data (${dataDir}); stop it first, or give this one another FLOTILLA_HOME`,
    );
  }
  log.warn(`Postgres pid ${lock.pid} outlived the hub that started it; stopping it before starting again`);
  signal(lock.pid, 'SIGINT');
  if (await waitGone(lock.pid, 15_000)) return;
  signal(lock.pid, 'SIGQUIT');
  if (await waitGone(lock.pid, 5_000)) return;
  throw new EmbeddedPostgresError(`the orphaned Postgres pid ${lock.pid} (data ${dataDir}) did not stop after SIGINT and SIGQUIT; kill it (kill -9 ${lock.pid}) and start again`);
}
