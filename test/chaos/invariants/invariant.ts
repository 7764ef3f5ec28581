import type { StoredDeployment } from '../agent-files.js';
import type { HubClient } from '../hub-client.js';
import type { ScenarioDriver } from '../scenario.js';
import type { TrialSystem } from '../trial-system.js';

/**
 * The five properties checked after every trial (DESIGN.md section 9, issue
 * 11 item 6). Each check says `held` only when it measured the property;
 * when it could not measure it (the hub never answered, the agent logs lost
 * the line it counts), it says `unverifiable`, which fails the run as a
 * violation does: a check that cannot fail proves nothing.
 */

export type InvariantName = 'convergence' | 'appliedOnce' | 'noUntrackedProcess' | 'revokedCannotConnect' | 'everyChangeAudited';

export const INVARIANTS: Record<InvariantName, string> = {
  convergence: 'every spoke reaches observedGeneration == desiredGeneration within the bound, and holds what the last committed change asks',
  appliedOnce: 'no envelope applied twice (agent logs, per spoke and generation)',
  noUntrackedProcess: "every inference server of the trial is in its agent's ledger; one per desired deployment, serving its version",
  revokedCannotConnect: 'a revoked spoke cannot connect to the broker with its old credentials',
  everyChangeAudited: 'every change the hub confirmed has its audit event',
};

export interface Violation {
  message: string;
  evidence?: unknown;
}

export interface InvariantResult {
  status: 'held' | 'violated' | 'unverifiable';
  violations: Violation[];
  /** What was measured, even when it held (counts, timings). */
  measured?: Record<string, unknown>;
}

export interface CheckContext {
  system: TrialSystem;
  api: HubClient;
  driver: ScenarioDriver;
  trialId: string;
  /** When the last restart the faults scheduled happened: the convergence bound counts from here. */
  recoveredAt: number;
  /** Convergence must be reached by recoveredAt + this. */
  convergeMs: number;
}

export function result(violations: Violation[], measured?: Record<string, unknown>, unverifiable = false): InvariantResult {
  return { status: violations.length === 0 ? 'held' : unverifiable ? 'unverifiable' : 'violated', violations, ...(measured ? { measured } : {}) };
}

export const sameDeployments = (held: StoredDeployment[], wanted: Record<string, string>): boolean =>
  held.length === Object.keys(wanted).length && held.every((d) => wanted[d.name] === d.version);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
