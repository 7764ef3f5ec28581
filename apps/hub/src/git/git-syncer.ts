import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { GitSourceEntity } from '../database/entities/git-source.entity.js';
import { DomainError } from '../errors/domain-error.js';
import type { ApplyResult, ApplyPolicy } from '../policy/apply-policy.js';
import { type PolicyRepository, RepositoryError, openRepository, removeMirror } from './policy-repository.js';

/** One problem of a bad commit, pinned to the file inside the repository. */
export interface SyncProblem {
  file: string;
  line: number;
  column: number;
  field: string;
  message: string;
}

/** What `git_sources.last_error` holds: the commit that failed (null when it could not be fetched) and why. */
export interface SyncError {
  commit: string | null;
  message: string;
  problems: SyncProblem[];
  at: string;
}

export interface SyncOutcome {
  source: string;
  /** applied: objects changed; unchanged: in sync already; failed: see error; gone: the source was deleted. */
  outcome: 'applied' | 'unchanged' | 'failed' | 'gone';
  commit: string | null;
  objects?: ApplyResult['objects'];
  spokes?: ApplyResult['spokes'];
  error?: SyncError;
}

export interface GitSyncerOptions {
  /** $FLOTILLA_HOME; mirrors live in its `git/` directory. */
  home: string;
  /** How often to look for sources created or deleted by another hub replica. */
  discoverEveryMs?: number;
  /** A fetch and apply that takes longer is abandoned and recorded as an error. */
  syncTimeoutMs?: number;
  /** The first sync after start or creation comes within this long (randomised so a restart does not stampede). */
  firstSyncWithinMs?: number;
}

/** Thrown inside the apply's transaction when the source was deleted meanwhile: nothing of the sync is kept. */
class SourceGone extends Error {}

/** Resolves after `ms`, or at once when `wake` is called or `signal` aborts. */
function sleep(ms: number, signal: AbortSignal, setWake: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    setWake(done);
  });
}

/** ±10% so sources with the same interval spread out over time. */
const jitter = (ms: number) => Math.round(ms * (0.9 + Math.random() * 0.2));

interface Follower {
  name: string;
  abort: AbortController;
  /** Syncs of one source run one at a time, in order. */
  chain: Promise<unknown>;
  loop: Promise<void> | null;
  wake: () => void;
}

/**
 * Follows every git source: on its interval (jittered) and on demand, it
 * resolves the branch head and, when it moved (or the last try failed),
 * applies every policy file under the source's path through ApplyPolicy
 * with prune, atomically. A bad commit applies nothing and is recorded with
 * each problem's file and line; the last good state stays until a later
 * commit is good. `stop()` aborts in-flight fetches and waits for them.
 */
export class GitSyncer {
  private readonly followers = new Map<string, Follower>();
  private stopping = new AbortController();
  private log: Logger = pino({ level: 'silent' });
  private discovery: Promise<void> | null = null;
  private started = false;
  private readonly mirrorsDir: string;
  private readonly discoverEveryMs: number;
  private readonly syncTimeoutMs: number;
  private readonly firstSyncWithinMs: number;

  constructor(
    private readonly ds: DataSource,
    private readonly applier: ApplyPolicy,
    private readonly audit: AuditService,
    options: GitSyncerOptions,
  ) {
    this.mirrorsDir = path.join(options.home, 'git');
    this.discoverEveryMs = options.discoverEveryMs ?? 30_000;
    this.syncTimeoutMs = options.syncTimeoutMs ?? 120_000;
    this.firstSyncWithinMs = options.firstSyncWithinMs ?? 2_000;
  }

  /** Starts following the sources in the database, and looks again now and then for ones added elsewhere. */
  start(log: Logger): void {
    if (this.started) return;
    // Started again after a stop (this hub leads again): a fresh abort signal.
    if (this.stopping.signal.aborted) this.stopping = new AbortController();
    this.started = true;
    this.log = log;
    for (const f of this.followers.values()) f.loop ??= this.followLoop(f, Math.random() * this.firstSyncWithinMs);
    this.discovery = this.discoverLoop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const all = [...this.followers.values()];
    for (const f of all) f.abort.abort();
    await Promise.allSettled([this.discovery, ...all.map((f) => f.loop), ...all.map((f) => f.chain)]);
    this.followers.clear();
    this.started = false;
  }

  /** A source was created: follow it and (unless told otherwise) sync it now. */
  follow(name: string, options: { syncSoon?: boolean } = {}): void {
    if (this.stopping.signal.aborted) return;
    const f = this.adopt(name);
    if (options.syncSoon ?? true) f.wake();
  }

  /** A source is being deleted: stop following it, abort and await its sync, drop its mirror. */
  async forget(name: string): Promise<void> {
    const f = this.followers.get(name);
    if (f) {
      this.followers.delete(name);
      f.abort.abort();
      await Promise.allSettled([f.loop, f.chain]);
    }
    await removeMirror(this.mirrorsDir, name);
  }

  /**
   * Syncs `name` now, after any sync of it in flight, and applies even when
   * the head has not moved (so objects changed behind git's back are put
   * back). Resolves with the outcome.
   */
  syncNow(name: string): Promise<SyncOutcome> {
    if (this.stopping.signal.aborted) return Promise.reject(new DomainError('hub_stopping', 503, 'the hub is stopping'));
    return this.enqueue(this.adopt(name), true);
  }

  private adopt(name: string): Follower {
    let f = this.followers.get(name);
    if (f) return f;
    const abort = new AbortController();
    f = { name, abort, chain: Promise.resolve(), loop: null, wake: () => undefined };
    this.followers.set(name, f);
    if (this.started) f.loop = this.followLoop(f, Math.random() * this.firstSyncWithinMs);
    return f;
  }

