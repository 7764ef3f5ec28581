import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { preparePostgres } from '../../apps/hub/src/database/embedded-postgres.js';
import { initialiseCluster, PostgresServer } from '../../apps/hub/src/database/postgres-server.js';

export interface ScratchPostgres {
  /** Superuser URL of the `postgres` database. */
  url: string;
  /** The postmaster, to stop and start it again (tests of a database that goes away). */
  server: PostgresServer;
  /** Stops Postgres and deletes its data. */
  stop(): Promise<void>;
}

/**
 * A throwaway real Postgres (the embedded-postgres binaries) in a fresh
 * directory under the system's temporary directory, started the way the hub
 * starts its own (as the postgres user when root), without fsync. Nothing
 * is left once stop() resolves; a failed start removes its directory too.
 */
export async function startScratchPostgres(settings: Record<string, string> = {}): Promise<ScratchPostgres> {
  const { binaries, runAs } = await preparePostgres();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-test-pg-'));
  // As root, the postgres user must be able to traverse into it (the data directory inside stays 0700).
  if (runAs) await chmod(dir, 0o711);
  const dataDir = path.join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  let server: PostgresServer | null = null;
  try {
    await initialiseCluster({ binaries, dataDir, runAs, user: 'flotilla', password, durable: false, log: () => undefined });
    const port = await findFreePort();
    server = new PostgresServer({
      binaries,
      dataDir,
      port,
      runAs,
      settings: { listen_addresses: '127.0.0.1', unix_socket_directories: '', fsync: 'off', max_connections: '300', ...settings },
      log: () => undefined,
    });
    await server.start();
  } catch (err) {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const running = server;
  return {
    url: `postgres://flotilla:${password}@127.0.0.1:${running.options.port}/postgres`,
    server: running,
    async stop() {
      await running.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
