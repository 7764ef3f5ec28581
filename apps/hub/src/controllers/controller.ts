import type { Logger } from 'pino';
import { WorkQueue } from './work-queue.js';

/** What one reconcile asks for next. */
export interface ReconcileOutcome {
  /** Reconcile this key again after this long even if nothing changes (a bounded wait). */
  requeueAfterMs?: number;
}

/**
 * One level-based reconciler over keys (a spoke, the fleet): reads Postgres,
 * compares with the world, acts. It must be idempotent: a key may be
 * reconciled any number of times, after any crash.
 */
export interface Reconciler {
  readonly name: string;
  reconcile(key: string, signal: AbortSignal): Promise<ReconcileOutcome | void>;
  /** Every key worth a look; called at start and every resync period. */
  listKeys(): Promise<string[]>;
}

export interface ControllerMetrics {
  observeReconcile(controller: string, outcome: 'success' | 'error', seconds: number): void;
}

/**
 * Runs a reconciler the way controller-runtime does: a coalescing work queue,
 * one worker, errors requeued with exponential backoff, and a periodic resync
 * that enqueues every key so nothing depends on a notification having arrived.
 */
export class Controller {
  private _queue = new WorkQueue();
  private abort = new AbortController();
  private worker: Promise<void> | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
    private readonly metrics: ControllerMetrics,
    private readonly resyncMs: number,
  ) {}

  get name(): string {
    return this.reconciler.name;
  }

  get queue(): WorkQueue {
    return this._queue;
  }

  /**
   * Starts the worker and the first resync (which enqueues every key). A
   * stopped controller may be started again (a hub that leads again): it
   * begins from a fresh queue, and its resync finds all the work.
   */
  start(): void {
    if (this.worker) return;
    if (this.abort.signal.aborted) {
      this.abort = new AbortController();
      this._queue = new WorkQueue();
    }
    this.worker = this.work();
    void this.resync();
  }

  /** Enqueues every key now (the broker lost retained state, say), if running. */
  resyncNow(): void {
    if (!this.worker) return;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = null;
    void this.resync();
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Resolves once the queue is empty and nothing is being processed (tests, shutdown). */
  async idle(timeoutMs = 30_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.queue.length === 0 && !this.busy) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = null;
    this.abort.abort();
    this.queue.shutDown();
    await this.worker;
    this.worker = null;
  }

  private busy = false;

  private async resync(): Promise<void> {
    const signal = this.abort.signal;
    const queue = this.queue;
    if (signal.aborted) return;
    try {
      for (const key of await this.reconciler.listKeys()) queue.add(key);
    } catch (err) {
      this.log.warn({ controller: this.name, err: (err as Error).message }, 'resync could not list keys; trying again later');
    }
    if (signal.aborted) return;
    if (this.resyncTimer) clearTimeout(this.resyncTimer); // one chain of resyncs, even after resyncNow()
    this.resyncTimer = setTimeout(() => void this.resync(), this.resyncMs);
    this.resyncTimer.unref();
  }

  private async work(): Promise<void> {
    const queue = this.queue;
    const signal = this.abort.signal;
    for (;;) {
      const key = await queue.get();
      if (key === null) return;
      this.busy = true;
      const started = process.hrtime.bigint();
      try {
        const outcome = await this.reconciler.reconcile(key, signal);
        queue.forget(key);
        this.metrics.observeReconcile(this.name, 'success', Number(process.hrtime.bigint() - started) / 1e9);
        if (outcome?.requeueAfterMs !== undefined) queue.addAfter(key, outcome.requeueAfterMs);
      } catch (err) {
        this.metrics.observeReconcile(this.name, 'error', Number(process.hrtime.bigint() - started) / 1e9);
        if (!signal.aborted) {
          const retryInMs = queue.addRateLimited(key);
          this.log.warn({ controller: this.name, key, err: (err as Error).message, retryInMs }, 'reconcile failed; requeued');
        }
      } finally {
        this.busy = false;
        queue.done(key);
      }
    }
  }
}
