import { rename } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { PostgresSupervisor } from '../../apps/hub/src/database/postgres-supervisor.js';
import { startScratchPostgres, type ScratchPostgres } from '../support/scratch-postgres.js';
import { waitFor } from '../support/wait.js';

async function answers(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A real postmaster killed with SIGKILL under a PostgresSupervisor. */
describe('PostgresSupervisor', () => {
  let scratch: ScratchPostgres;
  const lines: string[] = [];
  const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) };
  beforeEach(async () => {
    lines.length = 0;
    scratch = await startScratchPostgres();
  });
  afterEach(async () => {
    await scratch.stop();
  });

  test('restarts a killed postmaster on the same port, and stops it for good on stop()', async () => {
    const supervisor = new PostgresSupervisor(scratch.server, log, [100, 500, 1_000]);
    const failures: Error[] = [];
    supervisor.onFailure((e) => failures.push(e));
    const first = scratch.server.pid!;
    process.kill(first, 'SIGKILL');
    await waitFor('a new postmaster', () => scratch.server.pid !== null && scratch.server.pid !== first && answers(scratch.url), 30_000, 100);
    expect(lines.some((l) => l.includes('exited unexpectedly (signal SIGKILL'))).toBe(true);
    expect(failures).toEqual([]);
    const second = scratch.server.pid!;
    await supervisor.stop();
    expect(scratch.server.pid).toBeNull();
    expect(() => process.kill(second, 0)).toThrow();
  });

  test('gives up after its attempts and says so once, when Postgres cannot start again', async () => {
    const supervisor = new PostgresSupervisor(scratch.server, log, [50, 50, 50]);
    const failed = new Promise<Error>((resolve) => supervisor.onFailure(resolve));
    const dataDir = scratch.server.options.dataDir;
    const moved = path.join(path.dirname(dataDir), 'moved-away');
    process.kill(scratch.server.pid!, 'SIGKILL');
    // The data directory vanishes (a disk unmounted, say): every restart fails.
    await rename(dataDir, moved);
    try {
      const err = await failed;
      expect(err.message).toContain(`the embedded Postgres (data ${dataDir}) exited and could not be restarted after 3 attempts`);
      expect(lines.filter((l) => l.startsWith('restart attempt'))).toHaveLength(3);
    } finally {
      await rename(moved, dataDir);
      await supervisor.stop();
    }
  });
});
