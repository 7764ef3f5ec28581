import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { canonicalJson, ModelInputSchema, type DesiredFineTuneJob, type JobRunStatus, type ModelInput, type ModelRef } from '@flotilla/contracts';
import type { ArtifactProvider } from '../runtime/runtime.js';
import { sleep } from '../support/abort.js';
import { keptArtifactDir, publishProduced, type ArtifactUploader } from './artifact-uploader.js';
import { BuiltinTrainer } from './builtin-trainer.js';
import { backboneInput } from './classifier-graph.js';
import { CommandTrainer } from './command-trainer.js';
import { countsByClass, readDataset, resolveDatasetPath, splitDataset, type DatasetPathPolicy, type ImageFolderDataset } from './dataset.js';
import { evaluateGate, producedVersionName } from './evaluation-gate.js';
import type { AgentEvaluation, EvaluationSpec } from './agent-evaluation.js';
import { describeInstant, jobWindow } from './job-window.js';
import { JobRecordStore, TERMINAL_PHASES, type JobPhase, type JobRecord } from './job-record.js';
import { decodeModel, staticDims } from './onnx-proto.js';
import { AGENT_STOPPING, type Trainer, type TrainerFactory } from './trainer.js';
import { OUTPUT_FILES, TrainerMetricsFileSchema, type TrainerEvent, type TrainerMetricsFile } from './trainer-contract.js';
import { validateTrainerOutput } from './trainer-output.js';
import { TrainerProcess } from './trainer-process.js';
import { TrainingSlots } from './training-slots.js';

export interface FineTuneRunnerOptions {
  stateDir: string;
  spoke: string;
  artifacts: ArtifactProvider;
  logger: Logger;
  /** Node binary for the builtin trainer (default: the agent's). */
  nodePath?: string;
  linearProbeEntry?: string;
  /** The agent's dataset source policy (allowed roots), applied to every dataset path. */
  datasetPolicy?: DatasetPathPolicy;
  /** Whole-run limit when the job sets no `timeout` (default 2 h). */
  timeoutMs?: number;
  /** The trainer of each job (default: the process runtime's: builtin and command trainers; images refused). */
  trainers?: TrainerFactory;
  /**
   * GPUs of this appliance (indices 0..n-1); undefined: not counted, GPU jobs
   * run one at a time. A function is read once, when the runner is made (the
   * agent makes it with the first job, after its first GPU sample).
   */
  gpuCount?: number | (() => number | undefined);
  /** How often a job waiting for its schedule window looks at the clock again (default 30 s; it also wakes at the window's start). */
  schedulePollMs?: number;
  /** The agent's evaluation child entry (default: dist/apps/agent/src/finetune/evaluate-main.js). */
  evaluateEntry?: string;
  stopGraceMs?: number;
  threads?: number;
  now?: () => Date;
  /** Called when a run's status changed, so the agent reports it. */
  changed?: () => void;
  /** Hands produced models to the hub's artifact store (output.artifact: upload); without it such jobs fail. */
  uploader?: Pick<ArtifactUploader, 'upload'>;
}

/** The default timeout of a run (DESIGN.md: a job's `timeout`, else this). */
export const DEFAULT_TIMEOUT_MS = 2 * 3600_000;

/** The compiled file of an agent child entry (`dist/apps/agent/src/finetune/<file>`) at the package root. */
export function finetuneEntry(file: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'apps', 'agent', 'src', 'finetune', file);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package root above the agent to locate ${file}`);
    dir = parent;
  }
}

/** The process runtime's trainers: builtin and command; an image needs a container engine, which the process runtime does not drive. */
export function processTrainers(opts: { nodePath: string; linearProbeEntry?: string | undefined; threads: number }): TrainerFactory {
  const builtin = new BuiltinTrainer({ nodePath: opts.nodePath, entry: opts.linearProbeEntry, threads: opts.threads });
  const command = new CommandTrainer();
  return (job) => {
    if ('builtin' in job.trainer) return builtin;
    if ('image' in job.trainer) {
      return { refused: `trainer.image ${job.trainer.image} needs a container engine, which the process runtime does not drive; run this spoke's agent with --runtime kubernetes, or give the job trainer.command (a program installed on the appliance)` };
    }
    return command;
  };
}

/** The job's rendered spec hashed: a new spec (or generation with a new spec) is a new run. */
export function jobSpecHash(job: DesiredFineTuneJob): string {
  return createHash('sha256').update(canonicalJson(job)).digest('hex');
}

