export { runAgent, type AgentHandle, type AgentSnapshot, type RunAgentOptions } from './agent.js';
export { enroll, EnrollError, type EnrollErrorCode, type EnrollOptions } from './enroll/enroll.js';
export { NoneRuntime } from './runtime/none/none-runtime.js';
export type { ArtifactProvider, PreparedArtifact, RuntimeReport, WorkloadRuntime } from './runtime/runtime.js';
export { ReconcileRunner, type ReconcileResult, type ReconcileRunnerOptions, type ReconcileState } from './reconcile/runner.js';
export type { ConnectionFacts } from './session/mqtt-session.js';
export {
  APPLIED_ENVELOPE_FILE,
  AgentCredentialsSchema,
  CREDENTIALS_FILE,
  DEFAULT_STATE_DIR,
  StateFileError,
  appliedEnvelopePath,
  credentialsPath,
  hasCredentials,
  readAppliedEnvelope,
  readCredentials,
  writeAppliedEnvelope,
  writeCredentials,
  type AgentCredentials,
  type StateFileProblem,
} from './state/state-dir.js';
export { AGENT_VERSION } from './version.js';
