import type { Logger } from 'pino';
import type { LaunchPreparer } from '../launch-preparer.js';
import type { ProcessFactory } from '../process-factory.js';
import type { StartFailures } from '../start-failures.js';
import type { WorkloadTable } from '../workload-table.js';

/** What every step executor works with: the runtime's state and its ledger. */
export interface ExecutorDeps {
  table: WorkloadTable;
  factory: ProcessFactory;
  preparer: LaunchPreparer;
  failures: StartFailures;
  /** Writes the ledger from the table; resolves once written (errors are logged, not thrown). */
  persist(): Promise<void>;
  logger: Logger;
  stopGraceMs: number;
  drainMs: number;
  now: () => Date;
}