/** Kubernetes-style quantity (`8Gi`, `512Mi`, `2G`, bytes) to bytes; undefined when absent or unreadable. */
export function memoryBytes(quantity: string | undefined): number | undefined {
  if (quantity === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(quantity.trim());
  if (!m) return undefined;
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.round(Number(m[1]) * (m[2] ? units[m[2]]! : 1));
}

/**
 * What may leave the spoke of a trainer's failure: the dataset root and any
 * path under it, and any quoted name (a class label), are replaced. The full
 * message stays in the agent's local log.
 */
export function redactForHub(message: string, datasetPaths: string[]): string {
  let out = message;
  for (const root of datasetPaths.filter((p) => p.length > 1)) {
    const escaped = root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`${escaped}[^\\s:;,)]*`, 'g'), '<dataset file>');
  }
  return out.replace(/"[^"]*"/g, '"<name>"').slice(0, 1024);
}

/** The declared input of the base model, else one read off its ONNX input shape with pixels / 255 and no mean or std. */
export async function baseModelInput(declared: unknown, modelPath: string): Promise<{ input: ModelInput; note: string }> {
  if (declared !== undefined) return { input: ModelInputSchema.parse(declared), note: 'input as declared on the model version' };
  const model = decodeModel(await readFile(modelPath), 'the base model');
  const dims = staticDims(backboneInput(model));
  if (dims.length === 4 && dims[1] === 3 && dims[2] && dims[3]) return { input: ModelInputSchema.parse({ layout: 'NCHW', height: dims[2], width: dims[3] }), note: 'input read from the model (NCHW), pixels / 255' };
  if (dims.length === 4 && dims[3] === 3 && dims[1] && dims[2]) return { input: ModelInputSchema.parse({ layout: 'NHWC', height: dims[1], width: dims[2] }), note: 'input read from the model (NHWC), pixels / 255' };
  throw new Error(`the base model's input shape [${dims.map((d) => d ?? '?').join(', ')}] is not an image batch; declare input on the model version`);
}

interface LiveRun {
  abort: AbortController;
  done: Promise<void>;
  trainer: Trainer | null;
}

/** Metric names a trainer's live lines may set in the status (command and image trainers' go under `trainer.`). */
const LIVE_METRICS = new Set(['accuracy', 'f1', 'loss', 'validation.loss', 'dataset.images', 'dataset.classes']);
const MAX_STATUS_METRICS = 48;

/**
 * Runs the fine-tuning jobs of a spoke: level-based like the rest of the
 * agent. Each reconcile starts what is desired and not run yet, cancels
 * runs whose job left the desired state, and reports every job from its
 * durable record (`<state>/finetune/records/<job>.json`). A run waits in
 * Pending for its schedule window and for a training slot (never two
 * trainings on one GPU: TrainingSlots), then its trainer (builtin, command
 * or Kubernetes Job, behind one interface) runs, and everything after it
 * (validation, the agent's own evaluation, the gate, registration) is the
 * same for every trainer. A run under way when the agent stopped is run
 * again (or, for a Kubernetes Job still running, followed again) on the
 * next start, and says so.
 */
export class FineTuneRunner {
  private readonly records: JobRecordStore;
  private readonly live = new Map<string, LiveRun>();
  private readonly current = new Map<string, JobRecord>();
  private readonly slots: TrainingSlots;
  private readonly trainers: TrainerFactory;
  private lastChange = 0;
  private closing = false;

  constructor(private readonly opts: FineTuneRunnerOptions) {
    this.records = new JobRecordStore(opts.stateDir);
    this.slots = new TrainingSlots(typeof opts.gpuCount === 'function' ? opts.gpuCount() : opts.gpuCount);
    this.trainers = opts.trainers ?? processTrainers({ nodePath: opts.nodePath ?? process.execPath, linearProbeEntry: opts.linearProbeEntry, threads: opts.threads ?? 2 });
  }

