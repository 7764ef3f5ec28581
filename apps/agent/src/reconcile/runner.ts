import type { Logger } from 'pino';
import type { DesiredPayload } from '@flotilla/contracts';
import { canonicalJson } from '@flotilla/contracts';
import type { RuntimeReport, WorkloadRuntime } from '../runtime/runtime.js';
import { equalJitterDelay, spread } from '../support/backoff.js';
import { errorMessage } from '../support/abort.js';

/**
 * Runs `runtime.reconcile` one at a time against the latest desired state
 * (level-based, as controller-runtime's work queue): any trigger only says
 * "this may be out of date"; triggers that arrive during a run coalesce into
 * one more run. A newer generation aborts a stale run. Errors requeue with
 * exponential backoff, success requeues after a jittered interval.
 */

export interface ReconcileRunnerOptions {
  runtime: WorkloadRuntime;
  logger: Logger;
  /** Requeue after a successful run (default 30 s, spread by ±10 %). */
  intervalMs?: number;
  /** Requeue after a failed run: doubles from `initialMs` up to `maxMs` (defaults 1 s, 5 min). */
  backoff?: { initialMs?: number; maxMs?: number };
  random?: () => number;
  now?: () => Date;
  /** Called after every finished run (not after one aborted by a newer generation). */
  onResult?: (result: ReconcileResult) => void;
}

export interface ReconcileResult {
  generation: number;
  ok: boolean;
  /** Latest report; after a failed run, the last good one. */
  report: RuntimeReport | null;
  error: string | null;
  /** The report differs from the previous one. */
  changed: boolean;
  /** How long the run took. */
  durationMs: number;
}

export interface ReconcileState {
  /** Generation of the desired state the runner works towards (0 before any). */
  desiredGeneration: number;
  /** Generation of the last successful run (0 before any). */
  reconciledGeneration: number;
  running: boolean;
  runs: number;
  errors: number;
  consecutiveErrors: number;
  lastError: string | null;
  lastRunAt: string | null;
  lastDurationMs: number | null;
  nextRunAt: string | null;
  report: RuntimeReport | null;
}

class Superseded extends Error {
  override readonly name = 'Superseded';
}

export class ReconcileRunner {
  private desired: { generation: number; payload: DesiredPayload } | null = null;
  private pending = false;
  private stopped = false;
  private wake: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private current: { controller: AbortController; generation: number } | null = null;
  private loop: Promise<void> | null = null;
  private reportKey: string | null = null;
  private readonly state: ReconcileState = {
    desiredGeneration: 0,
    reconciledGeneration: 0,
    running: false,
    runs: 0,
    errors: 0,
    consecutiveErrors: 0,
    lastError: null,
    lastRunAt: null,
    lastDurationMs: null,
    nextRunAt: null,
    report: null,
  };
  private readonly intervalMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly random: () => number;
  private readonly now: () => Date;

  constructor(private readonly opts: ReconcileRunnerOptions) {
    this.intervalMs = opts.intervalMs ?? 30_000;
    this.backoff = { initialMs: opts.backoff?.initialMs ?? 1000, maxMs: opts.backoff?.maxMs ?? 300_000 };
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => new Date());
  }

  start(): void {
    if (this.loop !== null) return;
    this.loop = this.run();
  }

  /** New desired state: aborts a run for another generation and runs again. */
  setDesired(generation: number, payload: DesiredPayload): void {
    this.desired = { generation, payload };
    this.state.desiredGeneration = generation;
    if (this.current && this.current.generation !== generation) {
      this.current.controller.abort(new Superseded(`generation ${generation} supersedes ${this.current.generation}`));
    }
    this.trigger();
  }

  /** Asks for a run as soon as the current one (if any) finishes. */
  trigger(): void {
    if (this.stopped) return;
    this.pending = true;
    this.clearTimer();
    this.wake?.();
  }

  snapshot(): ReconcileState {
    return { ...this.state };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    this.current?.controller.abort(new Superseded('agent stopping'));
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.pending) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
        continue;
      }
      this.pending = false;
      const desired = this.desired;
      if (desired !== null) await this.runOnce(desired.generation, desired.payload);
    }
  }

  private async runOnce(generation: number, payload: DesiredPayload): Promise<void> {
    const controller = new AbortController();
    this.current = { controller, generation };
    this.state.running = true;
    const started = this.now();
    const log = this.opts.logger.child({ generation });
    try {
      const report = await this.opts.runtime.reconcile(payload, controller.signal);
      if (controller.signal.aborted) return; // superseded: the newer run reports
      const changed = this.remember(report);
      this.state.reconciledGeneration = generation;
      this.state.consecutiveErrors = 0;
      this.state.lastError = null;
      this.finish(started);
      this.schedule(spread(this.intervalMs, 0.1, this.random));
      log.debug({ changed }, 'reconcile succeeded');
      this.opts.onResult?.({ generation, ok: true, report, error: null, changed, durationMs: this.now().getTime() - started.getTime() });
    } catch (err) {
      if (controller.signal.aborted) return;
      const message = errorMessage(err);
      this.state.errors += 1;
      this.state.consecutiveErrors += 1;
      const changed = this.state.lastError !== message;
      this.state.lastError = message;
      this.finish(started);
      const delay = equalJitterDelay(this.state.consecutiveErrors - 1, this.backoff, this.random);
      this.schedule(delay);
      log.warn({ err: message, retryInMs: delay, consecutiveErrors: this.state.consecutiveErrors }, 'reconcile failed');
      this.opts.onResult?.({ generation, ok: false, report: this.state.report, error: message, changed, durationMs: this.now().getTime() - started.getTime() });
    } finally {
      if (this.current?.controller === controller) this.current = null;
      this.state.running = false;
    }
  }

  private finish(started: Date): void {
    this.state.runs += 1;
    this.state.lastRunAt = started.toISOString();
    this.state.lastDurationMs = this.now().getTime() - started.getTime();
  }

  private remember(report: RuntimeReport): boolean {
    let key: string;
    try {
      key = canonicalJson(report);
    } catch {
      key = `unrepresentable:${this.state.runs}`; // always "changed"; the status builder will report what it can
    }
    const changed = key !== this.reportKey;
    this.reportKey = key;
    this.state.report = report;
    return changed;
  }

  private schedule(ms: number): void {
    if (this.stopped || this.pending) return;
    this.clearTimer();
    this.state.nextRunAt = new Date(this.now().getTime() + ms).toISOString();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.trigger();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.state.nextRunAt = null;
  }
}
