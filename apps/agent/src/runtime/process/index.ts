export { ProcessRuntime, type ProcessRuntimeOptions, type RunningWorkload } from './process-runtime.js';
export { planProcesses, processKey, wantedNow, type Observed, type ObservedProcess, type Step, type StartFailure, type Wanted } from './plan.js';
export { deploymentStatus, endpointUrl, type StatusInput } from './status.js';
export { LocalPortAllocator, isPortFree, type PortAllocator } from './ports.js';
export { ProcessLedger, readLedger, ledgerPath, LEDGER_FILE, type Ledger, type LedgerEntry } from './ledger.js';
export { defaultBuiltinEntry, launchCommand, type LaunchInfo } from './launch.js';
export { INSTANCE_ENV } from './os-process.js';
export { STATE_DIR_ENV, WORKLOAD_ENV, WORKLOAD_SPEC_ENV, findMarkedProcesses, type MarkedProcess } from './workload-marker.js';