  /**
   * `served` gives the model version each deployment of the spoke serves, so
   * a run can measure the served version of its output model on its split.
   */
  async reconcile(jobs: DesiredFineTuneJob[], served: readonly ModelRef[] = []): Promise<JobRunStatus[]> {
    const wanted = new Set(jobs.map((j) => j.name));
    for (const [name, run] of this.live) {
      if (!wanted.has(name)) {
        this.opts.logger.info({ job: name }, 'fine-tuning job removed from the desired state: cancelling its run');
        run.abort.abort();
        void run.done.then(() => run.trainer?.forget?.(name)).catch((err: unknown) => this.opts.logger.warn({ job: name, err }, 'could not remove what the cancelled run left'));
      }
    }
    const statuses: JobRunStatus[] = [];
    for (const job of jobs) {
      const hash = jobSpecHash(job);
      let record = this.current.get(job.name) ?? (await this.records.load(job.name));
      const running = this.live.get(job.name);
      if (record && record.specHash !== hash && running) {
        running.abort.abort();
        await running.done;
      }
      if (!this.live.has(job.name) && (!record || record.specHash !== hash || !TERMINAL_PHASES.has(record.phase))) {
        const unfinished = record !== null && record.specHash === hash && !TERMINAL_PHASES.has(record.phase);
        // Only a run that had started counts as an attempt; one still waiting (window, GPU) just waits again.
        const started = unfinished && record!.phase !== 'Pending';
        const attempt = started ? record!.attempt + 1 : unfinished ? record!.attempt : 1;
        record = this.fresh(job, hash, attempt, started ? `run again after an agent restart (attempt ${attempt})` : 'queued');
        await this.records.save(record);
        this.start(job, record, served.find((m) => m.name === job.output.model && m.format === 'onnx'));
      }
      statuses.push(toStatus(this.current.get(job.name) ?? record!));
    }
    return statuses;
  }

  /** Stops runs without ending them: their records stay unfinished, so the next agent runs them again. */
  async close(): Promise<void> {
    this.closing = true;
    for (const run of this.live.values()) run.abort.abort(AGENT_STOPPING);
    await Promise.all([...this.live.values()].map((r) => r.done));
  }

  /** Whether a run of this job is under way (waiting or training) in this agent. */
  isLive(job: string): boolean {
    return this.live.has(job);
  }

