import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PostgresBinaries } from './postgres-binaries.js';
import { EmbeddedPostgresError, type RunAs } from './postgres-user.js';
import { readPostmasterLock } from './postmaster-lock.js';

/** The lines a Postgres process writes go here (debug level in the hub). */
export type PostgresLines = (line: string) => void;

/** Keeps the last lines a process wrote, to quote them when it fails. */
class Tail {
  private readonly lines: string[] = [];
  constructor(private readonly forward: PostgresLines) {}
  push(chunk: Buffer): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      this.forward(line);
      this.lines.push(line);
      if (this.lines.length > 8) this.lines.shift();
    }
  }
  toString(): string {
    return this.lines.join(' | ');
  }
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `code ${code}`;
}

// Postgres's messages are parsed by nobody, but a fixed locale keeps them the same everywhere.
const CHILD_ENV = { LC_ALL: 'C', LANG: 'C' };

export interface InitialiseOptions {
  binaries: PostgresBinaries;
  dataDir: string;
  runAs: RunAs | null;
  /** The superuser initdb creates, and its password (scram-sha-256). */
  user: string;
  password: string;
  /** false skips initdb's fsync (scratch clusters of tests). */
  durable: boolean;
  log: PostgresLines;
}

/**
 * Creates a cluster with initdb. The data directory is made here (0700, owned
 * by the user Postgres runs as). initdb reads the superuser's password from a
 * file: it sits in a fresh 0700 directory readable only by that user and is
 * removed whatever happens, so no password is ever left readable by others.
 */
export async function initialiseCluster(opts: InitialiseOptions): Promise<void> {
  // An existing directory is fine if empty (initdb refuses any other).
  await mkdir(opts.dataDir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await chmod(opts.dataDir, 0o700);
  if (opts.runAs) await chown(opts.dataDir, opts.runAs.uid, opts.runAs.gid);
  const secretDir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-initdb-'));
  try {
    const pwfile = path.join(secretDir, 'password');
    await writeFile(pwfile, opts.password + '\n', { mode: 0o600 });
    if (opts.runAs) {
      await chown(secretDir, opts.runAs.uid, opts.runAs.gid);
      await chown(pwfile, opts.runAs.uid, opts.runAs.gid);
    }
    const args = [
      `--pgdata=${opts.dataDir}`,
      '--auth=scram-sha-256',
      `--username=${opts.user}`,
      `--pwfile=${pwfile}`,
      '--encoding=UTF8',
      '--locale=C',
      '--no-instructions',
      ...(opts.durable ? [] : ['--no-sync']),
    ];
    const tail = new Tail(opts.log);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(opts.binaries.initdb, args, {
        ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
        env: CHILD_ENV,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (c: Buffer) => tail.push(c));
      child.stderr.on('data', (c: Buffer) => tail.push(c));
      child.once('error', (err) => reject(new EmbeddedPostgresError(`could not run ${opts.binaries.initdb}: ${err.message}`)));
      child.once('close', (code, signal) =>
        code === 0 ? resolve() : reject(new EmbeddedPostgresError(`initdb failed (${exitText(code, signal)}): ${tail.toString()}`)),
      );
    });
  } finally {
    await rm(secretDir, { recursive: true, force: true });
  }
}

export interface PostgresServerOptions {
  binaries: PostgresBinaries;
  dataDir: string;
  port: number;
  runAs: RunAs | null;
  /** Settings given as `-c name=value`. */
  settings: Record<string, string>;
  log: PostgresLines;
}

/**
 * One postmaster, a child of this process. It runs in its own process group
 * so that a Ctrl-C at the terminal reaches the hub only, and the hub shuts
 * Postgres down last, after draining what still uses it. Readiness is read
 * from `postmaster.pid` the way pg_ctl waits for it.
 */
export class PostgresServer {
  private child: ChildProcess | null = null;
  private stopping = false;
  private readonly exitListeners = new Set<(reason: string) => void>();

  constructor(readonly options: PostgresServerOptions) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Called when the postmaster exits without stop() having asked it to. */
  onUnexpectedExit(listener: (reason: string) => void): void {
    this.exitListeners.add(listener);
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (this.child) throw new Error('Postgres is already running');
    const o = this.options;
    const settings = Object.entries(o.settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    const tail = new Tail(o.log);
    this.stopping = false;
    const child = spawn(o.binaries.postgres, ['-D', o.dataDir, '-p', String(o.port), ...settings], {
      ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}),
      env: CHILD_ENV,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr?.on('data', (c: Buffer) => tail.push(c));
    // Written by the child's events, read by the wait loop below.
    const state: { failure: Error | null; ready: boolean } = { failure: null, ready: false };
    child.once('error', (err) => {
      state.failure = new EmbeddedPostgresError(`could not run ${o.binaries.postgres}: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      state.failure ??= new EmbeddedPostgresError(`Postgres exited while starting (${exitText(code, signal)}): ${tail.toString()}`);
      if (state.ready && !this.stopping) for (const l of this.exitListeners) l(`${exitText(code, signal)}; last lines: ${tail.toString()}`);
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (state.failure) {
        if (this.child === child) this.child = null;
        throw state.failure;
      }
      const lock = await readPostmasterLock(o.dataDir);
      if (lock !== null && lock.pid === child.pid && lock.status === 'ready') break;
      if (Date.now() > deadline) {
        await this.stop();
        throw new EmbeddedPostgresError(`Postgres did not accept connections within ${timeoutMs / 1000} s: ${tail.toString()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    state.ready = true;
  }

  /** Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; resolves once the postmaster is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = null;
      return;
    }
    this.stopping = true;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const within = (ms: number) => Promise.race([gone.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    child.kill('SIGINT');
    if (!(await within(10_000))) {
      child.kill('SIGQUIT');
      if (!(await within(5_000))) {
        child.kill('SIGKILL');
        await gone;
      }
    }
    this.child = null;
  }
}
