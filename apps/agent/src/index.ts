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
export { startAgent, AgentStartError, type AgentStartErrorCode, type RunningAgent, type StartAgentOptions } from './compose.js';
export {
  AGENT_DEFAULTS,
  AgentConfigError,
  parseAgentConfig,
  type AgentConfig,
  type AgentFlags,
  type AgentLogLevel,
  type AgentRuntimeKind,
} from './config/agent-config.js';
export { LOCK_FILE, StateDirLock, StateDirLockedError, type LockHolder } from './state/state-dir-lock.js';
export { stopWorkloads, type StopWorkloadsResult, type StoppedWorkload } from './runtime/process/stop-workloads.js';
export type { RunningWorkload } from './runtime/process/index.js';
export { LEDGER_FILE } from './runtime/process/ledger.js';
export { SourcePolicy, SourceRefusedError, isSourceRefused, type SourcePolicySettings, type SourceRule } from './security/source-policy.js';
export { readSourceSettings, SOURCE_ENV, type SourceFlags, type SourceSettings } from './security/source-settings.js';