  private fresh(job: DesiredFineTuneJob, specHash: string, attempt: number, message: string): JobRecord {
    return { job: job.name, specHash, attempt, phase: 'Pending', progress: 0, metrics: {}, message, producedVersion: null, producedDigest: null, datasetFingerprint: null, produced: null, updatedAt: this.now().toISOString() };
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  private start(job: DesiredFineTuneJob, initial: JobRecord, served: ModelRef | undefined): void {
    this.current.set(job.name, initial);
    const abort = new AbortController();
    const run: LiveRun = { abort, trainer: null, done: Promise.resolve() };
    run.done = this.run(job, initial, run, served).catch((err: unknown) => {
      if (!abort.signal.aborted) this.opts.logger.error({ job: job.name, err }, 'fine-tuning run failed unexpectedly');
    });
    this.live.set(job.name, run);
    void run.done.finally(() => {
      if (this.live.get(job.name) === run) this.live.delete(job.name);
    });
  }

  private async update(record: JobRecord, patch: Partial<JobRecord>, persist = true): Promise<JobRecord> {
    const next = { ...record, ...patch, updatedAt: this.now().toISOString() };
    this.current.set(record.job, next);
    if (persist) await this.records.save(next);
    const t = Date.now();
    if (persist || t - this.lastChange > 1000) {
      this.lastChange = t;
      this.opts.changed?.();
    }
    return next;
  }

  /** Waits in Pending until the job's schedule window is open; false when cancelled. */
  private async waitForWindow(job: DesiredFineTuneJob, get: () => JobRecord, set: (r: JobRecord) => void, signal: AbortSignal): Promise<boolean> {
    for (;;) {
      if (signal.aborted) return false;
      const now = this.now();
      const w = jobWindow(job.schedule, now);
      if (w.open) return true;
      const message = w.next ? `outside its schedule window; the window opens at ${describeInstant(w.next, job.schedule!.timezone)}` : 'outside its schedule window; no window opens within a week';
      if (get().message !== message) set(await this.update(get(), { phase: 'Pending', message }));
      const untilOpen = w.next ? w.next.getTime() - now.getTime() + 50 : Infinity;
      try {
        await sleep(Math.max(10, Math.min(untilOpen, this.opts.schedulePollMs ?? 30_000)), signal);
      } catch {
        return false;
      }
    }
  }

  private async run(job: DesiredFineTuneJob, initial: JobRecord, live: LiveRun, served: ModelRef | undefined): Promise<void> {
    let record = initial;
    const signal = live.abort.signal;
    const log = this.opts.logger.child({ job: job.name, attempt: record.attempt });
    const runDir = path.join(this.opts.stateDir, 'finetune', 'runs', job.name, record.specHash.slice(0, 16));
    const outputDir = path.join(runDir, 'output');
    const restartNote = record.attempt > 1 && /agent restart/.test(record.message) ? record.message : null;
    const factory = this.trainers(job);
    if ('refused' in factory) {
      await this.update(record, { phase: 'Failed', message: factory.refused });
      return;
    }
    const trainer = factory;
    live.trainer = trainer;
    if (!(await this.waitForWindow(job, () => record, (r) => (record = r), signal))) return;
    const gpus = job.resources?.gpu ?? 0;
    let slot;
    try {
      slot = await this.slots.acquire({ job: job.name, gpus }, signal, (why) => {
        record = this.liveUpdate(record, { phase: 'Pending', message: why });
      });
    } catch {
      return;
    }
    let datasetRoot: string | undefined;
    try {
      if (signal.aborted || this.closing) return;
      record = await this.update(record, { phase: 'Preparing', message: restartNote ?? 'checking the dataset and fetching the base model' });
      datasetRoot = await resolveDatasetPath(job.dataset.path, this.opts.datasetPolicy);
      const ds = await readDataset(datasetRoot, job.dataset);
      const split = splitDataset(ds, job.evaluation.holdoutFraction, 0);
      await mkdir(runDir, { recursive: true });
      const holdoutFile = path.join(runDir, 'holdout.txt');
      await writeFile(holdoutFile, split.holdout.map((h) => holdoutEntry(ds, h)).join('\n') + (split.holdout.length > 0 ? '\n' : ''));
      const hyperparametersFile = path.join(runDir, 'hparams.json');
      await writeFile(hyperparametersFile, canonicalJson(job.trainer.hyperparameters));
      const counts = countsByClass(ds.train, ds.labels);
      log.info({ counts, holdout: split.holdout.length, source: split.holdoutSource }, 'dataset read');
      record = await this.update(record, {
        datasetFingerprint: ds.fingerprint,
        metrics: { ...record.metrics, 'dataset.images': ds.train.length + (ds.test?.length ?? 0), 'dataset.classes': ds.labels.length, ...perClassCounts(counts) },
      });
      const base = await this.opts.artifacts.ensure(job.baseModel, signal);
      const { input, note } = await baseModelInput(job.baseModel.input, base.modelPath);
      log.info({ note }, 'base model input');
      const servedModelPath = served ? (await this.opts.artifacts.ensure(served, signal).catch(() => null))?.modelPath : undefined;
      await rm(outputDir, { recursive: true, force: true });
      await mkdir(outputDir, { recursive: true });
      const timeoutMs = job.timeoutSeconds !== undefined ? job.timeoutSeconds * 1000 : (this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      record = await this.update(record, { phase: 'Training', message: restartNote ? `${restartNote}; training` : `training (${trainer.kind} trainer${slot.gpus.length > 0 ? `, GPU ${slot.gpus.join(',')}` : ''})` });
      const outcome = await trainer.run({
        job,
        attempt: record.attempt,
        runDir,
        outputDir,
        datasetRoot,
        datasetFingerprint: ds.fingerprint,
        holdoutFile,
        hyperparametersFile,
        base,
        baseInput: input,
        servedModelPath,
        timeoutMs,
        graceMs: this.opts.stopGraceMs ?? 10_000,
        memoryLimitBytes: memoryBytes(job.resources?.memory),
        gpus: slot.gpus,
        signal,
        log,
        onNote: (message) => {
          record = this.liveUpdate(record, { message });
        },
        onEvent: (e: TrainerEvent) => {
          if (e.event === 'progress') record = this.liveUpdate(record, { phase: e.phase ?? record.phase, progress: Math.min(0.9, e.progress * 0.9), message: e.message ?? e.phase ?? record.phase });
          else {
            const name = trainer.trusted ? e.name : `trainer.${e.name}`;
            if ((trainer.trusted ? LIVE_METRICS.has(name) : true) && (name in record.metrics || Object.keys(record.metrics).length < MAX_STATUS_METRICS)) record = this.liveUpdate(record, { metrics: { ...record.metrics, [name]: e.value } });
          }
        },
      });
      const ignored = outcome.ignoredLines ? `; ${outcome.ignoredLines} malformed trainer line${outcome.ignoredLines === 1 ? '' : 's'} ignored` : '';
      if (outcome.end === 'cancelled') {
        if (this.closing) return;
        record = await this.update(record, { phase: 'Failed', message: 'cancelled: the job was removed or changed' });
        return;
      }
      if (outcome.end !== 'succeeded') {
        log.warn({ failure: outcome.failure, end: outcome.end }, 'trainer failed');
        record = await this.update(record, { phase: 'Failed', message: `trainer ${outcome.end}: ${redactForHub(outcome.failure ?? '', [datasetRoot, job.dataset.path])}${ignored}` });
        return;
      }
      const gateInput = trainer.trusted ? await this.trustedMetrics(outputDir) : await this.agentEvaluation(job, datasetRoot, ds, outputDir, runDir, servedModelPath, signal, (patch) => (record = this.liveUpdate(record, patch)));
      if (gateInput === null) return;
      const metrics = { ...record.metrics, accuracy: gateInput.metrics.accuracy, ...(gateInput.metrics.f1 === undefined ? {} : { f1: gateInput.metrics.f1 }), ...(gateInput.metrics.loss === undefined ? {} : { loss: gateInput.metrics.loss }) };
      record = await this.update(record, { phase: 'Evaluating', progress: 0.96, metrics, message: 'checking the evaluation gate' });
      const gate = evaluateGate(job.evaluation, gateInput);
      const evaluatedBy = trainer.trusted ? '' : " (the agent's own evaluation)";
      if (!gate.passed) {
        record = await this.update(record, { phase: 'Rejected', progress: 1, message: `rejected: ${gate.message}${evaluatedBy}; nothing registered${ignored}` });
        return;
      }
      record = await this.update(record, { phase: 'Registering', progress: 0.98, message: gate.message });
      const bytes = await readFile(path.join(outputDir, OUTPUT_FILES.model));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const version = producedVersionName(job.baseModel.version, this.opts.spoke, digest);
      const fingerprint = ds.fingerprint;
      // keep-local: the produced blob stays in the agent's state, addressed by its digest.
      const keep = keptArtifactDir(this.opts.stateDir, digest);
      await mkdir(keep, { recursive: true });
      await copyFile(path.join(outputDir, OUTPUT_FILES.model), path.join(keep, OUTPUT_FILES.model));
      await copyFile(path.join(outputDir, OUTPUT_FILES.labels), path.join(keep, OUTPUT_FILES.labels));
      // Where the registry will say the bytes are: kept here, or (upload) in the hub's store once they arrived there.
      const published = await publishProduced({ job, spoke: this.opts.spoke, version, digest, file: path.join(keep, OUTPUT_FILES.model), sizeBytes: bytes.length, uploader: this.opts.uploader, signal, progress: (message) => this.update(record, { message }).then((r) => void (record = r)) });
      if (!published.ok) {
        // Stopped while uploading: the record stays unfinished, so the next agent runs it again.
        if (this.closing) return;
        record = await this.update(record, { phase: 'Failed', progress: 1, message: published.message });
        return;
      }
      record = await this.update(record, {
        phase: 'Succeeded',
        progress: 1,
        producedVersion: version,
        producedDigest: digest,
        produced: { version, digest, sizeBytes: bytes.length, format: 'onnx', uri: published.uri, datasetFingerprint: fingerprint },
        message: `${restartNote ? `${restartNote}; ` : ''}${gate.message}${evaluatedBy}; produced ${job.output.model} ${version} (${digest.slice(0, 19)}…), dataset ${fingerprint.slice(0, 19)}…${ignored}`,
      });
      log.info({ version, digest }, 'fine-tuning run succeeded');
    } catch (err) {
      if (signal.aborted && this.closing) return;
      const message = err instanceof Error ? err.message : String(err);
      log.warn({ err: message }, 'fine-tuning run failed');
      record = await this.update(record, { phase: 'Failed', message: redactForHub(message, [datasetRoot ?? job.dataset.path, job.dataset.path]) });
    } finally {
      slot.release();
    }
  }

  /** The builtin trainer's metrics.json: the agent's own code, which re-ran its export through ONNX Runtime. */
  private async trustedMetrics(outputDir: string): Promise<TrainerMetricsFile> {
    return TrainerMetricsFileSchema.parse(JSON.parse(await readFile(path.join(outputDir, OUTPUT_FILES.metrics), 'utf8')));
  }

  /**
   * A command or image trainer's output, validated, then evaluated by the
   * agent in a child process on the held-out split it computes itself. The
   * gate reads these metrics, never the trainer's claims. Null: the run
   * ended (Failed) here.
   */
  private async agentEvaluation(
    job: DesiredFineTuneJob,
    datasetRoot: string,
    ds: ImageFolderDataset,
    outputDir: string,
    runDir: string,
    servedModelPath: string | undefined,
    signal: AbortSignal,
    note: (patch: Partial<JobRecord>) => void,
  ): Promise<TrainerMetricsFile | null> {
    const output = await validateTrainerOutput(outputDir, ds.featureColumns?.length ?? null);
    note({ phase: 'Evaluating', progress: 0.92, message: 'the agent evaluates the produced model on the held-out split', metrics: { ...this.current.get(job.name)!.metrics, ...Object.fromEntries(Object.entries(output.trainerMetrics).map(([k, v]) => [`trainer.${k}`, v]).slice(0, 16)) } });
    const spec: EvaluationSpec = {
      datasetPath: datasetRoot,
      datasetFormat: job.dataset.format,
      datasetColumns: {
        ...(job.dataset.labelColumn !== undefined ? { labelColumn: job.dataset.labelColumn } : {}),
        ...(job.dataset.imageColumn !== undefined ? { imageColumn: job.dataset.imageColumn } : {}),
        ...(job.dataset.featureColumns !== undefined ? { featureColumns: job.dataset.featureColumns } : {}),
      },
      holdoutFraction: job.evaluation.holdoutFraction,
      modelPath: output.modelPath,
      labels: output.labels,
      ...(servedModelPath ? { servedModelPath } : {}),
      threads: this.opts.threads ?? 2,
    };
    const specFile = path.join(runDir, 'evaluation-spec.json');
    const resultFile = path.join(runDir, 'evaluation.json');
    await writeFile(specFile, JSON.stringify(spec));
    await rm(resultFile, { force: true });
    const outcome = await TrainerProcess.run({
      command: this.opts.nodePath ?? process.execPath,
      args: [this.opts.evaluateEntry ?? finetuneEntry('evaluate-main.js'), specFile, resultFile],
      env: { PATH: process.env.PATH ?? '' },
      outputDir: runDir,
      signal,
      timeoutMs: 3600_000,
      graceMs: this.opts.stopGraceMs ?? 10_000,
      onEvent: () => undefined,
    });
    if (outcome.end !== 'succeeded') {
      if (outcome.end === 'cancelled') throw new Error('cancelled: the job was removed or changed');
      throw new Error(`the agent's evaluation of the produced model failed: ${outcome.failure ?? outcome.end}`);
    }
    const evaluation = JSON.parse(await readFile(resultFile, 'utf8')) as AgentEvaluation;
    return { metrics: evaluation.metrics, served: evaluation.served } as TrainerMetricsFile;
  }

  private liveUpdate(record: JobRecord, patch: Partial<JobRecord>): JobRecord {
    const next = { ...record, ...patch, updatedAt: this.now().toISOString() };
    void this.update(record, patch, next.phase !== record.phase);
    return next;
  }
}

/** A held-out item as the trainer can recognise it: its image path, or `<index file>:<line>` for a feature row. */
function holdoutEntry(ds: ImageFolderDataset, item: ImageFolderDataset['train'][number]): string {
  if (!item.features) return item.relativePath;
  const m = / line (\d+)$/.exec(item.source ?? '');
  return `${path.relative(ds.root, item.absolutePath)}:${m?.[1] ?? '?'}`;
}

/** Per-class training counts for the status, under numbered keys: class names never leave the spoke. */
function perClassCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.values(counts).slice(0, 32).map((n, i) => [`dataset.class${i}.images`, n]));
}

/** A record as the status report carries it: the hub's phases, the detailed phase in the message. */
export function toStatus(r: JobRecord): JobRunStatus {
  const phase: JobRunStatus['phase'] = r.phase === 'Pending' || r.phase === 'Succeeded' || r.phase === 'Failed' || r.phase === 'Rejected' ? r.phase : 'Running';
  const detail: JobPhase = r.phase;
  return {
    name: r.job,
    phase,
    stage: detail,
    ...(r.datasetFingerprint && /^sha256:[0-9a-f]{64}$/.test(r.datasetFingerprint) ? { datasetFingerprint: r.datasetFingerprint } : {}),
    progress: r.progress,
    metrics: r.metrics,
    producedVersion: r.producedVersion,
    ...(r.phase === 'Succeeded' && r.produced ? { produced: r.produced } : {}),
    message: phase === 'Running' ? `${detail}: ${r.message}`.slice(0, 2048) : r.message.slice(0, 2048),
  };
}
