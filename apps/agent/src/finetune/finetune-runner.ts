import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { canonicalJson, ModelInputSchema, type DesiredFineTuneJob, type JobRunStatus, type ModelInput, type ModelRef } from '@flotilla/contracts';
import type { ArtifactProvider } from '../runtime/runtime.js';
import { keptArtifactDir, publishProduced, type ArtifactUploader } from './artifact-uploader.js';
import { backboneInput } from './classifier-graph.js';
import { resolveDatasetPath, type DatasetPathPolicy } from './dataset.js';
import { evaluateGate, producedVersionName } from './evaluation-gate.js';
import { JobRecordStore, TERMINAL_PHASES, type JobPhase, type JobRecord } from './job-record.js';
import type { LinearProbeSpec } from './linear-probe-spec.js';
import { decodeModel, staticDims } from './onnx-proto.js';
import { OUTPUT_FILES, TrainerMetricsFileSchema, type TrainerEvent } from './trainer-contract.js';
import { defaultLinearProbeEntry, TrainerProcess } from './trainer-process.js';

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
  /** Whole-run limit (default 2 h). */
  timeoutMs?: number;
  stopGraceMs?: number;
  threads?: number;
  now?: () => Date;
  /** Called when a run's status changed, so the agent reports it. */
  changed?: () => void;
  /** Hands produced models to the hub's artifact store (output.artifact: upload); without it such jobs fail. */
  uploader?: Pick<ArtifactUploader, 'upload'>;
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
}

/**
 * Runs the fine-tuning jobs of a spoke under the process runtime, one at a
 * time (so never two trainings on one GPU): level-based like the rest of the
 * agent. Each reconcile starts what is desired and not run yet, cancels runs
 * whose job left the desired state, and reports every job from its durable
 * record (`<state>/finetune/records/<job>.json`). A run that was under way
 * when the agent stopped is run again on the next start, and says so.
 */
export class FineTuneRunner {
  private readonly records: JobRecordStore;
  private readonly live = new Map<string, LiveRun>();
  private readonly current = new Map<string, JobRecord>();
  /** One training at a time on this appliance. */
  private queue: Promise<void> = Promise.resolve();
  private lastChange = 0;
  private closing = false;

  constructor(private readonly opts: FineTuneRunnerOptions) {
    this.records = new JobRecordStore(opts.stateDir);
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
        const resumed = record !== null && record.specHash === hash && !TERMINAL_PHASES.has(record.phase);
        record = this.fresh(job, hash, resumed ? record!.attempt + 1 : 1, resumed ? `run again after an agent restart (attempt ${record!.attempt + 1})` : 'queued');
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
    for (const run of this.live.values()) run.abort.abort();
    await Promise.all([...this.live.values()].map((r) => r.done));
  }

  private fresh(job: DesiredFineTuneJob, specHash: string, attempt: number, message: string): JobRecord {
    return { job: job.name, specHash, attempt, phase: 'Pending', progress: 0, metrics: {}, message, producedVersion: null, producedDigest: null, datasetFingerprint: null, produced: null, updatedAt: this.now() };
  }

  private now(): string {
    return (this.opts.now?.() ?? new Date()).toISOString();
  }

  private start(job: DesiredFineTuneJob, initial: JobRecord, served: ModelRef | undefined): void {
    this.current.set(job.name, initial);
    const abort = new AbortController();
    const done = (this.queue = this.queue.then(() => this.run(job, initial, abort.signal, served)).catch((err: unknown) => {
      this.opts.logger.error({ job: job.name, err }, 'fine-tuning run failed unexpectedly');
    }));
    this.live.set(job.name, { abort, done });
    void done.finally(() => {
      if (this.live.get(job.name)?.abort === abort) this.live.delete(job.name);
    });
  }

  private async update(record: JobRecord, patch: Partial<JobRecord>, persist = true): Promise<JobRecord> {
    const next = { ...record, ...patch, updatedAt: this.now() };
    this.current.set(record.job, next);
    if (persist) await this.records.save(next);
    const t = Date.now();
    if (persist || t - this.lastChange > 1000) {
      this.lastChange = t;
      this.opts.changed?.();
    }
    return next;
  }

