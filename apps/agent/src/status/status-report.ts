import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION, StatusReportSchema, formatIssues, type Capacity, type Condition, type StatusReport } from '@flotilla/contracts';
import type { RuntimeReport, WorkloadRuntime } from '../runtime/runtime.js';
import { truncate } from './conditions.js';

export interface StatusInput {
  spoke: string;
  now: Date;
  /** Generation of the envelope the agent verified and stored. */
  acceptedGeneration: number;
  /** Generation whose reconcile finished; `report` was computed by that reconcile. */
  observedGeneration: number;
  conditions: readonly Condition[];
  report: RuntimeReport | null;
  capacity: Capacity | null;
  agent: { version: string; runtime: WorkloadRuntime['kind'] };
}

const MAX_WORKLOADS = 256;
const MAX_CONDITIONS = 32;

/**
 * Builds the status report and checks it against the wire schema, so a
 * runtime bug shows up here with the offending field rather than as a
 * message the hub silently drops. Over-long messages and lists are cut to
 * what the schema allows.
 */
export function buildStatusReport(input: StatusInput): { ok: true; report: StatusReport } | { ok: false; message: string } {
  const report = input.report ?? { deployments: [], jobs: [] };
  const candidate: StatusReport = {
    v: PROTOCOL_VERSION,
    spoke: input.spoke,
    sentAt: input.now.toISOString(),
    acceptedGeneration: input.acceptedGeneration,
    observedGeneration: input.observedGeneration,
    // Spoke-level conditions are derived from everything the agent knows, the accepted generation included.
    conditions: input.conditions
      .slice(0, MAX_CONDITIONS)
      .map((c) => ({ ...c, message: truncate(c.message), observedGeneration: c.observedGeneration ?? input.acceptedGeneration })),
    ...(input.capacity !== null ? { capacity: input.capacity } : {}),
    // Workload statuses describe the world as the reconcile of observedGeneration left it.
    deployments: report.deployments.slice(0, MAX_WORKLOADS).map((d) => ({
      ...d,
      observedGeneration: input.observedGeneration,
      message: truncate(d.message ?? ''),
      conditions: d.conditions
        .slice(0, MAX_CONDITIONS)
        .map((c) => ({ ...c, message: truncate(c.message), observedGeneration: input.observedGeneration })),
    })),
    jobs: report.jobs.slice(0, MAX_WORKLOADS).map((j) => ({ ...j, observedGeneration: input.observedGeneration, message: truncate(j.message ?? '') })),
    agent: input.agent,
  };
  const checked = StatusReportSchema.safeParse(candidate);
  if (!checked.success) {
    return { ok: false, message: `status report violates the schema: ${formatIssues(checked.error.issues)}` };
  }
  const bytes = Buffer.byteLength(JSON.stringify(checked.data), 'utf8');
  if (bytes > MAX_MESSAGE_BYTES) {
    return { ok: false, message: `status report is ${bytes} bytes, over the ${MAX_MESSAGE_BYTES}-byte message limit` };
  }
  return { ok: true, report: checked.data };
}
