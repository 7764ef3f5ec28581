import type { Logger } from 'pino';
import type { DesiredFineTuneJob, ModelInput } from '@flotilla/contracts';
import type { PreparedArtifact } from '../runtime/runtime.js';
import type { TrainerEvent } from './trainer-contract.js';
import type { TrainerEnd } from './trainer-process.js';

/** Everything one run of a trainer gets from the runner; the trainer kind decides how it reaches the trainer. */
export interface TrainerRunContext {
  job: DesiredFineTuneJob;
  attempt: number;
  /** The agent's directory of this run (`<state>/finetune/runs/<job>/<spec hash>`). */
  runDir: string;
  /** Where model.onnx, labels.txt and metrics.json are once the run ended (collected there for Kubernetes). */
  outputDir: string;
  /** The dataset directory, already checked against the agent's allowed roots. */
  datasetRoot: string;
  datasetFingerprint: string;
  /** Held-out items, one a line (relative image paths, or `<index file>:<line>` for feature rows): trainers must not train on them. */
  holdoutFile: string;
  hyperparametersFile: string;
  base: PreparedArtifact;
  baseInput: ModelInput;
  servedModelPath?: string | undefined;
  timeoutMs: number;
  graceMs: number;
  memoryLimitBytes?: number | undefined;
  /** GPU indices this run holds (empty: CPU only, or the appliance's GPUs are not counted). */
  gpus: number[];
  signal: AbortSignal;
  onEvent: (e: TrainerEvent) => void;
  /** Live note for the job's status message (not a phase change). */
  onNote: (message: string) => void;
  log: Logger;
}

export interface TrainerRunResult {
  end: TrainerEnd;
  /** Local only: may name dataset files; redacted before it leaves. */
  failure?: string;
  /** Non-contract stdout lines the supervisor ignored (malformed or oversize contract lines among them). */
  ignoredLines?: number;
}

/**
 * One kind of trainer behind the fine-tuning runner: the builtin
 * linear-probe, a command on the appliance, or an image run as a Kubernetes
 * Job. The runner does everything around it (admission, dataset checks,
 * validation, the agent's own evaluation, the gate, registration).
 */
export interface Trainer {
  readonly kind: 'builtin' | 'command' | 'image';
  /** True when the agent trusts the trainer's metrics.json (its own code); false: the agent re-evaluates the model itself. */
  readonly trusted: boolean;
  run(ctx: TrainerRunContext): Promise<TrainerRunResult>;
  /** Removes what the run left outside the agent's state (a Kubernetes Job); called when the job leaves the desired state. */
  forget?(job: string): Promise<void>;
}

/** Picks the trainer for a job, or says why the job cannot run here (a clear refusal in the job's status). */
export type TrainerFactory = (job: DesiredFineTuneJob) => Trainer | { refused: string };

/** The abort reason when the agent stops (not a cancellation): a trainer that outlives the agent (a Kubernetes Job) is left running, to be followed again. */
export const AGENT_STOPPING = 'flotilla-agent-stopping';