  private enqueue(f: Follower, force: boolean): Promise<SyncOutcome> {
    const run = f.chain.then(() => this.syncOnce(f.name, force, f.abort.signal));
    f.chain = run.catch(() => undefined);
    return run;
  }

  private async followLoop(f: Follower, firstDelayMs: number): Promise<void> {
    let delay = firstDelayMs;
    const signal = f.abort.signal;
    while (!signal.aborted) {
      await sleep(delay, signal, (wake) => (f.wake = wake));
      if (signal.aborted) break;
      let intervalSeconds = 60;
      try {
        const outcome = await this.enqueue(f, false);
        if (outcome.outcome === 'gone') {
          // Deleted through another replica: nothing left to follow.
          if (this.followers.get(f.name) === f) this.followers.delete(f.name);
          await removeMirror(this.mirrorsDir, f.name);
          break;
        }
        intervalSeconds = (await this.ds.getRepository(GitSourceEntity).findOne({ where: { name: f.name }, select: { intervalSeconds: true } }))?.intervalSeconds ?? intervalSeconds;
      } catch (err) {
        if (signal.aborted) break;
        // Database trouble, say: try again next interval.
        this.log.error({ source: f.name, err }, 'git sync failed unexpectedly');
      }
      delay = jitter(intervalSeconds * 1000);
    }
  }

  private async discoverLoop(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        const rows = await this.ds.getRepository(GitSourceEntity).find({ select: { name: true } });
        for (const r of rows) if (!this.followers.has(r.name)) this.adopt(r.name);
      } catch (err) {
        if (signal.aborted) break;
        this.log.warn({ err: (err as Error).message }, 'cannot list git sources; will try again');
      }
      await sleep(this.discoverEveryMs, signal, () => undefined);
    }
  }

  private async syncOnce(name: string, force: boolean, stop: AbortSignal): Promise<SyncOutcome> {
    stop.throwIfAborted();
    const repo = this.ds.getRepository(GitSourceEntity);
    const row = await repo.findOne({ where: { name } });
    if (!row) return { source: name, outcome: 'gone', commit: null };
    const signal = AbortSignal.any([stop, AbortSignal.timeout(this.syncTimeoutMs)]);
    const log = this.log.child({ source: name });
    let commit: string | null = null;
    try {
      const git: PolicyRepository = openRepository(row, this.mirrorsDir);
      commit = await git.head(signal);
      if (!force && commit === row.lastCommit && row.lastError === null) {
        await repo.update({ id: row.id }, { lastSyncedAt: new Date() });
        return { source: name, outcome: 'unchanged', commit };
      }
      const files = await git.readPolicyFiles(commit, row.path, signal);
      signal.throwIfAborted();
      const at = commit;
      const result = await this.applier.apply({
        files,
        dryRun: false,
        prune: true,
        source: `git:${name}`,
        commit: at,
        actor: `git:${name}`,
        onWritten: (em, result) => this.recordSuccess(em, row, at, result),
      });
      const changed = result.objects.some((o) => o.action !== 'unchanged');
      log.info({ commit, changed: result.objects.filter((o) => o.action !== 'unchanged').length, spokes: result.spokes.length }, 'git source synced');
      return { source: name, outcome: changed ? 'applied' : 'unchanged', commit, objects: result.objects, spokes: result.spokes };
    } catch (err) {
      if (err instanceof SourceGone) return { source: name, outcome: 'gone', commit };
      // Stopped or forgotten: not the repository's fault, so nothing is recorded.
      if (stop.aborted) throw err;
      const error = toSyncError(err, commit, signal.aborted ? this.syncTimeoutMs : null);
      log.warn({ commit, error: error.message, problems: error.problems.length }, 'git source not applied; keeping the last good state');
      await repo.update({ id: row.id }, { lastError: error as never });
      return { source: name, outcome: 'failed', commit, error };
    }
  }

  /** In the apply's transaction: the source still exists, and now records this commit. */
  private async recordSuccess(em: EntityManager, row: GitSourceEntity, commit: string, result: ApplyResult): Promise<void> {
    const locked = await em.findOne(GitSourceEntity, { where: { id: row.id }, lock: { mode: 'pessimistic_write' } });
    if (!locked) throw new SourceGone();
    await em.update(GitSourceEntity, { id: row.id }, { lastCommit: commit, lastSyncedAt: new Date(), lastError: null });
    if (locked.lastCommit !== commit) {
      await this.audit.record(em, {
        actor: `git:${row.name}`,
        action: 'git-source.sync',
        target: `git-source/${row.name}`,
        before: { commit: locked.lastCommit },
        after: { commit },
        details: { commit, previous: locked.lastCommit, changed: result.objects.filter((o) => o.action !== 'unchanged') },
      });
    }
  }
}

function toSyncError(err: unknown, commit: string | null, timedOutAfterMs: number | null): SyncError {
  const at = new Date().toISOString();
  if (timedOutAfterMs !== null) return { commit, message: `sync took longer than ${timedOutAfterMs / 1000}s and was abandoned`, problems: [], at };
  if (err instanceof DomainError) {
    const problems = Array.isArray(err.details.problems) ? (err.details.problems as SyncProblem[]) : [];
    return { commit, message: err.message, problems, at };
  }
  if (err instanceof RepositoryError) {
    return { commit, message: err.message, problems: err.file ? [{ file: err.file, line: 0, column: 0, field: '', message: err.message }] : [], at };
  }
  return { commit, message: (err as Error)?.message ?? String(err), problems: [], at };
}
