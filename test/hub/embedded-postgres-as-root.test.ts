import { lstat, mkdir, mkdtemp, readdir, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { preparePostgres, startEmbeddedPostgres } from '../../apps/hub/src/database/embedded-postgres.js';
import { postgresDataLocation } from '../../apps/hub/src/database/postgres-data-location.js';
import { initialiseCluster } from '../../apps/hub/src/database/postgres-server.js';

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('embedded-postgres-as-root.test.ts: SKIPPED, not running as root (these tests cover what root needs)');
const asRoot = isRoot ? describe : describe.skip;

async function selectOne(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one;
  } finally {
    await c.end();
  }
}

/**
 * As root, Postgres runs as the `postgres` user, which cannot traverse a
 * FLOTILLA_HOME inside a 0700 directory (a checkout under /root). The hub
 * must still start a real Postgres, keep nothing secret readable by others,
 * and leave nothing behind when a first start fails.
 */
asRoot('embedded Postgres started by root with FLOTILLA_HOME under a 0700 directory', () => {
  let outer: string;
  beforeEach(async () => {
    // mkdtemp makes it 0700, like /root.
    outer = await mkdtemp(path.join(os.tmpdir(), 'flotilla-private-'));
    expect((await stat(outer)).mode & 0o777).toBe(0o700);
  });
  afterEach(async () => {
    await rm(outer, { recursive: true, force: true });
  });

  test('the cluster lives in a place the postgres user can reach, FLOTILLA_HOME links to it, and a second start finds it again', async () => {
    const home = path.join(outer, 'checkout', '.flotilla');
    const first = await startEmbeddedPostgres(home, quiet);
    const placed = path.dirname(first.dataDir);
    try {
      expect(first.dataDir.startsWith('/var/lib/flotilla/')).toBe(true);
      expect(await readlink(path.join(home, 'postgres'))).toBe(first.dataDir);
      const data = await stat(first.dataDir);
      expect(data.uid).not.toBe(0);
      expect(data.mode & 0o777).toBe(0o700);
      expect((await stat(path.join(home, 'postgres-password'))).mode & 0o777).toBe(0o600);
      expect(await selectOne(first.url)).toBe(1);
      await first.stop();

      const second = await startEmbeddedPostgres(home, quiet);
      try {
        expect(second.dataDir).toBe(first.dataDir);
        expect(await selectOne(second.url)).toBe(1);
      } finally {
        await second.stop();
      }
      expect((await stat(outer)).mode & 0o777).toBe(0o700);
    } finally {
      await rm(placed, { recursive: true, force: true });
    }
  }, 90_000);

  test('a first start that fails removes the data directory, its link and the password file initdb read', async () => {
    const home = path.join(outer, 'home');
    await mkdir(home, { recursive: true, mode: 0o700 });
    const stateRoot = await mkdtemp(path.join(os.tmpdir(), 'flotilla-state-'));
    try {
      const { binaries, runAs } = await preparePostgres();
      const location = await postgresDataLocation(home, runAs, stateRoot);
      expect(location.dataDir.startsWith(stateRoot)).toBe(true);
      expect((await lstat(path.join(home, 'postgres'))).isSymbolicLink()).toBe(true);
      const before = (await readdir(os.tmpdir())).filter((f) => f.startsWith('flotilla-initdb-'));
      // initdb refuses superuser names starting with pg_: a real failure of a real initdb.
      const failure = await initialiseCluster({ binaries, dataDir: location.dataDir, runAs, user: 'pg_refused', password: 'x', durable: false, log: () => undefined }).catch((e: unknown) => e);
      expect((failure as Error).message).toContain('initdb failed');
      expect((await readdir(os.tmpdir())).filter((f) => f.startsWith('flotilla-initdb-'))).toEqual(before);
      await location.discard();
      expect(await readdir(stateRoot)).toEqual([]);
      expect(await readdir(home)).toEqual([]);
    } finally {
      await rm(stateRoot, { recursive: true, force: true });
    }
  }, 60_000);
});
