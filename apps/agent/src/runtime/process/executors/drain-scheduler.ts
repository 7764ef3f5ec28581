import type { Logger } from 'pino';
import type { SupervisedProcess } from '../supervised-process.js';
import type { RuntimeTimers } from '../timers.js';
import type { WorkloadTable } from '../workload-table.js';

/**
 * `drain`: a replaced process keeps serving clients that still use its
 * endpoint for `drainMs` after the new endpoint was reported, then it is
 * stopped, one step at a time with reconciles (`exclusive`).
 */
export class DrainScheduler {
  constructor(
    private readonly o: {
      table: WorkloadTable;
      timers: RuntimeTimers;
      exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
      persist: () => Promise<void>;
      changed: () => void;
      isClosed: () => boolean;
      logger: Logger;
      stopGraceMs: number;
      drainMs: number;
      now: () => Date;
    },
  ) {}

  /** Starts the drain clock now, the new endpoint having been reported. */
  begin(old: SupervisedProcess): void {
    old.beginDrain(this.o.now().getTime() + this.o.drainMs);
    this.arm(old);
  }

  /** Stops `p` at its drain deadline (an adopted draining process keeps the deadline it had). */
  arm(p: SupervisedProcess): void {
    this.o.timers.after((p.drainUntil ?? 0) - this.o.now().getTime(), () => {
      void this.o
        .exclusive(async () => {
          if (this.o.isClosed() || !this.o.table.isDraining(p)) return;
          this.o.logger.info({ deployment: p.identity.deployment, pid: p.pid }, 'stopping the replaced version after draining');
          await p.stop(this.o.stopGraceMs);
          this.o.table.remove(p);
          await this.o.persist();
        })
        .then(
          () => this.o.changed(),
          (err: unknown) => this.o.logger.error({ err }, 'stopping a drained process failed'),
        );
    });
  }
}
