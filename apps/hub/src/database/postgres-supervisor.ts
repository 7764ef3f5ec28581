import type { PostgresServer } from './postgres-server.js';
import { EmbeddedPostgresError } from './postgres-user.js';

export interface SupervisorLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** Pauses before each restart attempt: the killed postmaster's backends need a moment to release its shared memory. */
const DEFAULT_DELAYS_MS = [200, 1_000, 2_000, 4_000, 8_000];

/**
 * Restarts the embedded Postgres when it dies under a running hub (killed,
 * OOM, crash), on the same port so that the hub's connection pool finds it
 * again by itself. Attempts are bounded; when they are spent the failure
 * listeners get an error saying so, and the hub stops rather than answering
 * 500 forever.
 */
export class PostgresSupervisor {
  private stopped = false;
  private readonly stopping = new AbortController();
  private restarting: Promise<void> | null = null;
  private readonly failureListeners = new Set<(err: Error) => void>();

  constructor(
    private readonly server: PostgresServer,
    private readonly log: SupervisorLog,
    private readonly delaysMs: number[] = DEFAULT_DELAYS_MS,
  ) {
    server.onUnexpectedExit((reason) => {
      if (this.stopped || this.restarting) return;
      this.restarting = this.restart(reason).finally(() => {
        this.restarting = null;
      });
    });
  }

  onFailure(listener: (err: Error) => void): void {
    this.failureListeners.add(listener);
  }

  private async restart(reason: string): Promise<void> {
    const dataDir = this.server.options.dataDir;
    this.log.error(`embedded Postgres (data ${dataDir}) exited unexpectedly (${reason}); restarting it`);
    let last: Error | null = null;
    for (const [i, delay] of this.delaysMs.entries()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.stopping.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
      if (this.stopped) return;
      try {
        await this.server.start();
        this.log.info(`embedded Postgres restarted on port ${this.server.options.port} (attempt ${i + 1})`);
        return;
      } catch (err) {
        last = err as Error;
        this.log.warn(`restart attempt ${i + 1} of ${this.delaysMs.length} failed: ${last.message}`);
      }
    }
    const err = new EmbeddedPostgresError(
      `the embedded Postgres (data ${dataDir}) exited and could not be restarted after ${this.delaysMs.length} attempts (${last?.message}); fix what its log lines say, then start the hub again`,
    );
    this.log.error(err.message);
    for (const l of this.failureListeners) l(err);
  }

  /** Stops supervising, waits for a restart in progress, then stops Postgres. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    await this.restarting;
    await this.server.stop();
  }
}
