import type { Logger } from 'pino';
import { NoneRuntime, type RunAgentOptions, type WorkloadRuntime } from '../../../agent/src/index.js';
import { CliError, EXIT } from '../exit-codes.js';

export type RuntimeKind = 'process' | 'kubernetes' | 'none';

export interface RuntimeSetup {
  runtime: WorkloadRuntime;
  /** Health hooks the runtime's host collectors provide to the agent. */
  extras: Pick<RunAgentOptions, 'telemetry' | 'capacity'>;
}

/** Builds the workload runtime `flotilla agent run --runtime` asks for. */
export async function createRuntime(
  kind: RuntimeKind,
  _o: { stateDir: string; log: Logger; kubeconfig?: string; namespace: string },
): Promise<RuntimeSetup> {
  switch (kind) {
    case 'none':
      return { runtime: new NoneRuntime(), extras: {} };
    default:
      throw new CliError(`the ${kind} runtime is not available in this build yet; use --runtime none`, EXIT.usage);
  }
}
