import { copyFile, open, rename, stat, truncate, type FileHandle } from 'node:fs/promises';

/**
 * Size-capped workload logs. A supervised process writes straight into its
 * log file (an O_APPEND descriptor it inherits), so it keeps logging while
 * the agent restarts. Rotation is therefore copy-then-truncate, as
 * logrotate's copytruncate: the writer's descriptor stays valid and, being
 * O_APPEND, continues at the new end. Lines written between the copy and the
 * truncation are lost; that is the price of never interrupting the writer.
 */
export interface LogLimits {
  maxBytes: number;
  /** Rotated files kept beside the log: <log>.1 (newest) ... <log>.<keep>. */
  keep: number;
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** Rotates the log if it has grown past the limit; returns whether it did. */
export async function capLogFile(file: string, limits: LogLimits): Promise<boolean> {
  if ((await sizeOf(file)) <= limits.maxBytes) return false;
  for (let i = limits.keep - 1; i >= 1; i -= 1) {
    await rename(`${file}.${i}`, `${file}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  if (limits.keep >= 1) await copyFile(file, `${file}.1`);
  await truncate(file, 0);
  return true;
}

/** Opens the log for appending (rotating it first if too large), for a child's stdout and stderr. */
export async function openLogFile(file: string, limits: LogLimits): Promise<FileHandle> {
  await capLogFile(file, limits);
  return open(file, 'a', 0o640);
}

/** Appends one line of the supervisor's own (restart, stop) to the workload's log. */
export async function appendLogLine(file: string, line: string): Promise<void> {
  const handle = await open(file, 'a', 0o640);
  try {
    await handle.appendFile(`${new Date().toISOString()} [flotilla-agent] ${line}\n`);
  } finally {
    await handle.close();
  }
}