  private async run(job: DesiredFineTuneJob, initial: JobRecord, signal: AbortSignal, served: ModelRef | undefined): Promise<void> {
    let record = initial;
    const log = this.opts.logger.child({ job: job.name, attempt: record.attempt });
    const runDir = path.join(this.opts.stateDir, 'finetune', 'runs', job.name, record.specHash.slice(0, 16));
    const outputDir = path.join(runDir, 'output');
    if (signal.aborted || this.closing) return;
    record = await this.update(record, { phase: 'Preparing', message: record.attempt > 1 ? record.message : 'fetching the base model' });
    let datasetRoot: string | undefined;
    try {
      if (!('builtin' in job.trainer)) {
        record = await this.update(record, { phase: 'Failed', message: 'image and command trainers are not run by the process runtime yet; use trainer.builtin: linear-probe' });
        return;
      }
      datasetRoot = await resolveDatasetPath(job.dataset.path, this.opts.datasetPolicy);
      const base = await this.opts.artifacts.ensure(job.baseModel, signal);
      const { input, note } = await baseModelInput(job.baseModel.input, base.modelPath);
      log.info({ note }, 'base model input');
      const servedModelPath = served ? (await this.opts.artifacts.ensure(served, signal).catch(() => null))?.modelPath : undefined;
      await rm(outputDir, { recursive: true, force: true });
      await mkdir(outputDir, { recursive: true });
      const spec: LinearProbeSpec = {
        job: job.name,
        datasetPath: datasetRoot,
        datasetFormat: job.dataset.format,
        baseModelPath: base.modelPath,
        input,
        hyperparameters: job.trainer.hyperparameters,
        holdoutFraction: job.evaluation.holdoutFraction,
        outputDir,
        outputModel: job.output.model,
        threads: this.opts.threads ?? 2,
        ...(servedModelPath ? { servedModelPath } : {}),
      };
      const specFile = path.join(runDir, 'spec.json');
      await writeFile(specFile, JSON.stringify(spec));
      const outcome = await TrainerProcess.run({
        command: this.opts.nodePath ?? process.execPath,
        args: [this.opts.linearProbeEntry ?? defaultLinearProbeEntry(), specFile],
        env: { PATH: process.env.PATH ?? '' },
        outputDir,
        signal,
        timeoutMs: this.opts.timeoutMs ?? 2 * 3600_000,
        memoryLimitBytes: memoryBytes(job.resources?.memory),
        graceMs: this.opts.stopGraceMs ?? 10_000,
        onEvent: (e: TrainerEvent) => {
          if (e.event === 'progress') record = this.liveUpdate(record, { phase: e.phase ?? record.phase, progress: Math.min(0.95, e.progress * 0.95), message: e.phase ?? record.phase });
          else if (['accuracy', 'f1', 'loss', 'validation.loss', 'dataset.images', 'dataset.classes'].includes(e.name)) record = this.liveUpdate(record, { metrics: { ...record.metrics, [e.name]: e.value } });
        },
        onLog: (line, stream) => log.debug({ stream }, line),
      });
      if (outcome.end === 'cancelled') {
        if (this.closing) return;
        record = await this.update(record, { phase: 'Failed', message: 'cancelled: the job was removed or changed' });
        return;
      }
      if (outcome.end !== 'succeeded') {
        log.warn({ failure: outcome.failure, end: outcome.end }, 'trainer failed');
        record = await this.update(record, { phase: 'Failed', message: `trainer ${outcome.end}: ${redactForHub(outcome.failure ?? '', [datasetRoot, job.dataset.path])}` });
        return;
      }
      const metricsFile = TrainerMetricsFileSchema.parse(JSON.parse(await readFile(path.join(outputDir, OUTPUT_FILES.metrics), 'utf8')));
      const fingerprint = typeof metricsFile.datasetFingerprint === 'string' ? metricsFile.datasetFingerprint : null;
      const metrics = { ...record.metrics, accuracy: metricsFile.metrics.accuracy, ...(metricsFile.metrics.f1 === undefined ? {} : { f1: metricsFile.metrics.f1 }), ...(metricsFile.metrics.loss === undefined ? {} : { loss: metricsFile.metrics.loss }) };
      record = await this.update(record, { phase: 'Evaluating', progress: 0.96, metrics, datasetFingerprint: fingerprint, message: 'checking the evaluation gate' });
      const gate = evaluateGate(job.evaluation, metricsFile);
      if (!gate.passed) {
        record = await this.update(record, { phase: 'Rejected', progress: 1, message: `rejected: ${gate.message}; nothing registered` });
        return;
      }
      record = await this.update(record, { phase: 'Registering', progress: 0.98, message: gate.message });
      const bytes = await readFile(path.join(outputDir, OUTPUT_FILES.model));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const version = producedVersionName(job.baseModel.version, this.opts.spoke, digest);
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
        produced: fingerprint === null ? null : { version, digest, sizeBytes: bytes.length, format: 'onnx', uri: published.uri, datasetFingerprint: fingerprint },
        message: `${gate.message}; produced ${job.output.model} ${version} (${digest.slice(0, 19)}…), dataset ${fingerprint?.slice(0, 19) ?? '-'}…`,
      });
      log.info({ version, digest }, 'fine-tuning run succeeded');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.warn({ err: message }, 'fine-tuning run failed');
      record = await this.update(record, { phase: 'Failed', message: redactForHub(message, [datasetRoot ?? job.dataset.path, job.dataset.path]) });
    }
  }

  private liveUpdate(record: JobRecord, patch: Partial<JobRecord>): JobRecord {
    const next = { ...record, ...patch, updatedAt: this.now() };
    void this.update(record, patch, next.phase !== record.phase);
    return next;
  }
}

/** A record as the status report carries it: the hub's phases, the detailed phase in the message. */
export function toStatus(r: JobRecord): JobRunStatus {
  const phase: JobRunStatus['phase'] = r.phase === 'Pending' || r.phase === 'Succeeded' || r.phase === 'Failed' || r.phase === 'Rejected' ? r.phase : 'Running';
  const detail: JobPhase = r.phase;
  return {
    name: r.job,
    phase,
    progress: r.progress,
    metrics: r.metrics,
    producedVersion: r.producedVersion,
    ...(r.phase === 'Succeeded' && r.produced ? { produced: r.produced } : {}),
    message: phase === 'Running' ? `${detail}: ${r.message}`.slice(0, 2048) : r.message.slice(0, 2048),
  };
}
