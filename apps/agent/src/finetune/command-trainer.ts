import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Trainer, TrainerRunContext, TrainerRunResult } from './trainer.js';
import { TrainerProcess } from './trainer-process.js';

/** The environment of the trainer contract (docs/fine-tuning.md), with the paths each runtime gives. */
export function contractEnv(ctx: Pick<TrainerRunContext, 'job' | 'datasetFingerprint' | 'attempt'>, dirs: { data: string; baseModel: string; hyperparameters: string; output: string; holdout: string }): Record<string, string> {
  const { job } = ctx;
  return {
    FLOTILLA_JOB: job.name,
    FLOTILLA_ATTEMPT: String(ctx.attempt),
    FLOTILLA_DATA_DIR: dirs.data,
    FLOTILLA_DATASET_FORMAT: job.dataset.format,
    FLOTILLA_DATASET_FINGERPRINT: ctx.datasetFingerprint,
    ...(job.dataset.format !== 'imagefolder'
      ? {
          FLOTILLA_LABEL_COLUMN: job.dataset.labelColumn ?? 'label',
          ...(job.dataset.featureColumns ? { FLOTILLA_FEATURE_COLUMNS: JSON.stringify(job.dataset.featureColumns) } : { FLOTILLA_IMAGE_COLUMN: job.dataset.imageColumn ?? 'image' }),
        }
      : {}),
    FLOTILLA_HOLDOUT_FILE: dirs.holdout,
    FLOTILLA_HOLDOUT_FRACTION: String(job.evaluation.holdoutFraction),
    FLOTILLA_BASE_MODEL_DIR: dirs.baseModel,
    FLOTILLA_BASE_MODEL: job.baseModel.name,
    FLOTILLA_BASE_MODEL_VERSION: job.baseModel.version,
    FLOTILLA_HPARAMS: dirs.hyperparameters,
    FLOTILLA_OUTPUT_DIR: dirs.output,
    FLOTILLA_OUTPUT_MODEL: job.output.model,
  };
}

/**
 * `trainer.command`: a program installed on the appliance, run by the
 * process runtime as a supervised child process in its own process group
 * under the trainer contract. Its environment holds only PATH, HOME/TMPDIR
 * in the run directory and the contract's variables; never the agent's.
 */
export class CommandTrainer implements Trainer {
  readonly kind = 'command' as const;
  readonly trusted = false;

  async run(ctx: TrainerRunContext): Promise<TrainerRunResult> {
    const { job } = ctx;
    if (!('command' in job.trainer) || 'image' in job.trainer) throw new Error('CommandTrainer runs command trainers only');
    const [program, ...args] = job.trainer.command;
    // The base model as the contract lays it out: model.onnx (+ input.json, what it expects).
    const baseDir = path.join(ctx.runDir, 'base-model');
    await mkdir(baseDir, { recursive: true });
    await symlink(ctx.base.modelPath, path.join(baseDir, 'model.onnx')).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    await writeFile(path.join(baseDir, 'input.json'), JSON.stringify(ctx.baseInput));
    const home = path.join(ctx.runDir, 'home');
    await mkdir(home, { recursive: true });
    const outcome = await TrainerProcess.run({
      command: program!,
      args,
      env: {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: home,
        TMPDIR: home,
        LANG: 'C.UTF-8',
        ...(ctx.gpus.length > 0 ? { CUDA_VISIBLE_DEVICES: ctx.gpus.join(',') } : {}),
        ...contractEnv(ctx, { data: ctx.datasetRoot, baseModel: baseDir, hyperparameters: ctx.hyperparametersFile, output: ctx.outputDir, holdout: ctx.holdoutFile }),
      },
      cwd: home,
      outputDir: ctx.outputDir,
      signal: ctx.signal,
      timeoutMs: ctx.timeoutMs,
      memoryLimitBytes: ctx.memoryLimitBytes,
      graceMs: ctx.graceMs,
      onEvent: ctx.onEvent,
      onLog: (line, stream) => ctx.log.debug({ stream }, line),
    });
    return { end: outcome.end, ...(outcome.failure !== undefined ? { failure: outcome.failure } : {}), ignoredLines: outcome.ignoredLines };
  }
}
