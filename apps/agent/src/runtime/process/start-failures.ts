import type { Logger } from 'pino';
import type { StartFailure } from './plan.js';
import type { FailureView } from './status.js';

export interface FailureRecord extends FailureView, StartFailure {
  attempts: number;
}

/**
 * The last failed attempt to start each deployment (digest mismatch, no
 * Triton, port range full...), which the planner holds on until `retryAt`
 * and the status reports. Permanent failures back off so that a broken
 * artifact is not fetched in a loop; retryable ones wait only for the
 * agent core's next requeue.
 */
export class StartFailures {
  private readonly records = new Map<string, FailureRecord>();

  constructor(
    private readonly backoff: { initialMs: number; maxMs: number },
    private readonly now: () => Date,
    private readonly logger: Logger,
  ) {}

  record(deployment: string, key: string, reason: string, message: string, retryable: boolean): void {
    const previous = this.records.get(deployment);
    const attempts = previous && previous.key === key && previous.reason === reason ? previous.attempts + 1 : 1;
    const { initialMs, maxMs } = this.backoff;
    const delay = retryable ? 0 : Math.min(maxMs, initialMs * 2 ** Math.min(attempts - 1, 30));
    this.records.set(deployment, { deployment, key, reason, message, retryable, attempts, retryAt: this.now().getTime() + delay });
    this.logger.warn({ deployment, reason, retryable, retryInMs: delay }, message);
  }

  get(deployment: string): FailureRecord | undefined {
    return this.records.get(deployment);
  }

  clear(deployment: string): void {
    this.records.delete(deployment);
  }

  deployments(): string[] {
    return [...this.records.keys()];
  }

  all(): FailureRecord[] {
    return [...this.records.values()];
  }
}
